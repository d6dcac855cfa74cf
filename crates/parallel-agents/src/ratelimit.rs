//! A token-bucket rate limit on call starts, shareable between executors, and (with the
//! `redis` feature) between processes through Redis.

#[cfg(feature = "redis")]
mod redis_budget;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// The largest tokens-per-minute budget accepted: far past any provider's, and small
/// enough that token counts never overflow.
pub const MAX_TOKENS_PER_MINUTE: u64 = 1_000_000_000_000;

/// Limits how fast calls start: on average `per_second`, with up to `burst` at once.
///
/// Implemented as GCRA (virtual scheduling): each caller reserves the next start slot, so
/// waiters are served in order without a thundering herd. A caller cancelled while
/// waiting forfeits its slot, which can only make the observed rate lower.
///
/// [`RateLimiter::redis`] keeps the same kind of slot clock in Redis instead, shared by
/// every process using its key.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next start.
    tat: Mutex<Option<Instant>>,
    limit: RateLimit,
    /// Set for a budget kept in Redis, which then replaces the local slots above.
    #[cfg(feature = "redis")]
    remote: Option<redis_budget::RedisBudget>,
}

impl RateLimiter {
    /// A limiter; `limit` should be valid (see [`crate::ParallelConfig::validate`]). An
    /// invalid one does not panic: its interval saturates (see [`RateLimit::interval`]).
    pub fn new(limit: RateLimit) -> Self {
        let interval = limit.interval();
        Self {
            interval,
            // Saturates: a burst this long just means no start ever waits for it.
            tolerance: interval
                .checked_mul(limit.burst.saturating_sub(1))
                .unwrap_or(Duration::MAX),
            tat: Mutex::new(None),
            limit,
            #[cfg(feature = "redis")]
            remote: None,
        }
    }

    /// A limiter whose budget, `requests_per_minute` starts in all and optionally
    /// `tokens_per_minute` tokens, is kept in Redis at `url` under `key` (tokens under
    /// `key:tokens`) and shared by every process (and executor) using that key.
    ///
    /// Each process leases about 0.2 s of the budget at a time (at least one start, or one
    /// call's tokens) and spends it locally in order. Tokens are reserved before each
    /// attempt by the agent's estimate ([`crate::Agent::estimate_tokens`]) and settled
    /// after it with the usage the agent reported (an attempt without usage keeps its
    /// estimate); the bucket holds one minute's tokens, as a provider's does.
    ///
    /// Fails, with a message naming the URL without any password, if the URL is
    /// unusable, Redis does not answer within 2 s, or a rate is out of range (as for
    /// [`RateLimit::validate`], per second; tokens in [1, 10^12]). If Redis is lost later,
    /// a call needing a new lease retries reaching it with backoff (50 ms to 1 s) for at
    /// most its agent timeout, then fails with a message saying so.
    #[cfg(feature = "redis")]
    pub fn redis(
        url: &str,
        key: &str,
        requests_per_minute: f64,
        tokens_per_minute: Option<u64>,
    ) -> crate::error::Result<Self> {
        let limit = RateLimit {
            per_second: requests_per_minute / 60.0,
            burst: 1,
        };
        limit.validate()?;
        if key.is_empty() {
            return Err(crate::Error::InvalidArgument(
                "the Redis key of a shared rate budget is empty".into(),
            ));
        }
        if let Some(t) = tokens_per_minute.filter(|t| !(1..=MAX_TOKENS_PER_MINUTE).contains(t)) {
            return Err(crate::Error::InvalidArgument(format!(
                "tokens_per_minute {t} is out of range [1, {MAX_TOKENS_PER_MINUTE}]"
            )));
        }
        let remote =
            redis_budget::RedisBudget::connect(url, key, limit.per_second, tokens_per_minute)
                .map_err(crate::Error::InvalidArgument)?;
        Ok(Self {
            remote: Some(remote),
            ..Self::new(limit)
        })
    }

    /// Its settings.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Reserves a start slot and returns when it comes. A Redis budget keeps retrying
    /// while Redis is unreachable; see [`acquire_within`](Self::acquire_within).
    pub async fn acquire(&self) {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.remote {
            let _ = r.acquire(None).await;
            return;
        }
        self.acquire_local().await;
    }

    /// Like [`acquire`](Self::acquire), but a Redis budget that cannot be reached for
    /// `max_wait` gives up with a message. A local limiter never fails.
    pub async fn acquire_within(&self, max_wait: Duration) -> Result<(), String> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.remote {
            return r.acquire(Instant::now().checked_add(max_wait)).await;
        }
        let _ = max_wait;
        self.acquire_local().await;
        Ok(())
    }

    /// Whether calls through this limiter reserve tokens (a Redis budget with
    /// `tokens_per_minute`); the executor then asks the agent for an estimate.
    pub fn counts_tokens(&self) -> bool {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.remote {
            return r.counts_tokens();
        }
        false
    }

    /// Reserves `estimate` tokens before an attempt and waits until the budget has them;
    /// returns how many were reserved (0 without a token budget), to pass to
    /// [`settle_tokens`](Self::settle_tokens). Fails like
    /// [`acquire_within`](Self::acquire_within) if Redis stays unreachable for `max_wait`.
    pub async fn acquire_tokens(&self, estimate: u64, max_wait: Duration) -> Result<u64, String> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.remote {
            return r
                .take_tokens(estimate, Instant::now().checked_add(max_wait))
                .await;
        }
        let _ = (estimate, max_wait);
        Ok(0)
    }

    /// Corrects a reservation from [`acquire_tokens`](Self::acquire_tokens) to the tokens
    /// the attempt `used` (as the server reported them; bounded to a minute's budget).
    pub fn settle_tokens(&self, reserved: u64, used: u64) {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.remote {
            r.settle(reserved, used);
        }
        let _ = (reserved, used);
    }

    async fn acquire_local(&self) {
        let start_at = {
            let now = Instant::now();
            let mut tat = crate::sync::lock(&self.tat);
            let t = tat.map_or(now, |t| t.max(now));
            // Past the clock's range, later starts stay at its end rather than panic.
            *tat = Some(t.checked_add(self.interval).unwrap_or(t));
            t.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(start_at.into()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_limits_neither_panic_nor_hold_back_a_full_burst() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        // Rates validation refuses, and the slowest it accepts, with the largest burst.
        for per_second in [
            1e-300,
            5e-324,
            0.0,
            f64::NAN,
            crate::config::MIN_RATE_PER_SECOND,
        ] {
            let l = RateLimiter::new(RateLimit {
                per_second,
                burst: u32::MAX,
            });
            assert!(l.interval <= crate::config::MAX_DURATION);
            // A full bucket: these start at once (the test would hang for days if not).
            rt.block_on(async {
                for _ in 0..3 {
                    l.acquire().await;
                }
            });
        }
    }
}
