//! `pagent_result`, `pagent_results`, `pagent_consensus` and the `pagent_metrics` struct.

use std::ffi::{c_char, CString};

use super::guard::{
    free_boxed, guard, guard_value, into_cstring, to_cstring, try_out, try_out_handle, try_ref,
    FfiResult,
};
use super::status::{pagent_status, Failure};
use parallel_agents::executor::ConsensusResult;
use parallel_agents::metrics::{micros, ExecutionMetrics};
use parallel_agents::result::{AgentResult, Outcome};

/// How a call ended.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pagent_outcome {
    /// The agent answered.
    PAGENT_OUTCOME_OK = 0,
    /// The agent failed (error, panic, or non-UTF-8 answer) after any retries.
    PAGENT_OUTCOME_FAILED = 1,
    /// The last attempt ran past the agent timeout.
    PAGENT_OUTCOME_TIMED_OUT = 2,
    /// Cancelled (batch cancel or free, consensus early stop, shutdown) or never started.
    PAGENT_OUTCOME_CANCELLED = 3,
}

impl From<Outcome> for pagent_outcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => Self::PAGENT_OUTCOME_OK,
            Outcome::Failed => Self::PAGENT_OUTCOME_FAILED,
            Outcome::TimedOut => Self::PAGENT_OUTCOME_TIMED_OUT,
            Outcome::Cancelled => Self::PAGENT_OUTCOME_CANCELLED,
        }
    }
}

/// One call's result. Either borrowed from a `pagent_results` / `pagent_consensus`
/// (`const pagent_result *`, valid until that is freed; never free it) or owned, from
/// `pagent_batch_next` (free with `pagent_result_free`). Strings it returns are owned by
/// it and valid until it (or its owner) is freed.
pub struct pagent_result {
    /// The call; its answer and error strings moved into the fields below.
    inner: AgentResult,
    /// Made on first use: few hosts read the question back, and it is the batch's.
    question: std::sync::OnceLock<CString>,
    /// Made on first use, like the question.
    id: std::sync::OnceLock<CString>,
    answer: Option<CString>,
    error: Option<CString>,
}

impl pagent_result {
    pub(crate) fn new(mut inner: AgentResult) -> Self {
        Self {
            question: std::sync::OnceLock::new(),
            id: std::sync::OnceLock::new(),
            answer: inner.answer.take().map(into_cstring),
            error: inner.error.take().map(into_cstring),
            inner,
        }
    }
}

