//! [`ParallelConfig`]: how an executor runs its calls, and its validation.

use std::fmt;
use std::time::Duration;

/// Largest accepted `max_concurrency`. Far above anything useful on one machine; it keeps
/// absurd values (e.g. `SIZE_MAX` from a C host) from reaching the semaphore.
pub const MAX_CONCURRENCY_LIMIT: usize = 10_000_000;
/// Largest accepted per-call timeout or backoff (30 days); larger values overflow timers.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `d`, at most [`MAX_DURATION`]: a wait computed from outside input (a server's hint, a
/// debt) stays within what timers take.
pub(crate) fn clamp_duration(d: Duration) -> Duration {
    d.min(MAX_DURATION)
}

/// `secs` seconds as a duration, saturating: anything longer than [`MAX_DURATION`], and
/// anything that is no duration at all (negative, infinite, NaN), gives [`MAX_DURATION`].
/// Never panics, unlike [`Duration::from_secs_f64`].
pub(crate) fn saturating_secs(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).map_or(MAX_DURATION, clamp_duration)
}
/// Largest accepted `max_retries`.
pub const MAX_RETRIES_LIMIT: u32 = 100;
/// Slowest accepted rate limit: one start per [`MAX_DURATION`]. Below it the interval
/// between starts overflows timers.
pub const MIN_RATE_PER_SECOND: f64 = 1.0 / (30.0 * 24.0 * 3600.0);
/// Fastest accepted rate limit, in starts per second.
pub const MAX_RATE_PER_SECOND: f64 = 1e9;
/// Largest accepted stream buffer.
pub const MAX_BUFFER_LIMIT: usize = 10_000_000;
/// Most voters one consensus round may ask. A round keeps every voter's result (and a
/// vote per distinct answer) until it ends, so this bounds its memory to tens of MB; far
/// more voters than a vote needs. The C ABI exports it as `PAGENT_MAX_CONSENSUS_AGENTS`.
pub const MAX_CONSENSUS_AGENTS: usize = 100_000;

/// Retry policy: exponential backoff with full jitter.
///
/// Attempt `k` (1-based, after the first failure) sleeps a uniformly random time in
/// `[0, min(cap, base * 2^(k-1))]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Backoff before the first retry (upper bound of the jitter window).
    pub backoff_base: Duration,
    /// Upper bound on any single backoff, and on a server's retry-after hint: a call told
    /// to wait longer fails at once, with a message that names the hint.
    pub backoff_cap: Duration,
    /// Whether a timed-out attempt is retried (errors say themselves whether they are).
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 0,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(10),
            retry_timeouts: false,
        }
    }
}

/// Straggler hedging: when a call runs long, start one duplicate and take whichever
/// answers first; the other is cancelled. The duplicate runs under the call's own
/// concurrency permit, so at most one extra call per permit is in flight.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HedgePolicy {
    /// Hedge once a call has run this long.
    pub after: Option<Duration>,
    /// Hedge once a call has run past the batch's observed p95 (after 20 results), or
    /// past `after` if that is sooner.
    pub after_p95: bool,
}

impl HedgePolicy {
    /// Whether hedging is on.
    pub fn enabled(&self) -> bool {
        self.after.is_some() || self.after_p95
    }
}

/// A token-bucket rate limit on call *starts* (every attempt counts).
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained starts per second, in
    /// [[`MIN_RATE_PER_SECOND`], [`MAX_RATE_PER_SECOND`]].
    pub per_second: f64,
    /// Starts allowed at once from a full bucket; at least 1 (any `u32` is accepted: a
    /// burst longer than the timers reach simply never makes a start wait).
    pub burst: u32,
}

impl RateLimit {
    /// Time between starts at the sustained rate, `1 / per_second`; saturates into
    /// `[0, MAX_DURATION]` for rates [`validate`](ParallelConfig::validate) refuses, so
    /// it never panics.
    pub fn interval(&self) -> Duration {
        saturating_secs(1.0 / self.per_second)
    }

