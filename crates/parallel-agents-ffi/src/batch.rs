//! `pagent_batch`: a submitted batch, read as a stream or waited for as a whole.

use std::sync::Arc;

use super::guard::{
    boxed, guard, guard_value, take_boxed, try_out, try_out_handle, try_ref, try_timeout, FfiResult,
};
use super::results::{pagent_metrics, pagent_result, pagent_results};
use super::status::{pagent_status, Failure};
use parallel_agents::executor::Batch;
use parallel_agents::shared_batch::{Next, SharedBatch};

/// A running batch from `pagent_submit`. Any number of threads may read it at once (reads
/// take turns; a poll never waits), and `pagent_batch_progress` never waits. Free it with
/// `pagent_batch_free`, which cancels what still runs; a call that another thread is
/// already inside when the batch is freed keeps what it needs and returns normally, but no
/// thread may start a call with a freed handle.
pub struct pagent_batch {
    shared: Arc<SharedBatch>,
}

impl pagent_batch {
    pub(crate) fn new(batch: Batch) -> Self {
        Self {
            shared: Arc::new(SharedBatch::new(batch)),
        }
    }
}

/// Borrows the batch behind a handle for the length of a call, so that a
/// `pagent_batch_free` on another thread cannot free it under the call.
fn batch_arg(batch: *const pagent_batch) -> Result<Arc<SharedBatch>, Failure> {
    Ok(Arc::clone(&try_ref!(batch).shared))
}

/// Takes the next result in completion order. `timeout_ms`: -1 waits as long as needed,
/// 0 only polls, otherwise up to `PAGENT_MAX_TIMEOUT_MS`. Returns `PAGENT_OK` with
/// `*result` set (caller owns it: `pagent_result_free`), `PAGENT_DONE` once every result
/// has been taken, or `PAGENT_WAIT_TIMEOUT`; `*result` is NULL unless `PAGENT_OK`. Each
/// question index comes out exactly once, also across threads reading one batch (they
/// take turns) and after `pagent_shutdown` (results then come back, `CANCELLED`, for
/// every way of waiting). A poll (0) never blocks: while another thread is reading it
/// returns `PAGENT_WAIT_TIMEOUT` at once, and it is allowed inside callbacks. With any
/// other timeout it blocks, and returns `PAGENT_ERR_REENTRANT` inside a callback.
#[no_mangle]
pub extern "C" fn pagent_batch_next(
    batch: *const pagent_batch,
    timeout_ms: i64,
    result: *mut *mut pagent_result,
) -> pagent_status {
    guard("pagent_batch_next", || -> FfiResult {
        let out = try_out_handle!(result);
        let b = batch_arg(batch)?;
        let wait = try_timeout!(timeout_ms);
        match b.next("pagent_batch_next", wait)? {
            Next::Result(r) => {
                *out = boxed(pagent_result::new(r));
                Ok(pagent_status::PAGENT_OK)
            }
            Next::Done => Ok(pagent_status::PAGENT_DONE),
            Next::TimedOut => Ok(pagent_status::PAGENT_WAIT_TIMEOUT),
        }
    })
}

/// Waits until every call has finished and returns the results not yet taken with
/// `pagent_batch_next`, in question order, with the batch's metrics. `timeout_ms` as in
/// `pagent_batch_next` (a poll never blocks; it returns `PAGENT_WAIT_TIMEOUT` while
/// another thread reads). `PAGENT_WAIT_TIMEOUT` leaves `*results` NULL and loses
/// nothing: results gathered so far stay in the batch. Caller owns `*results`
/// (`pagent_results_free`). Blocking (except with timeout 0).
#[no_mangle]
pub extern "C" fn pagent_batch_wait(
    batch: *const pagent_batch,
    timeout_ms: i64,
    results: *mut *mut pagent_results,
) -> pagent_status {
    guard("pagent_batch_wait", || -> FfiResult {
        let out = try_out_handle!(results);
        let b = batch_arg(batch)?;
        let wait = try_timeout!(timeout_ms);
        match b.wait_all("pagent_batch_wait", wait)? {
            Some((rs, metrics)) => {
                *out = boxed(pagent_results::new(rs, metrics));
                Ok(pagent_status::PAGENT_OK)
            }
            None => Ok(pagent_status::PAGENT_WAIT_TIMEOUT),
        }
    })
}

/// Cancels the calls still running or not started; they come back
/// `PAGENT_OUTCOME_CANCELLED`, so every index is still returned once. Non-blocking.
#[no_mangle]
pub extern "C" fn pagent_batch_cancel(batch: *const pagent_batch) -> pagent_status {
    guard("pagent_batch_cancel", || -> FfiResult {
        try_ref!(batch).shared.probe().cancel();
        Ok(pagent_status::PAGENT_OK)
    })
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
        let b = try_ref!(batch);
        let done = try_out!(done);
        let total = try_out!(total);
        (*done, *total) = b.shared.probe().progress();
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
        let out = try_out!(out);
        let m = try_ref!(batch).shared.probe().metrics().ok_or_else(|| {
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
    guard_value("pagent_batch_budget_exceeded", false, || {
        Ok(try_ref!(batch).shared.probe().budget_exceeded())
    })
}

/// Frees a batch, cancelling the calls it still runs. NULL is a no-op. A thread already
/// waiting on the batch gets the remaining results (`CANCELLED`) and then `PAGENT_DONE`.
#[no_mangle]
pub extern "C" fn pagent_batch_free(batch: *mut pagent_batch) {
    let _ = guard("pagent_batch_free", || {
        if let Some(b) = take_boxed(batch) {
            // A reader on another thread may still hold the batch: cancel it now rather
            // than when the last reader lets go.
            b.shared.abandon();
        }
        Ok(pagent_status::PAGENT_OK)
    });
}
