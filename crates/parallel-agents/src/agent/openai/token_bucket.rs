//! The agent's tokens-per-minute budget.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A tokens-per-minute budget: a bucket of one minute's tokens that refills continuously.
/// A caller reserves its estimate at once (the balance may go negative) and waits until
/// the balance it left would have refilled to zero, so callers are served in order;
/// afterwards it settles the difference to the real usage. Both the reservation and the
/// usage count for at most a full bucket, so no report, however absurd, leaves a debt
/// longer than a minute.
pub(super) struct TokenBucket {
    per_sec: f64,
    capacity: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(super) fn per_minute(tpm: u64) -> Self {
        let capacity = tpm as f64;
        Self {
            per_sec: capacity / 60.0,
            capacity,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    fn refill(&self, st: &mut (f64, Instant), now: Instant) {
        let dt = now.saturating_duration_since(st.1).as_secs_f64();
        st.0 = (st.0 + dt * self.per_sec).min(self.capacity);
        st.1 = now;
    }

    /// Reserves `cost` tokens (at most a full bucket) and waits until they are there.
    pub(super) async fn take(&self, cost: u64) {
        let wait = {
            let now = Instant::now();
            let mut st = crate::sync::lock(&self.state);
            self.refill(&mut st, now);
            st.0 -= (cost as f64).min(self.capacity);
            if st.0 >= 0.0 {
                Duration::ZERO
            } else {
                crate::config::saturating_secs(-st.0 / self.per_sec)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Corrects a reservation of `estimated` tokens to the `actual` use.
    pub(super) fn settle(&self, estimated: u64, actual: u64) {
        let mut st = crate::sync::lock(&self.state);
        self.refill(&mut st, Instant::now());
        let estimated = (estimated as f64).min(self.capacity);
        let actual = (actual as f64).min(self.capacity);
        // Never below minus one bucket: at most a minute's wait for whoever comes next.
        st.0 = (st.0 + estimated - actual).clamp(-self.capacity, self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn waits_for_its_budget() {
        rt().block_on(async {
            // 600 per minute = 10 per second, a full bucket of 600.
            let b = TokenBucket::per_minute(600);
            let t = Instant::now();
            b.take(600).await; // the whole bucket, at once
            assert!(t.elapsed() < Duration::from_millis(100));
            b.settle(600, 595); // 5 back
            b.take(10).await; // 5 short: ~0.5 s
            let e = t.elapsed();
            assert!(e >= Duration::from_millis(450), "{e:?}");
            assert!(e < Duration::from_millis(900), "{e:?}");
        });
    }

    #[test]
    fn an_absurd_usage_leaves_at_most_a_minute_of_debt() {
        let b = TokenBucket::per_minute(6_000);
        b.settle(10, u64::MAX);
        b.settle(10, u64::MAX);
        let st = crate::sync::lock(&b.state);
        assert!(st.0 >= -6_000.0, "{}", st.0);
    }
}