    /// Checks the limit alone (as [`ParallelConfig::validate`] does), e.g. before
    /// sharing one [`RateLimiter`](crate::RateLimiter) among executors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let r = self.per_second;
        // NaN fails `contains` too.
        if !(MIN_RATE_PER_SECOND..=MAX_RATE_PER_SECOND).contains(&r) {
            return Err(err(
                "rate_limit",
                format!(
                    "per_second = {r:e} is not in [{MIN_RATE_PER_SECOND:e} (one start per \
                     30 days), {MAX_RATE_PER_SECOND:e}]"
                ),
            ));
        }
        if self.burst == 0 {
            return Err(err("rate_limit", "burst must be at least 1"));
        }
        Ok(())
    }
}

/// How an executor runs its calls. Build with [`Default`] and struct update syntax, then
/// [`validate`](Self::validate) (the executor constructors validate too).
#[derive(Clone, Debug, PartialEq)]
pub struct ParallelConfig {
    /// Calls of one executor in flight at once, across all its batches.
    pub max_concurrency: usize,
    /// Limit on each attempt of each call; an attempt past it ends `TimedOut`.
    pub agent_timeout: Duration,
    /// Drop results whose normalised answer was already seen (first one kept).
    pub deduplicate_results: bool,
    /// Fraction of counted votes the winning answer needs for consensus, in `[0, 1]`.
    pub consensus_threshold: f64,
    /// Stop a consensus round as soon as the outstanding calls can no longer change the
    /// winner or the reached/not-reached verdict; the rest are cancelled. On by default.
    pub consensus_early_stop: bool,
    /// Retries with backoff.
    pub retry: RetryPolicy,
    /// Optional limit on call starts.
    pub rate_limit: Option<RateLimit>,
    /// Results buffered between a streaming batch and its consumer: a batch runs at most
    /// `stream_buffer + max_concurrency` calls ahead of it (running, or finished and
    /// waiting).
    pub stream_buffer: usize,
    /// Straggler hedging (off by default).
    pub hedge: HedgePolicy,
    /// Error budget: once more than this many calls of a batch have failed or timed out,
    /// the batch cancels what still runs. `None`: no budget.
    pub max_errors: Option<usize>,
    /// Where finished results are stored before the host sees them, and replayed from on
    /// a rerun (off by default; see [`crate::journal`]).
    pub journal: JournalConfig,
}

/// The journal's settings: with a `path`, every finished result is durable in an SQLite
/// file before the host sees it, and a rerun replays stored results instead of calling
/// the agent again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalConfig {
    /// The journal file (created if missing); `None`: no journal.
    pub path: Option<std::path::PathBuf>,
    /// On a rerun, run again the questions whose stored result is a retryable failure
    /// (an error the agent called retryable, or a timeout), instead of replaying it.
    pub rerun_failed: bool,
    /// Accept a journal whose fingerprint (the agent and its options) differs from this
    /// executor's; its stored results are replayed and the new fingerprint recorded.
    pub allow_mismatch: bool,
    /// Largest size of the journal's database in bytes (rounded down to whole pages);
    /// past it, writes fail as on a full disk. `None`: no limit but the disk's.
    pub max_bytes: Option<u64>,
}

impl Default for ParallelConfig {
    fn default() -> Self {
        Self {
            max_concurrency: 4,
            agent_timeout: Duration::from_secs(30),
            deduplicate_results: false,
            consensus_threshold: 0.6,
            consensus_early_stop: true,
            retry: RetryPolicy::default(),
            rate_limit: None,
            stream_buffer: 64,
            hedge: HedgePolicy::default(),
            max_errors: None,
            journal: JournalConfig::default(),
        }
    }
}

/// A configuration value that is out of range; names the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The offending field, as named in [`ParallelConfig`].
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

