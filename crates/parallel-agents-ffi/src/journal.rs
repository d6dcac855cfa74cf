//! `pagent_journal`: a journal read back without running anything, and its JSON lines
//! export.

use std::path::Path;

use super::guard::{
    boxed, free_boxed, guard, guard_value, try_mut, try_out_handle, try_ref, try_str, FfiResult,
};
use super::results::pagent_result;
use super::status::pagent_status;
use parallel_agents::journal::{export_jsonl, JournalReader};

/// A journal read back (`pagent_journal_open`): its results in the order they were
/// stored. Free with `pagent_journal_free`. Not thread-safe: one thread at a time.
pub struct pagent_journal {
    reader: JournalReader,
}

/// Reads the journal at `path` whole, without running anything, and releases it (the
/// read takes the journal's lock for its own length only). Out: `*journal`, or NULL on
/// failure; caller owns it (`pagent_journal_free`). Fails with `PAGENT_ERR_JOURNAL` (no
/// journal there, unreadable, not a journal, or a build without the `journal` feature),
/// `PAGENT_ERR_JOURNAL_LOCKED` (an executor or process holds it) or
/// `PAGENT_ERR_JOURNAL_VERSION` (a newer format).
#[no_mangle]
pub extern "C" fn pagent_journal_open(
    path: *const std::ffi::c_char,
    journal: *mut *mut pagent_journal,
) -> pagent_status {
    guard("pagent_journal_open", || -> FfiResult {
        let out = try_out_handle!(journal);
        let path = try_str!(path);
        let reader = JournalReader::open(Path::new(path))?;
        *out = boxed(pagent_journal { reader });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Results not yet taken with `pagent_journal_next` (0 for NULL).
#[no_mangle]
pub extern "C" fn pagent_journal_remaining(journal: *const pagent_journal) -> usize {
    guard_value("pagent_journal_remaining", 0, || {
        Ok(try_ref!(journal).reader.remaining())
    })
}

/// Takes the next stored result: `PAGENT_OK` with `*result` set — an ordinary result with
/// the same accessors, `pagent_result_replayed` true; caller owns it
/// (`pagent_result_free`) — or `PAGENT_DONE` once all are taken; `*result` is NULL
/// unless `PAGENT_OK`. Its question index is the one it had in the batch that stored it.
#[no_mangle]
pub extern "C" fn pagent_journal_next(
    journal: *mut pagent_journal,
    result: *mut *mut pagent_result,
) -> pagent_status {
    guard("pagent_journal_next", || -> FfiResult {
        let out = try_out_handle!(result);
        match try_mut!(journal).reader.next() {
            Some(r) => {
                *out = boxed(pagent_result::new(r));
                Ok(pagent_status::PAGENT_OK)
            }
            None => Ok(pagent_status::PAGENT_DONE),
        }
    })
}

/// Frees a journal read back. NULL is a no-op. Results taken from it are the host's and
/// stay valid.
#[no_mangle]
pub extern "C" fn pagent_journal_free(journal: *mut pagent_journal) {
    let _ = guard("pagent_journal_free", || {
        free_boxed(journal);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Writes the journal at `path` to `out_path` (created or replaced) as JSON lines, one
/// result per line in the order stored: `{"id", "question", "outcome" ("ok", "failed",
/// "timed_out"), "answer", "error", "retryable", "attempts", "duration_us",
/// "prompt_tokens", "completion_tokens", "agent_id", "question_index"}` (absent values
/// `null`). Runs nothing. Fails as `pagent_journal_open`, or with `PAGENT_ERR_JOURNAL` if
/// `out_path` cannot be written. Blocking (file I/O).
#[no_mangle]
pub extern "C" fn pagent_journal_export_jsonl(
    path: *const std::ffi::c_char,
    out_path: *const std::ffi::c_char,
) -> pagent_status {
    guard("pagent_journal_export_jsonl", || -> FfiResult {
        let path = try_str!(path);
        let out_path = try_str!(out_path);
        export_jsonl(Path::new(path), Path::new(out_path))?;
        Ok(pagent_status::PAGENT_OK)
    })
}
