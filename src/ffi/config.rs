//! `pagent_config`: an opaque builder for [`ParallelConfig`].

use std::time::Duration;

use super::guard::{arg_mut, boxed, free_boxed, guard, FfiResult};
use super::status::{pagent_status, Failure};
use crate::config::{ParallelConfig, RateLimit};

/// Execution settings. Create with `pagent_config_new`, adjust with the setters, pass to
/// `pagent_executor_new` (which copies it), free with `pagent_config_free`.
/// Not thread-safe: do not use one config from two threads at once.
pub struct pagent_config {
    inner: ParallelConfig,
}

impl pagent_config {
    pub(crate) fn get(&self) -> &ParallelConfig {
        &self.inner
    }
}

/// A config with the defaults: max_concurrency 4, agent timeout 30 s, no deduplication,
/// consensus threshold 0.6 with early stop off, no retries, no rate limit, stream buffer
/// 64. Caller owns it and must call `pagent_config_free`. Returns NULL only if out of
/// memory (the process aborts first in practice).
#[no_mangle]
pub extern "C" fn pagent_config_new() -> *mut pagent_config {
    boxed(pagent_config {
        inner: ParallelConfig::default(),
    })
}

/// Frees a config. NULL is a no-op. Executors made from it keep their own copy.
#[no_mangle]
pub extern "C" fn pagent_config_free(config: *mut pagent_config) {
    let _ = guard("pagent_config_free", || {
        free_boxed(config);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Applies `change` to a copy, validates it, and keeps it only if valid.
fn set(
    function: &str,
    config: *mut pagent_config,
    change: impl FnOnce(&mut ParallelConfig) -> Result<(), Failure>,
) -> pagent_status {
    guard(function, || -> FfiResult {
        let c = arg_mut(config, "config")?;
        let mut next = c.inner.clone();
        change(&mut next)?;
        next.validate().map_err(crate::Error::from)?;
        c.inner = next;
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Calls of one executor in flight at once, across its batches; 1 to 10,000,000.
#[no_mangle]
pub extern "C" fn pagent_config_set_max_concurrency(
    config: *mut pagent_config,
    max_concurrency: usize,
) -> pagent_status {
    set("pagent_config_set_max_concurrency", config, |c| {
        c.max_concurrency = max_concurrency;
        Ok(())
    })
}

/// Limit on each attempt of each call, in ms; 1 ms to 30 days.
#[no_mangle]
pub extern "C" fn pagent_config_set_agent_timeout_ms(
    config: *mut pagent_config,
    timeout_ms: u64,
) -> pagent_status {
    set("pagent_config_set_agent_timeout_ms", config, |c| {
        c.agent_timeout = Duration::from_millis(timeout_ms);
        Ok(())
    })
}

/// Whether `pagent_execute` drops results whose normalised answer was already seen (the
/// first is kept; failures are always kept). Streams are never deduplicated.
#[no_mangle]
pub extern "C" fn pagent_config_set_deduplicate(
    config: *mut pagent_config,
    deduplicate: bool,
) -> pagent_status {
    set("pagent_config_set_deduplicate", config, |c| {
        c.deduplicate_results = deduplicate;
        Ok(())
    })
}

/// Fraction of counted votes the winner needs for consensus, in [0, 1]; NaN is rejected.
#[no_mangle]
pub extern "C" fn pagent_config_set_consensus_threshold(
    config: *mut pagent_config,
    threshold: f64,
) -> pagent_status {
    set("pagent_config_set_consensus_threshold", config, |c| {
        c.consensus_threshold = threshold;
        Ok(())
    })
}

/// Whether a consensus round stops (cancelling the rest) once the outstanding calls can
/// no longer change the winner or the reached/not-reached verdict.
#[no_mangle]
pub extern "C" fn pagent_config_set_consensus_early_stop(
    config: *mut pagent_config,
    early_stop: bool,
) -> pagent_status {
    set("pagent_config_set_consensus_early_stop", config, |c| {
        c.consensus_early_stop = early_stop;
        Ok(())
    })
}

/// Retries after a retryable failure; 0 to 100.
#[no_mangle]
pub extern "C" fn pagent_config_set_max_retries(
    config: *mut pagent_config,
    max_retries: u32,
) -> pagent_status {
    set("pagent_config_set_max_retries", config, |c| {
        c.retry.max_retries = max_retries;
        Ok(())
    })
}

/// Backoff before retry k: uniform in [0, min(cap_ms, base_ms * 2^(k-1))] ("full jitter").
/// Requires base_ms <= cap_ms <= 30 days.
#[no_mangle]
pub extern "C" fn pagent_config_set_retry_backoff_ms(
    config: *mut pagent_config,
    base_ms: u64,
    cap_ms: u64,
) -> pagent_status {
    set("pagent_config_set_retry_backoff_ms", config, |c| {
        c.retry.backoff_base = Duration::from_millis(base_ms);
        c.retry.backoff_cap = Duration::from_millis(cap_ms);
        Ok(())
    })
}

/// Whether a timed-out attempt is retried (default: no).
#[no_mangle]
pub extern "C" fn pagent_config_set_retry_timeouts(
    config: *mut pagent_config,
    retry_timeouts: bool,
) -> pagent_status {
    set("pagent_config_set_retry_timeouts", config, |c| {
        c.retry.retry_timeouts = retry_timeouts;
        Ok(())
    })
}

/// Limits call starts (every attempt) to `per_second` on average with up to `burst` at
/// once. `per_second == 0` removes the limit; otherwise it must be in (0, 1e9] and
/// `burst >= 1`.
#[no_mangle]
pub extern "C" fn pagent_config_set_rate_limit(
    config: *mut pagent_config,
    per_second: f64,
    burst: u32,
) -> pagent_status {
    set("pagent_config_set_rate_limit", config, |c| {
        c.rate_limit = (per_second != 0.0).then_some(RateLimit { per_second, burst });
        Ok(())
    })
}

/// Finished results a `pagent_submit` batch holds for a slow consumer before it stops
/// starting calls; 1 to 10,000,000.
#[no_mangle]
pub extern "C" fn pagent_config_set_stream_buffer(
    config: *mut pagent_config,
    buffer: usize,
) -> pagent_status {
    set("pagent_config_set_stream_buffer", config, |c| {
        c.stream_buffer = buffer;
        Ok(())
    })
}
