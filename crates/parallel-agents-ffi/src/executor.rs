//! `pagent_executor`: runs batches and consensus rounds; holds metrics.

use std::ffi::{c_char, CString};
use std::sync::Arc;

use super::agent::pagent_agent;
use super::batch::pagent_batch;
use super::config::pagent_config;
use super::guard::{
    boxed, free_boxed, guard, try_opt_ref, try_out, try_out_handle, try_ref, try_slice, try_str,
    try_strings, Elem, FfiResult, PAGENT_MAX_BATCH,
};
use super::results::{pagent_consensus, pagent_metrics, pagent_results};
use super::status::{pagent_status, Failure};
use parallel_agents::config::ParallelConfig;
use parallel_agents::executor::ParallelAgentExecutor;
use parallel_agents::ratelimit::RateLimiter;
use parallel_agents::runtime;

/// Runs questions through an agent or a pool. Thread-safe: any number of host threads
/// may submit to one executor at once; they share its `max_concurrency`. Free with
/// `pagent_executor_free`; a call that another thread is already inside when the executor
/// is freed keeps what it needs and returns normally, but no thread may start a call with
/// a freed handle.
pub struct pagent_executor {
    exec: ParallelAgentExecutor,
}

/// The executor behind a handle, held (a cheap clone of a shared reference) for the
/// length of a call, so that `pagent_executor_free` on another thread cannot free it
/// under the call.
fn exec_arg(executor: *const pagent_executor) -> Result<ParallelAgentExecutor, Failure> {
    Ok(try_ref!(executor).exec.clone())
}

/// The settings behind a config handle; NULL means the defaults.
fn config_of(config: *const pagent_config) -> (ParallelConfig, Option<Arc<RateLimiter>>) {
    match try_opt_ref!(config) {
        Some(c) => (c.get().clone(), c.shared_limiter()),
        None => (ParallelConfig::default(), None),
    }
}

