//! A token-bucket rate limit on call starts, shareable between executors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimit;

/// Limits how fast calls start: on average `per_second`, with up to `burst` at once.
///
/// Implemented as GCRA (virtual scheduling): each caller reserves the next start slot, so
/// waiters are served in order without a thundering herd. A caller cancelled while
/// waiting forfeits its slot, which can only make the observed rate lower.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    /// Theoretical arrival time of the next start.
    tat: Mutex<Option<Instant>>,
    limit: RateLimit,
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
        }
    }

    /// Its settings.
    pub fn limit(&self) -> &RateLimit {
        &self.limit
    }

    /// Reserves a start slot and returns when it comes.
    pub async fn acquire(&self) {
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