impl ParallelConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_concurrency == 0 {
            return Err(err("max_concurrency", "must be at least 1"));
        }
        if self.max_concurrency > MAX_CONCURRENCY_LIMIT {
            return Err(err(
                "max_concurrency",
                format!(
                    "{} exceeds the limit {MAX_CONCURRENCY_LIMIT}",
                    self.max_concurrency
                ),
            ));
        }
        check_duration("agent_timeout", self.agent_timeout, false)?;
        if !(0.0..=1.0).contains(&self.consensus_threshold) {
            // NaN fails `contains` too.
            return Err(err(
                "consensus_threshold",
                format!("{} is not in [0, 1]", self.consensus_threshold),
            ));
        }
        if self.retry.max_retries > MAX_RETRIES_LIMIT {
            return Err(err(
                "max_retries",
                format!(
                    "{} exceeds the limit {MAX_RETRIES_LIMIT}",
                    self.retry.max_retries
                ),
            ));
        }
        check_duration("backoff_base", self.retry.backoff_base, true)?;
        check_duration("backoff_cap", self.retry.backoff_cap, true)?;
        if self.retry.backoff_cap < self.retry.backoff_base {
            return Err(err("backoff_cap", "must not be below backoff_base"));
        }
        if let Some(rl) = &self.rate_limit {
            rl.validate()?;
        }
        if let Some(d) = self.hedge.after {
            check_duration("hedge_after", d, false)?;
        }
        if self.stream_buffer == 0 || self.stream_buffer > MAX_BUFFER_LIMIT {
            return Err(err(
                "stream_buffer",
                format!("{} is not in [1, {MAX_BUFFER_LIMIT}]", self.stream_buffer),
            ));
        }
        Ok(())
    }
}

fn check_duration(field: &'static str, d: Duration, zero_ok: bool) -> Result<(), ConfigError> {
    if !zero_ok && d.is_zero() {
        return Err(err(field, "must be greater than zero"));
    }
    if d > MAX_DURATION {
        return Err(err(field, format!("{d:?} exceeds the limit of 30 days")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        ParallelConfig::default().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases: Vec<(ParallelConfig, &str)> = vec![
            (
                ParallelConfig {
                    max_concurrency: 0,
                    ..Default::default()
                },
                "max_concurrency",
            ),
            (
                ParallelConfig {
                    agent_timeout: Duration::ZERO,
                    ..Default::default()
                },
                "agent_timeout",
            ),
            (
                ParallelConfig {
                    consensus_threshold: f64::NAN,
                    ..Default::default()
                },
                "consensus_threshold",
            ),
            (
                ParallelConfig {
                    consensus_threshold: 1.5,
                    ..Default::default()
                },
                "consensus_threshold",
            ),
            (
                ParallelConfig {
                    consensus_threshold: -0.1,
                    ..Default::default()
                },
                "consensus_threshold",
            ),
            (
                ParallelConfig {
                    rate_limit: Some(RateLimit {
                        per_second: f64::INFINITY,
                        burst: 1,
                    }),
                    ..Default::default()
                },
                "rate_limit",
            ),
            (
                ParallelConfig {
                    stream_buffer: 0,
                    ..Default::default()
                },
                "stream_buffer",
            ),
        ];
        for (cfg, field) in cases {
            let e = cfg.validate().unwrap_err();
            assert_eq!(e.field, field);
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn rate_limits_are_refused_where_their_interval_would_overflow() {
        let rl = |per_second, burst| ParallelConfig {
            rate_limit: Some(RateLimit { per_second, burst }),
            ..Default::default()
        };
        for r in [
            1e-7,
            1e-12,
            1e-20,
            5e-324,
            0.0,
            -1.0,
            f64::NAN,
            2e9,
            f64::INFINITY,
        ] {
            let e = rl(r, 1).validate().unwrap_err();
            assert_eq!(e.field, "rate_limit");
            assert!(e.message.contains("per_second"), "{e}");
        }
        assert!(rl(1.0, 0).validate().unwrap_err().message.contains("burst"));
        for (r, b) in [
            (MIN_RATE_PER_SECOND, u32::MAX),
            (MAX_RATE_PER_SECOND, u32::MAX),
            (1.0, 1),
        ] {
            rl(r, b).validate().unwrap();
            let i = RateLimit {
                per_second: r,
                burst: b,
            }
            .interval();
            assert!(i <= MAX_DURATION && !i.is_zero(), "{r}: {i:?}");
        }
        // Saturates rather than panics for rates that never pass validation.
        for r in [5e-324, 0.0, -1.0, f64::NAN] {
            let i = RateLimit {
                per_second: r,
                burst: 1,
            }
            .interval();
            assert_eq!(i, MAX_DURATION);
        }
        assert_eq!(
            RateLimit {
                per_second: f64::INFINITY,
                burst: 1
            }
            .interval(),
            Duration::ZERO
        );
    }
}
