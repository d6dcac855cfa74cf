//! The global runtime: size before first use, explicit shutdown.

use std::time::Duration;

use super::guard::{guard, FfiResult};
use super::status::pagent_status;
use parallel_agents::runtime;

/// Sets the worker thread count of the library's runtime; only before its first use
/// (else `PAGENT_ERR_RUNTIME`). 0 restores the default: `PAGENT_WORKER_THREADS` from the
/// environment if set, else one per core. At most 1024.
#[no_mangle]
pub extern "C" fn pagent_set_worker_threads(n: usize) -> pagent_status {
    guard("pagent_set_worker_threads", || -> FfiResult {
        runtime::set_worker_threads(n)?;
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Stops the library. New work (submit, execute, consensus, new executors) fails with
/// `PAGENT_ERR_SHUTDOWN` at once; running batches get up to `deadline_ms` to finish, then
/// what still runs is cancelled (results `PAGENT_OUTCOME_CANCELLED`) and the runtime's
/// threads stop. Nothing is lost: a `pagent_execute` or consensus round in progress
/// returns every result, and batches keep handing out every index to
/// `pagent_batch_next` / `pagent_batch_wait` with any timeout, during and after the
/// shutdown. Handles stay valid and must still be freed. Call it from a host thread
/// (not a callback: `PAGENT_ERR_REENTRANT`), once, before the process exits if you want a
/// clean stop; the library never does this in `atexit`. Later calls are harmless.
/// A child process after `fork()` gets `PAGENT_ERR_FORKED` from every call instead.
#[no_mangle]
pub extern "C" fn pagent_shutdown(deadline_ms: u64) -> pagent_status {
    guard("pagent_shutdown", || -> FfiResult {
        let d = Duration::from_millis(deadline_ms.min(super::guard::PAGENT_MAX_TIMEOUT_MS as u64));
        runtime::shutdown(d)?;
        Ok(pagent_status::PAGENT_OK)
    })
}
