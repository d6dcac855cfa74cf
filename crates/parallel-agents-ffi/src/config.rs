//! `pagent_config`: an opaque builder for [`ParallelConfig`].

use std::ffi::c_char;
use std::time::Duration;

use std::sync::Arc;

use super::guard::{
    boxed, free_boxed, guard, try_mut, try_opt_ref, try_opt_str, try_out_handle, try_str, FfiResult,
};
use super::status::{pagent_status, Failure};
use parallel_agents::config::{ParallelConfig, RateLimit};
use parallel_agents::ratelimit::RateLimiter;

/// Execution settings. Create with `pagent_config_new`, adjust with the setters, pass to
/// `pagent_executor_new` (which copies it), free with `pagent_config_free`.
/// Not thread-safe: do not use one config from two threads at once.
pub struct pagent_config {
    inner: ParallelConfig,
    shared_limiter: Option<Arc<RateLimiter>>,
}

impl pagent_config {
    pub(crate) fn get(&self) -> &ParallelConfig {
        &self.inner
    }

    pub(crate) fn shared_limiter(&self) -> Option<Arc<RateLimiter>> {
        self.shared_limiter.clone()
    }
}

/// A config with the defaults: max_concurrency 4, agent timeout 30 s, no deduplication,
/// consensus threshold 0.6 with early stop on, no retries, no rate limit, stream buffer
/// 64, no hedging, no error budget. Caller owns it and must call `pagent_config_free`. Returns NULL only if out of
/// memory (the process aborts first in practice).
#[no_mangle]
pub extern "C" fn pagent_config_new() -> *mut pagent_config {
    boxed(pagent_config {
        inner: ParallelConfig::default(),
        shared_limiter: None,
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
        let c = try_mut!(config);
        let mut next = c.inner.clone();
        change(&mut next)?;
        next.validate().map_err(parallel_agents::Error::from)?;
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
/// A server's retry-after hint is a floor under it, up to cap_ms: a hint longer than
/// cap_ms fails the call at once, with a message that names the hint (default cap 10 s).
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
/// once. `per_second == 0` removes the limit; otherwise it must be in [1/2592000 (one
/// start per 30 days), 1e9] and `burst >= 1` (any larger burst is fine), or the call
/// fails with `PAGENT_ERR_CONFIG` naming `rate_limit` and the config is unchanged.
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

/// How far a `pagent_submit` batch runs ahead of a slow consumer: it holds at most
/// `buffer + max_concurrency` results not yet taken (running, or finished and waiting)
/// and starts no call past that; 1 to 10,000,000.
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

/// Straggler hedging: once a call has run `after_ms` (0: no fixed delay), or past the
/// batch's observed p95 when `after_p95` is true (whichever comes first), start one
/// duplicate call and take whichever answers first; the other is cancelled. Both off
/// (0, false) disables it. Counted in `pagent_metrics.hedged_count` / `hedge_wins`.
#[no_mangle]
pub extern "C" fn pagent_config_set_hedge(
    config: *mut pagent_config,
    after_ms: u64,
    after_p95: bool,
) -> pagent_status {
    set("pagent_config_set_hedge", config, |c| {
        c.hedge.after = (after_ms != 0).then(|| Duration::from_millis(after_ms));
        c.hedge.after_p95 = after_p95;
        Ok(())
    })
}

/// Error budget: once more than `max_errors` calls of a batch have failed or timed out,
/// the batch cancels what still runs (`pagent_batch_budget_exceeded` then says so, and
/// the cancelled results' error says why). `SIZE_MAX` (the default) means no budget.
#[no_mangle]
pub extern "C" fn pagent_config_set_max_errors(
    config: *mut pagent_config,
    max_errors: usize,
) -> pagent_status {
    set("pagent_config_set_max_errors", config, |c| {
        c.max_errors = (max_errors != usize::MAX).then_some(max_errors);
        Ok(())
    })
}

/// The journal (an SQLite file, created if missing): every finished result is on disk
/// before the host sees it, and an executor made later with the same journal — after a
/// crash, in another process — hands back the stored results (`pagent_result_replayed`)
/// without calling the agent for them, and runs only the missing ones. Results are keyed
/// by question id (`pagent_submit_ids`, else the index). NULL: no journal (the default).
/// The path is checked when the executor is made: `pagent_executor_new` then fails with
/// `PAGENT_ERR_JOURNAL` (cannot create, open or write it; not a journal; or a build
/// without the `journal` feature), `PAGENT_ERR_JOURNAL_LOCKED` (another executor,
/// reader or process holds it: one holder at a time, until its executor is freed),
/// `PAGENT_ERR_JOURNAL_MISMATCH` (made by a different agent or options) or
/// `PAGENT_ERR_JOURNAL_VERSION` (a newer format). Empty: `PAGENT_ERR_INVALID_ARG`.
#[no_mangle]
pub extern "C" fn pagent_config_set_journal(
    config: *mut pagent_config,
    path: *const std::ffi::c_char,
) -> pagent_status {
    set("pagent_config_set_journal", config, |c| {
        match try_opt_str!(path) {
            Some("") => return Err(Failure::invalid("path is empty")),
            p => c.journal.path = p.map(std::path::PathBuf::from),
        }
        Ok(())
    })
}

/// On a rerun with a journal, run again the questions whose stored result is a retryable
/// failure (`pagent_result_retryable`: an error the agent called retryable, or a
/// timeout) instead of handing it back. Off by default: every stored result is replayed.
#[no_mangle]
pub extern "C" fn pagent_config_set_journal_rerun_failed(
    config: *mut pagent_config,
    rerun_failed: bool,
) -> pagent_status {
    set("pagent_config_set_journal_rerun_failed", config, |c| {
        c.journal.rerun_failed = rerun_failed;
        Ok(())
    })
}

/// Accept a journal made by a different agent or options (its fingerprint differs)
/// instead of failing with `PAGENT_ERR_JOURNAL_MISMATCH`: its results are replayed and
/// the new fingerprint recorded. Off by default.
#[no_mangle]
pub extern "C" fn pagent_config_set_journal_allow_mismatch(
    config: *mut pagent_config,
    allow: bool,
) -> pagent_status {
    set("pagent_config_set_journal_allow_mismatch", config, |c| {
        c.journal.allow_mismatch = allow;
        Ok(())
    })
}

/// Largest size of the journal's database in bytes (whole pages); past it a write fails
/// as on a full disk: the batch stops, the results it could not store come back
/// `PAGENT_OUTCOME_CANCELLED` with the journal's error, and new submits fail with
/// `PAGENT_ERR_JOURNAL`. 0 (the default): no limit but the disk's.
#[no_mangle]
pub extern "C" fn pagent_config_set_journal_max_bytes(
    config: *mut pagent_config,
    max_bytes: u64,
) -> pagent_status {
    set("pagent_config_set_journal_max_bytes", config, |c| {
        c.journal.max_bytes = (max_bytes != 0).then_some(max_bytes);
        Ok(())
    })
}

/// A rate limit that several executors share: their calls start, together, at most
/// `per_second` on average with up to `burst` at once. Attach with
/// `pagent_config_set_shared_rate_limiter`. Thread-safe.
pub struct pagent_rate_limiter {
    inner: Arc<RateLimiter>,
}

/// Makes a shared rate limiter; `per_second` in [1/2592000, 1e9] and `burst >= 1`, as for
/// `pagent_config_set_rate_limit` (else `PAGENT_ERR_CONFIG`). Out: the new limiter, or
/// NULL. Caller owns it (`pagent_rate_limiter_free`); executors using it keep their own
/// reference.
#[no_mangle]
pub extern "C" fn pagent_rate_limiter_new(
    per_second: f64,
    burst: u32,
    out: *mut *mut pagent_rate_limiter,
) -> pagent_status {
    guard("pagent_rate_limiter_new", || -> FfiResult {
        let out = try_out_handle!(out);
        let limit = RateLimit { per_second, burst };
        limit.validate().map_err(parallel_agents::Error::from)?;
        *out = boxed(pagent_rate_limiter {
            inner: Arc::new(RateLimiter::new(limit)),
        });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Makes a rate limiter whose budget is kept in Redis and shared by every process (and
/// executor) that uses the same `url` and `key`: `requests_per_minute` starts in all, in
/// [60/2592000, 6e10]. `url` is a Redis URL (`redis://[user:password@]host[:port][/db]`);
/// `key` is the Redis key holding the budget (non-empty). `tokens_per_minute`, if not 0,
/// adds a token budget shared the same way (key `key:tokens`, at most 10^12; a bucket of
/// one minute's tokens): each attempt reserves the agent's estimate (the OpenAI agent:
/// prompt bytes / 4 plus its completion limit; other agents: question bytes / 4) and
/// settles it with the usage the agent reports (an attempt without usage keeps its
/// estimate). Use it like a `pagent_rate_limiter_new` one
/// (`pagent_config_set_shared_rate_limiter`, `pagent_rate_limiter_free`).
///
/// Each process leases about 0.2 s of the budget at a time (at least one start, or one
/// call's tokens) and spends it locally in order. Connects now (blocking for up to 2 s): an unusable URL or
/// a Redis that does not answer is `PAGENT_ERR_INVALID_ARG`, with a message naming the
/// URL without its password. If Redis is lost later, a call needing a new lease keeps
/// trying to reach it with backoff (50 ms doubling to 1 s) for at most the agent timeout,
/// then fails with a message saying the budget was unreachable; no question is lost.
/// Built without the `redis` feature: `PAGENT_ERR_INVALID_ARG`. Not from an agent
/// callback (`PAGENT_ERR_REENTRANT`). Out: the new limiter, or NULL; caller owns it.
#[no_mangle]
pub extern "C" fn pagent_rate_limiter_redis(
    url: *const c_char,
    key: *const c_char,
    requests_per_minute: f64,
    tokens_per_minute: u64,
    out: *mut *mut pagent_rate_limiter,
) -> pagent_status {
    guard("pagent_rate_limiter_redis", || -> FfiResult {
        let out = try_out_handle!(out);
        let url = try_str!(url);
        let key = try_str!(key);
        parallel_agents::runtime::ensure_may_block("pagent_rate_limiter_redis")?;
        let tpm = (tokens_per_minute != 0).then_some(tokens_per_minute);
        let limiter = redis_limiter(url, key, requests_per_minute, tpm)?;
        *out = boxed(pagent_rate_limiter {
            inner: Arc::new(limiter),
        });
        Ok(pagent_status::PAGENT_OK)
    })
}

#[cfg(feature = "redis")]
fn redis_limiter(url: &str, key: &str, rpm: f64, tpm: Option<u64>) -> Result<RateLimiter, Failure> {
    Ok(RateLimiter::redis(url, key, rpm, tpm)?)
}

#[cfg(not(feature = "redis"))]
fn redis_limiter(
    _url: &str,
    _key: &str,
    _rpm: f64,
    _tpm: Option<u64>,
) -> Result<RateLimiter, Failure> {
    Err(Failure::invalid(
        "built without Redis support (this build of parallel-agents has the `redis` feature off)",
    ))
}

/// Frees the caller's reference to a limiter. NULL is a no-op.
#[no_mangle]
pub extern "C" fn pagent_rate_limiter_free(limiter: *mut pagent_rate_limiter) {
    let _ = guard("pagent_rate_limiter_free", || {
        free_boxed(limiter);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Makes executors created from this config share `limiter` (replacing any
/// `pagent_config_set_rate_limit`); NULL detaches it. The config keeps a reference.
#[no_mangle]
pub extern "C" fn pagent_config_set_shared_rate_limiter(
    config: *mut pagent_config,
    limiter: *const pagent_rate_limiter,
) -> pagent_status {
    guard("pagent_config_set_shared_rate_limiter", || -> FfiResult {
        let c = try_mut!(config);
        c.shared_limiter = try_opt_ref!(limiter).map(|l| Arc::clone(&l.inner));
        Ok(pagent_status::PAGENT_OK)
    })
}
