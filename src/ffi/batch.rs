//! `pagent_batch`: a submitted batch, read as a stream or waited for as a whole.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::guard::{arg, boxed, free_boxed, guard, out_handle, out_value, timeout_ms, FfiResult};
use super::results::{pagent_metrics, pagent_result, pagent_results};
use super::status::{pagent_status, Failure};
use crate::executor::{Batch, BatchProbe};
use crate::result::AgentResult;
use crate::runtime;

struct State {
    batch: Batch,
    /// Results gathered by a `pagent_batch_wait` that timed out, handed out first.
    held: VecDeque<AgentResult>,
}

/// A running batch from `pagent_submit`. Calls on one batch from several threads are
/// serialised; `pagent_batch_progress` never waits. Free with `pagent_batch_free`, which
/// cancels what still runs; never free it while another thread is inside a call on it.
pub struct pagent_batch {
    state: Mutex<State>,
    probe: BatchProbe,
}

impl pagent_batch {
    pub(crate) fn new(batch: Batch) -> Self {
        Self {
            probe: batch.probe(),
            state: Mutex::new(State {
                batch,
                held: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Takes the next result in completion order. `timeout_ms`: -1 waits as long as needed,
/// 0 only polls, otherwise up to 30 days. Returns `PAGENT_OK` with `*result` set (caller
/// owns it: `pagent_result_free`), `PAGENT_DONE` once every result has been taken, or
/// `PAGENT_WAIT_TIMEOUT`; `*result` is NULL unless `PAGENT_OK`. Each question index comes
/// out exactly once. With a timeout other than 0 it blocks, and returns
/// `PAGENT_ERR_REENTRANT` inside a callback.
#[no_mangle]
pub extern "C" fn pagent_batch_next(
    batch: *const pagent_batch,
    timeout_ms: i64,
    result: *mut *mut pagent_result,
) -> pagent_status {
    guard("pagent_batch_next", || -> FfiResult {
        let out = out_handle(result, "result")?;
        let b = arg(batch, "batch")?;
        let wait = self::timeout_ms(timeout_ms)?;
        let mut st = b.lock();
        let next = if let Some(r) = st.held.pop_front() {
            Some(Some(r))
        } else if wait.is_some_and(|d| d.is_zero()) {
            st.batch.try_next().ok()
        } else {
            runtime::ensure_may_block_here("pagent_batch_next")?;
            if st.batch.has_ready() {
                // Taken without entering the runtime (a lock, a park and a wake-up per
                // result) when it is already waiting; the checks above still applied.
                st.batch.try_next().ok()
            } else {
                match wait {
                    None => Some(runtime::block_on("pagent_batch_next", st.batch.next())?),
                    // The timer must be created inside the runtime, hence the async block.
                    Some(d) => runtime::block_on("pagent_batch_next", async {
                        tokio::time::timeout(d, st.batch.next()).await.ok()
                    })?,
                }
            }
        };
        match next {
            Some(Some(r)) => {
                *out = boxed(pagent_result::new(r));
                Ok(pagent_status::PAGENT_OK)
            }
            Some(None) => Ok(pagent_status::PAGENT_DONE),
            None => Ok(pagent_status::PAGENT_WAIT_TIMEOUT),
        }
    })
}

/// Waits until every call has finished and returns the results not yet taken with
/// `pagent_batch_next`, in question order, with the batch's metrics. `timeout_ms` as in
/// `pagent_batch_next`. `PAGENT_WAIT_TIMEOUT` leaves `*results` NULL and loses nothing:
/// results gathered so far stay in the batch. Caller owns `*results`
/// (`pagent_results_free`). Blocking (except with timeout 0).
#[no_mangle]
pub extern "C" fn pagent_batch_wait(
    batch: *const pagent_batch,
    timeout_ms: i64,
    results: *mut *mut pagent_results,
) -> pagent_status {
    guard("pagent_batch_wait", || -> FfiResult {
        let out = out_handle(results, "results")?;
        let b = arg(batch, "batch")?;
        let wait = self::timeout_ms(timeout_ms)?;
        let mut guard = b.lock();
        let st = &mut *guard;
        let finished = match wait {
            Some(d) if d.is_zero() => loop {
                match st.batch.try_next() {
                    Ok(Some(r)) => st.held.push_back(r),
                    Ok(None) => break true,
                    Err(()) => break false,
                }
            },
            _ => runtime::block_on("pagent_batch_wait", async {
                let deadline = wait.map(|d| tokio::time::Instant::now() + d);
                loop {
                    let next = match deadline {
                        None => Some(st.batch.next().await),
                        Some(t) => tokio::time::timeout_at(t, st.batch.next()).await.ok(),
                    };
                    match next {
                        Some(Some(r)) => st.held.push_back(r),
                        Some(None) => break true,
                        None => break false,
                    }
                }
            })?,
        };
        if !finished {
            return Ok(pagent_status::PAGENT_WAIT_TIMEOUT);
        }
        let mut rs: Vec<AgentResult> = st.held.drain(..).collect();
        rs.sort_unstable_by_key(|r| r.question_index);
        let metrics = b.probe.metrics().unwrap_or_default();
        *out = boxed(pagent_results::new(rs, metrics));
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Cancels the calls still running or not started; they come back
/// `PAGENT_OUTCOME_CANCELLED`, so every index is still returned once. Non-blocking.
#[no_mangle]
pub extern "C" fn pagent_batch_cancel(batch: *const pagent_batch) -> pagent_status {
    guard("pagent_batch_cancel", || -> FfiResult {
        arg(batch, "batch")?.probe_cancel();
        Ok(pagent_status::PAGENT_OK)
    })
}

impl pagent_batch {
    fn probe_cancel(&self) {
        self.probe.cancel();
    }
}

/// Calls finished so far and the batch size, for a progress bar. Never blocks; safe while
/// another thread waits on the batch.
#[no_mangle]
pub extern "C" fn pagent_batch_progress(
    batch: *const pagent_batch,
    done: *mut usize,
    total: *mut usize,
) -> pagent_status {
    guard("pagent_batch_progress", || -> FfiResult {
        let b = arg(batch, "batch")?;
        let done = out_value(done, "done")?;
        let total = out_value(total, "total")?;
        (*done, *total) = b.probe.progress();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// The batch's metrics once every call has finished; `PAGENT_ERR_NOT_FOUND` before.
#[no_mangle]
pub extern "C" fn pagent_batch_metrics(
    batch: *const pagent_batch,
    out: *mut pagent_metrics,
) -> pagent_status {
    guard("pagent_batch_metrics", || -> FfiResult {
        let out = out_value(out, "out")?;
        let m = arg(batch, "batch")?.probe.metrics().ok_or_else(|| {
            Failure::new(
                pagent_status::PAGENT_ERR_NOT_FOUND,
                "the batch has not finished yet",
            )
        })?;
        *out = (&m).into();
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Whether the batch cancelled itself because its error budget (`max_errors`) ran out.
#[no_mangle]
pub extern "C" fn pagent_batch_budget_exceeded(batch: *const pagent_batch) -> bool {
    // SAFETY: a live handle per the API contract.
    super::guard::guard_value("pagent_batch_budget_exceeded", false, || {
        unsafe { batch.as_ref() }.map(|b| b.probe.budget_exceeded())
    })
}

/// Frees a batch, cancelling the calls it still runs. NULL is a no-op.
#[no_mangle]
pub extern "C" fn pagent_batch_free(batch: *mut pagent_batch) {
    let _ = guard("pagent_batch_free", || {
        free_boxed(batch);
        Ok(pagent_status::PAGENT_OK)
    });
}
