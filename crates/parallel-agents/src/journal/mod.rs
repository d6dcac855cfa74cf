//! The journal: an SQLite file (WAL mode) in which every finished result is durable
//! before the host sees it, so that a crashed run, rerun with the same journal, replays
//! what it had finished (marked [`replayed`](crate::AgentResult::replayed)) and runs only
//! the rest.
//!
//! - `store.rs`: the file — schema, format version, fingerprint, the lock, rows to
//!   results and back.
//! - `writer.rs`: the thread that commits results in groups and only then forwards them
//!   to their batch.
//! - [`JournalReader`]: reads a journal back without running anything; JSON lines export.
//!
//! **Rules.** Results are keyed by question id (the host's, or the index). A result is
//! stored when its call ran to an outcome (ok, failed, timed out); cancelled calls are not
//! stored and run again on a rerun. A rerun replays stored results unless
//! [`rerun_failed`](crate::JournalConfig::rerun_failed) is set and the stored result is a
//! retryable failure (or a timeout). A stored id whose question text differs from the
//! batch's is refused. **One holder at a time:** an executor (or a reader) holds the
//! journal with SQLite's exclusive locking mode until it is dropped; anyone else, in this
//! process or another, gets [`Error::JournalLocked`](crate::Error::JournalLocked). The
//! lock is the operating system's (POSIX advisory), so a killed holder releases it.
//!
//! **Durability.** `synchronous=FULL`: a commit is on disk (fsync of the WAL) before any
//! result it holds is forwarded. Commits are grouped: the writer takes every result that
//! queued while it was committing, so the cost of an fsync is shared by all of them.
//! While a group commits, a journaled batch may start one more round of calls: it runs
//! up to `stream_buffer + 2 × max_concurrency` calls ahead of its consumer, not `+ 1 ×`.
//!
//! **Failures.** A write that fails (disk full, I/O error) rolls its group back; the
//! journal is then broken: the batches whose results were lost are cancelled (reason:
//! the journal error), the lost results reach the host as `Cancelled` with that message
//! (they will run again on a rerun), and new batches are refused with
//! [`Error::Journal`](crate::Error::Journal). Every index is still accounted for.

use std::path::Path;

use crate::error::{Error, Result};
use crate::result::AgentResult;

#[cfg(feature = "journal")]
mod store;
#[cfg(feature = "journal")]
mod writer;

#[cfg(feature = "journal")]
pub(crate) use writer::{Forward, Journal};

/// The journal format this library writes; a journal of a newer version is refused with
/// [`Error::JournalVersion`].
pub const FORMAT_VERSION: u32 = 1;

/// A journal read back whole, without running anything: its results in the order they
/// were stored, each marked replayed. Opening takes the journal's lock for the time of
/// the read only.
#[derive(Debug)]
pub struct JournalReader {
    results: std::vec::IntoIter<AgentResult>,
    fingerprint: String,
}

impl JournalReader {
    /// Reads the journal at `path`. Fails with [`Error::Journal`] if there is none or it
    /// cannot be read, [`Error::JournalLocked`] if another executor or process holds it,
    /// [`Error::JournalVersion`] if a newer library wrote it.
    pub fn open(path: &Path) -> Result<Self> {
        #[cfg(feature = "journal")]
        {
            let (fingerprint, results) = store::read_all(path)?;
            Ok(Self {
                results: results.into_iter(),
                fingerprint,
            })
        }
        #[cfg(not(feature = "journal"))]
        {
            let _ = path;
            Err(not_built())
        }
    }

    /// Results not yet taken.
    pub fn remaining(&self) -> usize {
        self.results.len()
    }

    /// The fingerprint of what wrote the journal (see [`crate::Agent::fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Iterator for JournalReader {
    type Item = AgentResult;

    fn next(&mut self) -> Option<AgentResult> {
        self.results.next()
    }
}

/// One result as a JSON object (one line of [`export_jsonl`]).
pub fn result_json(r: &AgentResult) -> serde_json::Value {
    serde_json::json!({
        "id": &*r.id,
        "question": &*r.question,
        "outcome": r.outcome.as_str(),
        "answer": r.answer,
        "error": r.error,
        "retryable": r.retryable,
        "attempts": r.attempts,
        "duration_us": crate::metrics::micros(r.duration),
        "prompt_tokens": r.usage.map(|u| u.prompt_tokens),
        "completion_tokens": r.usage.map(|u| u.completion_tokens),
        "agent_id": r.agent_id,
        "question_index": r.question_index,
    })
}

/// Writes the journal at `path` to `out` as JSON lines, one result per line (see
/// [`result_json`]), in the order they were stored; returns how many. Fails as
/// [`JournalReader::open`] does, or with [`Error::Journal`] if `out` cannot be written.
pub fn export_jsonl(path: &Path, out: &Path) -> Result<usize> {
    use std::io::Write;
    let reader = JournalReader::open(path)?;
    let io = |e: std::io::Error| Error::Journal(format!("cannot write {}: {e}", out.display()));
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let mut n = 0;
    for r in reader {
        serde_json::to_writer(&mut w, &result_json(&r))
            .map_err(|e| Error::Journal(format!("cannot write {}: {e}", out.display())))?;
        w.write_all(b"\n").map_err(io)?;
        n += 1;
    }
    w.flush().map_err(io)?;
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(n)
}

/// The error of every journal function in a build without the `journal` feature.
#[cfg(not(feature = "journal"))]
pub(crate) fn not_built() -> Error {
    Error::Journal(
        "built without journal support (this build of parallel-agents has the `journal` \
         feature off)"
            .into(),
    )
}