/// Makes an executor over one agent. `config` NULL means defaults; it is copied, and the
/// executor keeps its own reference to `agent`, so the host may free both right after.
/// Out: the new executor, or NULL. Caller owns it (`pagent_executor_free`).
#[no_mangle]
pub extern "C" fn pagent_executor_new(
    config: *const pagent_config,
    agent: *const pagent_agent,
    out: *mut *mut pagent_executor,
) -> pagent_status {
    guard("pagent_executor_new", || -> FfiResult {
        let out = try_out_handle!(out);
        let agent = Arc::clone(&try_ref!(agent).agent);
        let exec = match config_of(config) {
            (cfg, None) => ParallelAgentExecutor::new(cfg, agent)?,
            (cfg, Some(l)) => ParallelAgentExecutor::with_rate_limiter(cfg, agent, l)?,
        };
        *out = boxed(pagent_executor { exec });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Most agents in one pool (`n_agents` of `pagent_executor_new_pool`).
const MAX_POOL_AGENTS: usize = 1_000_000;

/// Makes an executor over a pool of `n_agents` agents (e.g. one per model or endpoint):
/// each serves one call at a time, work goes to whichever is free, and consensus asks
/// different agents (voter i asks agent i mod n). The same agent may appear twice.
/// Copies the array; keeps its own references. Out: the new executor, or NULL.
#[no_mangle]
pub extern "C" fn pagent_executor_new_pool(
    config: *const pagent_config,
    agents: *const *const pagent_agent,
    n_agents: usize,
    out: *mut *mut pagent_executor,
) -> pagent_status {
    guard("pagent_executor_new_pool", || -> FfiResult {
        let out = try_out_handle!(out);
        let agents = try_slice!(agents, n_agents, MAX_POOL_AGENTS);
        let mut list = Vec::with_capacity(agents.len());
        for (i, a) in agents.iter().enumerate() {
            list.push(Arc::clone(&try_ref!(*a, Elem("agents", i)).agent));
        }
        let exec = match config_of(config) {
            (cfg, None) => ParallelAgentExecutor::new_pool(cfg, list)?,
            (cfg, Some(l)) => ParallelAgentExecutor::pool_with_rate_limiter(cfg, list, l)?,
        };
        *out = boxed(pagent_executor { exec });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Frees an executor. NULL is a no-op. Batches already submitted keep running and stay
/// valid until freed themselves.
#[no_mangle]
pub extern "C" fn pagent_executor_free(executor: *mut pagent_executor) {
    let _ = guard("pagent_executor_free", || {
        free_boxed(executor);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Cancels every batch and round of this executor, now and later: running calls end
/// `PAGENT_OUTCOME_CANCELLED`; later submits fail with `PAGENT_ERR_INVALID_ARG`.
#[no_mangle]
pub extern "C" fn pagent_executor_cancel(executor: *const pagent_executor) -> pagent_status {
    guard("pagent_executor_cancel", || -> FfiResult {
        try_ref!(executor).exec.cancel_all();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Answers `n` questions and blocks until all are done. Questions are copied. Out:
/// `*results` holds one result per question in question order (fewer with deduplication
/// on), or NULL on failure. Caller owns it (`pagent_results_free`). Blocking: returns
/// `PAGENT_ERR_REENTRANT` from inside an agent callback.
#[no_mangle]
pub extern "C" fn pagent_execute(
    executor: *const pagent_executor,
    questions: *const *const c_char,
    n: usize,
    results: *mut *mut pagent_results,
) -> pagent_status {
    guard("pagent_execute", || -> FfiResult {
        let out = try_out_handle!(results);
        let exec = exec_arg(executor)?;
        let qs = try_strings!(questions, n, PAGENT_MAX_BATCH);
        // Waits on this thread, outside the runtime: a shutdown meanwhile still returns
        // every result (the unfinished ones `CANCELLED`).
        let (rs, metrics) =
            runtime::wait_forever("pagent_execute", exec.execute_with_metrics(qs))??;
        *out = boxed(pagent_results::new(rs, metrics));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Starts answering `n` questions and returns at once. Questions are copied. Out:
/// `*batch`, or NULL on failure; read it with `pagent_batch_next` / `pagent_batch_wait`.
/// Caller owns it (`pagent_batch_free`). Non-blocking: allowed inside callbacks.
#[no_mangle]
pub extern "C" fn pagent_submit(
    executor: *const pagent_executor,
    questions: *const *const c_char,
    n: usize,
    batch: *mut *mut pagent_batch,
) -> pagent_status {
    guard("pagent_submit", || -> FfiResult {
        let out = try_out_handle!(batch);
        let exec = exec_arg(executor)?;
        let qs = try_strings!(questions, n, PAGENT_MAX_BATCH);
        *out = boxed(pagent_batch::new(exec.submit(qs)?));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// `pagent_execute` with an id for each question: `ids[i]` names `questions[i]` (both
/// arrays of `n` strings, copied). Every result carries its id (`pagent_result_id`); a
/// journal stores and replays results by id. An id given twice fails with
/// `PAGENT_ERR_DUPLICATE_ID` (the message names it) before anything runs. Blocks; out and
/// ownership as `pagent_execute`.
#[no_mangle]
pub extern "C" fn pagent_execute_ids(
    executor: *const pagent_executor,
    ids: *const *const c_char,
    questions: *const *const c_char,
    n: usize,
    results: *mut *mut pagent_results,
) -> pagent_status {
    guard("pagent_execute_ids", || -> FfiResult {
        let out = try_out_handle!(results);
        let exec = exec_arg(executor)?;
        let ids = try_strings!(ids, n, PAGENT_MAX_BATCH, "ids", "n");
        let qs = try_strings!(questions, n, PAGENT_MAX_BATCH);
        let (rs, metrics) =
            runtime::wait_forever("pagent_execute_ids", exec.execute_with_ids(ids, qs))??;
        *out = boxed(pagent_results::new(rs, metrics));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// `pagent_submit` with an id for each question: `ids[i]` names `questions[i]` (both
/// arrays of `n` strings, copied). Every result carries its id (`pagent_result_id`); a
/// journal stores and replays results by id. An id given twice fails with
/// `PAGENT_ERR_DUPLICATE_ID` (the message names it) and starts nothing. Returns at once;
/// out and ownership as `pagent_submit`. Non-blocking: allowed inside callbacks.
#[no_mangle]
pub extern "C" fn pagent_submit_ids(
    executor: *const pagent_executor,
    ids: *const *const c_char,
    questions: *const *const c_char,
    n: usize,
    batch: *mut *mut pagent_batch,
) -> pagent_status {
    guard("pagent_submit_ids", || -> FfiResult {
        let out = try_out_handle!(batch);
        let exec = exec_arg(executor)?;
        let ids = try_strings!(ids, n, PAGENT_MAX_BATCH, "ids", "n");
        let qs = try_strings!(questions, n, PAGENT_MAX_BATCH);
        *out = boxed(pagent_batch::new(exec.submit_with_ids(ids, qs)?));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Asks `n_agents` agents `question` and votes (answers normalised: trimmed, case-folded,
/// whitespace collapsed, trailing punctuation stripped; an answer left empty by that is
/// no vote; ties go to the lowest voter). `n_agents` is 1 to
/// `PAGENT_MAX_CONSENSUS_AGENTS`, else `PAGENT_ERR_INVALID_ARG`; voters start as permits
/// free up. Blocks. Out: `*consensus`, or NULL on failure; caller owns it
/// (`pagent_consensus_free`). The round's metrics are cached under `question`.
#[no_mangle]
pub extern "C" fn pagent_run_consensus(
    executor: *const pagent_executor,
    question: *const c_char,
    n_agents: usize,
    consensus: *mut *mut pagent_consensus,
) -> pagent_status {
    guard("pagent_run_consensus", || -> FfiResult {
        let out = try_out_handle!(consensus);
        let exec = exec_arg(executor)?;
        let q = try_str!(question).to_owned();
        if n_agents == 0 || n_agents > super::PAGENT_MAX_CONSENSUS_AGENTS {
            return Err(Failure::invalid(format!(
                "n_agents = {n_agents} is not in [1, {}]",
                super::PAGENT_MAX_CONSENSUS_AGENTS
            )));
        }
        let c = runtime::block_on(
            "pagent_run_consensus",
            exec.execute_with_consensus(q, n_agents),
        )??;
        *out = boxed(pagent_consensus::new(c));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Metrics over every call this executor has finished, across all batches and rounds.
#[no_mangle]
pub extern "C" fn pagent_executor_metrics(
    executor: *const pagent_executor,
    out: *mut pagent_metrics,
) -> pagent_status {
    guard("pagent_executor_metrics", || -> FfiResult {
        let out = try_out!(out);
        *out = (&exec_arg(executor)?.lifetime_metrics()).into();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Metrics cached under `key` (consensus rounds are cached under their question).
/// `PAGENT_ERR_NOT_FOUND` if there are none; `*out` is then untouched.
#[no_mangle]
pub extern "C" fn pagent_metrics_get(
    executor: *const pagent_executor,
    key: *const c_char,
    out: *mut pagent_metrics,
) -> pagent_status {
    guard("pagent_metrics_get", || -> FfiResult {
        let out = try_out!(out);
        let exec = exec_arg(executor)?;
        let key = try_str!(key);
        let m = exec.get_metrics(key).ok_or_else(|| {
            Failure::new(
                pagent_status::PAGENT_ERR_NOT_FOUND,
                format!("no metrics under {key:?}"),
            )
        })?;
        *out = (&m).into();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Stores a copy of `metrics` under `key` (replacing any there), e.g. a batch's metrics
/// from `pagent_results_metrics`, so they can be looked up later by name.
#[no_mangle]
pub extern "C" fn pagent_metrics_store(
    executor: *const pagent_executor,
    key: *const c_char,
    metrics: *const pagent_metrics,
) -> pagent_status {
    guard("pagent_metrics_store", || -> FfiResult {
        let exec = exec_arg(executor)?;
        let key = try_str!(key).to_owned();
        let m = try_ref!(metrics);
        exec.store_metrics(key, m.into());
        Ok(pagent_status::PAGENT_OK)
    })
}

/// The executor's metrics as JSON: `{"lifetime": {...}, "by_key": {"key": {...}}}`,
/// durations in microseconds (`*_us`). Caller owns the string and must free it with
/// `pagent_string_free`. NULL on failure (see `pagent_last_error`).
#[no_mangle]
pub extern "C" fn pagent_executor_metrics_json(executor: *const pagent_executor) -> *mut c_char {
    let mut out = std::ptr::null_mut();
    let _ = guard("pagent_executor_metrics_json", || -> FfiResult {
        let exec = exec_arg(executor)?;
        let json = exec.metrics_json();
        out = CString::new(json)
            .map_err(|_| Failure::invalid("metrics JSON contained NUL"))?
            .into_raw();
        Ok(pagent_status::PAGENT_OK)
    });
    out
}

/// Frees a string returned by the library (`pagent_executor_metrics_json`). NULL is a
/// no-op. Never pass strings borrowed from results or `pagent_last_error`.
#[no_mangle]
pub extern "C" fn pagent_string_free(s: *mut c_char) {
    let _ = guard("pagent_string_free", || {
        if !s.is_null() {
            // SAFETY: made by `CString::into_raw` in this library, per the contract.
            drop(unsafe { CString::from_raw(s) });
        }
        Ok(pagent_status::PAGENT_OK)
    });
}