/// Frees a result obtained from `pagent_batch_next`. NULL is a no-op. Never pass a
/// result borrowed from `pagent_results_get`.
#[no_mangle]
pub extern "C" fn pagent_result_free(result: *mut pagent_result) {
    let _ = guard("pagent_result_free", || {
        free_boxed(result);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Runs an accessor of a result: `default` if `result` is NULL.
fn with_result<T>(
    f: &str,
    result: *const pagent_result,
    default: T,
    get: impl FnOnce(&pagent_result) -> T,
) -> T {
    guard_value(f, default, || Ok(get(try_ref!(result))))
}

/// How the call ended (`PAGENT_OUTCOME_FAILED` for NULL).
#[no_mangle]
pub extern "C" fn pagent_result_outcome(result: *const pagent_result) -> pagent_outcome {
    with_result(
        "pagent_result_outcome",
        result,
        pagent_outcome::PAGENT_OUTCOME_FAILED,
        |r| r.inner.outcome.into(),
    )
}

/// The answer, or NULL unless the outcome is OK. Owned by the result.
#[no_mangle]
pub extern "C" fn pagent_result_answer(result: *const pagent_result) -> *const c_char {
    with_result("pagent_result_answer", result, std::ptr::null(), |r| {
        r.answer.as_ref().map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// Why the call did not succeed, or NULL if it did. Owned by the result.
#[no_mangle]
pub extern "C" fn pagent_result_error(result: *const pagent_result) -> *const c_char {
    with_result("pagent_result_error", result, std::ptr::null(), |r| {
        r.error.as_ref().map_or(std::ptr::null(), |a| a.as_ptr())
    })
}

/// The question asked. Owned by the result; NULL only for a NULL result.
#[no_mangle]
pub extern "C" fn pagent_result_question(result: *const pagent_result) -> *const c_char {
    with_result("pagent_result_question", result, std::ptr::null(), |r| {
        r.question
            .get_or_init(|| to_cstring(&r.inner.question))
            .as_ptr()
    })
}

/// The question's id: the host's (`pagent_submit_ids`), else its index in decimal
/// (`"0"`, `"1"`, ...; a consensus voter's index). Owned by the result; NULL only for a
/// NULL result.
#[no_mangle]
pub extern "C" fn pagent_result_id(result: *const pagent_result) -> *const c_char {
    with_result("pagent_result_id", result, std::ptr::null(), |r| {
        r.id.get_or_init(|| to_cstring(&r.inner.id)).as_ptr()
    })
}

/// Whether the result was read back from the journal instead of running the agent
/// (false for NULL).
#[no_mangle]
pub extern "C" fn pagent_result_replayed(result: *const pagent_result) -> bool {
    with_result("pagent_result_replayed", result, false, |r| {
        r.inner.replayed
    })
}

/// Whether a rerun could succeed: a failure the agent called retryable (429, 5xx,
/// connection errors, ...) or a timeout (false for OK results and for NULL).
#[no_mangle]
pub extern "C" fn pagent_result_retryable(result: *const pagent_result) -> bool {
    with_result("pagent_result_retryable", result, false, |r| {
        r.inner.retryable
    })
}

/// Logical agent slot: question index (single agent), voter index (consensus) or pool
/// member index (pool).
#[no_mangle]
pub extern "C" fn pagent_result_agent_id(result: *const pagent_result) -> usize {
    with_result("pagent_result_agent_id", result, 0, |r| r.inner.agent_id)
}

/// Position of the question in its batch (voter index in a consensus round).
#[no_mangle]
pub extern "C" fn pagent_result_question_index(result: *const pagent_result) -> usize {
    with_result("pagent_result_question_index", result, 0, |r| {
        r.inner.question_index
    })
}

/// Time from the first attempt's start to the end, in microseconds (0 if never started).
#[no_mangle]
pub extern "C" fn pagent_result_duration_us(result: *const pagent_result) -> u64 {
    with_result("pagent_result_duration_us", result, 0, |r| {
        micros(r.inner.duration)
    })
}

/// Attempts made, retries included (0 if never started).
#[no_mangle]
pub extern "C" fn pagent_result_attempts(result: *const pagent_result) -> u32 {
    with_result("pagent_result_attempts", result, 0, |r| r.inner.attempts)
}

/// Prompt tokens the answering call used (0 if the agent does not report usage).
#[no_mangle]
pub extern "C" fn pagent_result_prompt_tokens(result: *const pagent_result) -> u64 {
    with_result("pagent_result_prompt_tokens", result, 0, |r| {
        r.inner.usage.map_or(0, |u| u.prompt_tokens)
    })
}

/// Completion tokens the answering call used (0 if the agent does not report usage).
#[no_mangle]
pub extern "C" fn pagent_result_completion_tokens(result: *const pagent_result) -> u64 {
    with_result("pagent_result_completion_tokens", result, 0, |r| {
        r.inner.usage.map_or(0, |u| u.completion_tokens)
    })
}

/// Metrics as plain numbers; durations in microseconds. Latency figures are over calls
/// that ran to an outcome (ok, failed, timed out); cancelled calls are only counted.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct pagent_metrics {
    /// Wall time from the first call's start to the last call's end.
    pub total_duration_us: u64,
    /// Calls that answered.
    pub successful_count: u64,
    /// Calls that failed after their retries.
    pub failed_count: u64,
    /// Calls whose last attempt timed out.
    pub timed_out_count: u64,
    /// Calls cancelled or never started.
    pub cancelled_count: u64,
    /// All calls: the sum of the four counts.
    pub total_count: u64,
    /// Attempts, retries included.
    pub attempts: u64,
    /// Calls for which a straggler hedge (duplicate call) was started.
    pub hedged_count: u64,
    /// Hedges that answered before the original call.
    pub hedge_wins: u64,
    /// Mean per-call duration.
    pub avg_duration_us: u64,
    /// Shortest per-call duration.
    pub min_duration_us: u64,
    /// Longest per-call duration.
    pub max_duration_us: u64,
    /// Median per-call duration.
    pub p50_duration_us: u64,
    /// 95th percentile per-call duration.
    pub p95_duration_us: u64,
    /// 99th percentile per-call duration.
    pub p99_duration_us: u64,
    /// Calls that ran to an outcome per second of `total_duration_us`.
    pub throughput: f64,
    /// Prompt tokens reported by the answering calls (LLM agents).
    pub prompt_tokens: u64,
    /// Completion tokens reported by the answering calls.
    pub completion_tokens: u64,
}

impl From<&ExecutionMetrics> for pagent_metrics {
    fn from(m: &ExecutionMetrics) -> Self {
        Self {
            total_duration_us: micros(m.total_duration),
            successful_count: m.successful_count,
            failed_count: m.failed_count,
            timed_out_count: m.timed_out_count,
            cancelled_count: m.cancelled_count,
            total_count: m.total_count,
            attempts: m.attempts,
            hedged_count: m.hedged_count,
            hedge_wins: m.hedge_wins,
            avg_duration_us: micros(m.avg_duration),
            min_duration_us: micros(m.min_duration),
            max_duration_us: micros(m.max_duration),
            p50_duration_us: micros(m.p50_duration),
            p95_duration_us: micros(m.p95_duration),
            p99_duration_us: micros(m.p99_duration),
            throughput: m.throughput,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
    }
}

impl From<&pagent_metrics> for ExecutionMetrics {
    fn from(m: &pagent_metrics) -> Self {
        use std::time::Duration as D;
        Self {
            total_duration: D::from_micros(m.total_duration_us),
            successful_count: m.successful_count,
            failed_count: m.failed_count,
            timed_out_count: m.timed_out_count,
            cancelled_count: m.cancelled_count,
            total_count: m.total_count,
            attempts: m.attempts,
            hedged_count: m.hedged_count,
            hedge_wins: m.hedge_wins,
            avg_duration: D::from_micros(m.avg_duration_us),
            min_duration: D::from_micros(m.min_duration_us),
            max_duration: D::from_micros(m.max_duration_us),
            p50_duration: D::from_micros(m.p50_duration_us),
            p95_duration: D::from_micros(m.p95_duration_us),
            p99_duration: D::from_micros(m.p99_duration_us),
            throughput: m.throughput,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
    }
}

/// The results of a batch in question order, with its metrics. Free with
/// `pagent_results_free`; results borrowed from it die with it.
pub struct pagent_results {
    items: Vec<pagent_result>,
    metrics: ExecutionMetrics,
}

impl pagent_results {
    pub(crate) fn new(results: Vec<AgentResult>, metrics: ExecutionMetrics) -> Self {
        Self {
            items: results.into_iter().map(pagent_result::new).collect(),
            metrics,
        }
    }
}

/// Number of results (0 for NULL).
#[no_mangle]
pub extern "C" fn pagent_results_len(results: *const pagent_results) -> usize {
    guard_value("pagent_results_len", 0, || {
        Ok(try_ref!(results).items.len())
    })
}

/// Borrows result `index`. Out: `*out` points into `results` and stays valid until
/// `results` is freed; do not free it. `PAGENT_ERR_INVALID_ARG` if `index` is out of range.
#[no_mangle]
pub extern "C" fn pagent_results_get(
    results: *const pagent_results,
    index: usize,
    out: *mut *const pagent_result,
) -> pagent_status {
    guard("pagent_results_get", || -> FfiResult {
        let out = try_out_handle!(out);
        let r = try_ref!(results);
        let item = r.items.get(index).ok_or_else(|| {
            Failure::invalid(format!(
                "index {index} out of range (len {})",
                r.items.len()
            ))
        })?;
        *out = item;
        Ok(pagent_status::PAGENT_OK)
    })
}

/// The metrics of the batch (or consensus round) these results came from.
#[no_mangle]
pub extern "C" fn pagent_results_metrics(
    results: *const pagent_results,
    out: *mut pagent_metrics,
) -> pagent_status {
    guard("pagent_results_metrics", || -> FfiResult {
        let out = try_out!(out);
        *out = (&try_ref!(results).metrics).into();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Frees results and every result borrowed from them. NULL is a no-op.
#[no_mangle]
pub extern "C" fn pagent_results_free(results: *mut pagent_results) {
    let _ = guard("pagent_results_free", || {
        free_boxed(results);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// A consensus round's verdict and its calls. Free with `pagent_consensus_free`.
pub struct pagent_consensus {
    inner: ConsensusResult,
    answer: Option<CString>,
    results: pagent_results,
}

impl pagent_consensus {
    pub(crate) fn new(mut c: ConsensusResult) -> Self {
        let results = pagent_results::new(std::mem::take(&mut c.results), c.metrics.clone());
        Self {
            answer: c.answer.as_deref().map(to_cstring),
            inner: c,
            results,
        }
    }
}

/// Runs an accessor of a consensus: `default` if `consensus` is NULL.
fn with_consensus<T>(
    f: &str,
    consensus: *const pagent_consensus,
    default: T,
    get: impl FnOnce(&pagent_consensus) -> T,
) -> T {
    guard_value(f, default, || Ok(get(try_ref!(consensus))))
}

/// The winning answer as its first voter wrote it, or NULL if no answer was counted (no
/// call succeeded, or every answer was empty). Owned by the consensus.
#[no_mangle]
pub extern "C" fn pagent_consensus_answer(consensus: *const pagent_consensus) -> *const c_char {
    with_consensus(
        "pagent_consensus_answer",
        consensus,
        std::ptr::null(),
        |c| c.answer.as_ref().map_or(std::ptr::null(), |a| a.as_ptr()),
    )
}

/// Winning votes / answers counted, in [0, 1] (0 when none were counted). Empty answers
/// are not counted, so they do not lower it.
#[no_mangle]
pub extern "C" fn pagent_consensus_confidence(consensus: *const pagent_consensus) -> f64 {
    with_consensus("pagent_consensus_confidence", consensus, 0.0, |c| {
        c.inner.confidence
    })
}

/// Votes for the winning answer (0 if none was counted).
#[no_mangle]
pub extern "C" fn pagent_consensus_votes(consensus: *const pagent_consensus) -> usize {
    with_consensus("pagent_consensus_votes", consensus, 0, |c| c.inner.votes)
}

/// Answers counted: successful calls whose answer is not empty once normalised. An answer
/// that is empty, whitespace or punctuation only is no vote: it is neither counted here
/// nor a candidate, so five agents answering "" reach no consensus.
#[no_mangle]
pub extern "C" fn pagent_consensus_counted(consensus: *const pagent_consensus) -> usize {
    with_consensus("pagent_consensus_counted", consensus, 0, |c| {
        c.inner.counted
    })
}

/// Whether confidence reached the configured threshold (never with no answer counted).
#[no_mangle]
pub extern "C" fn pagent_consensus_reached(consensus: *const pagent_consensus) -> bool {
    with_consensus("pagent_consensus_reached", consensus, false, |c| {
        c.inner.reached
    })
}

/// Whether the round stopped early, cancelling calls that could not change the verdict.
#[no_mangle]
pub extern "C" fn pagent_consensus_early_stopped(consensus: *const pagent_consensus) -> bool {
    with_consensus("pagent_consensus_early_stopped", consensus, false, |c| {
        c.inner.early_stopped
    })
}

/// The individual calls in voter order, with the round's metrics. Borrowed: valid until
/// the consensus is freed; do not free it.
#[no_mangle]
pub extern "C" fn pagent_consensus_results(
    consensus: *const pagent_consensus,
) -> *const pagent_results {
    with_consensus(
        "pagent_consensus_results",
        consensus,
        std::ptr::null(),
        |c| &c.results as *const _,
    )
}

/// Frees a consensus and everything borrowed from it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn pagent_consensus_free(consensus: *mut pagent_consensus) {
    let _ = guard("pagent_consensus_free", || {
        free_boxed(consensus);
        Ok(pagent_status::PAGENT_OK)
    });
}
