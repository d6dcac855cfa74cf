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
    /// A limiter; `limit` must be valid (see [`crate::ParallelConfig::validate`]).
    pub fn new(limit: RateLimit) -> Self {
        let interval = Duration::from_secs_f64(1.0 / limit.per_second);
        Self {
            interval,
            tolerance: interval * limit.burst.saturating_sub(1),
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
            let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
            let t = tat.map_or(now, |t| t.max(now));
            *tat = Some(t + self.interval);
            t.checked_sub(self.tolerance).unwrap_or(now).max(now)
        };
        tokio::time::sleep_until(start_at.into()).await;
    }
}
