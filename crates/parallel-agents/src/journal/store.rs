//! The journal file: opening it (WAL, exclusive lock, format version, fingerprint), and
//! results to rows and back.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row};

use super::FORMAT_VERSION;
use crate::agent::TokenUsage;
use crate::error::{Error, Result};
use crate::result::{AgentResult, Outcome};

/// The schema; `meta` holds `format_version` and `fingerprint`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY NOT NULL,
    question TEXT NOT NULL,
    question_index INTEGER NOT NULL,
    agent_id INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    answer TEXT,
    error TEXT,
    retryable INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    hedged INTEGER NOT NULL,
    hedge_won INTEGER NOT NULL,
    stored_at_ms INTEGER NOT NULL
);";

/// Columns read back, in [`from_row`]'s order.
const COLUMNS: &str = "id, question, question_index, agent_id, outcome, answer, error, \
     retryable, attempts, duration_us, prompt_tokens, completion_tokens, hedged, hedge_won";

/// Stores one result (a rerun of a failed one replaces it).
pub(super) const INSERT: &str = "INSERT OR REPLACE INTO results (id, question, \
     question_index, agent_id, outcome, answer, error, retryable, attempts, duration_us, \
     prompt_tokens, completion_tokens, hedged, hedge_won, stored_at_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// A SQLite error on the journal at `path` as the crate's error: a lock held elsewhere is
/// [`Error::JournalLocked`], anything else [`Error::Journal`].
pub(super) fn classify(path: &Path, e: &rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::JournalLocked(format!(
            "{} is held by another executor, reader or process (one holder at a time)",
            path.display()
        )),
        Some(ErrorCode::NotADatabase) => {
            Error::Journal(format!("{} is not a journal: {e}", path.display()))
        }
        _ => Error::Journal(format!("{}: {e}", path.display())),
    }
}

/// Opens `path` with SQLite's exclusive locking mode in WAL mode and takes the lock (a
/// write transaction, in which `init` runs). Fails with `JournalLocked` if another
/// connection holds it.
fn open_locked(
    path: &Path,
    flags: OpenFlags,
    init: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
) -> Result<Connection> {
    let sql = |e: rusqlite::Error| classify(path, &e);
    let mut conn = Connection::open_with_flags(path, flags).map_err(sql)?;
    conn.busy_timeout(Duration::ZERO).map_err(sql)?;
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(sql)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sql)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Journal(format!(
            "{}: cannot use WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL")
        .map_err(sql)?;
    let t = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    init(&t)?;
    t.commit().map_err(sql)?;
    Ok(conn)
}

/// The stored format version, if any; a newer one than ours is refused.
fn check_version(path: &Path, t: &Connection) -> Result<Option<u32>> {
    let sql = |e: rusqlite::Error| classify(path, &e);
    let has_meta: bool = t
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(sql)?
        > 0;
    if !has_meta {
        return Ok(None);
    }
    let v: Option<String> = t
        .query_row(
            "SELECT value FROM meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql)?;
    let Some(v) = v else { return Ok(None) };
    match v.parse::<u32>() {
        Ok(n) if n <= FORMAT_VERSION => Ok(Some(n)),
        Ok(n) => Err(Error::JournalVersion(format!(
            "{} has format version {n}; this library reads up to {FORMAT_VERSION} \
             (written by a newer parallel-agents)",
            path.display()
        ))),
        Err(_) => Err(Error::Journal(format!(
            "{} is not a journal (format_version {v:?})",
            path.display()
        ))),
    }
}

/// Opens (creating if missing) the journal at `path` for an executor whose fingerprint is
/// `fingerprint`, and keeps its lock for the connection's life.
pub(super) fn open_writer(
    path: &Path,
    fingerprint: &str,
    allow_mismatch: bool,
    max_bytes: Option<u64>,
) -> Result<Connection> {
    let sql = |e: rusqlite::Error| classify(path, &e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = open_locked(path, flags, |t| {
        check_version(path, t)?;
        t.execute_batch(SCHEMA).map_err(sql)?;
        t.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?1)",
            [FORMAT_VERSION.to_string()],
        )
        .map_err(sql)?;
        let stored: Option<String> = t
            .query_row(
                "SELECT value FROM meta WHERE key = 'fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        match stored {
            Some(s) if s != fingerprint && !allow_mismatch => {
                return Err(Error::JournalMismatch(format!(
                    "{} was made by [{}], this executor is [{}]; use another journal, or \
                     allow the mismatch to replay its results anyway",
                    path.display(),
                    clip(&s),
                    clip(fingerprint)
                )))
            }
            Some(s) if s == fingerprint => {}
            _ => {
                t.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('fingerprint', ?1)",
                    [fingerprint],
                )
                .map_err(sql)?;
            }
        }
        Ok(())
    })?;
    if let Some(max) = max_bytes {
        let page: i64 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(sql)?;
        let pages = (max / page.max(1) as u64).clamp(1, i64::MAX as u64);
        conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
            .map_err(sql)?;
    }
    Ok(conn)
}

/// At most 300 characters of a fingerprint, for a message.
fn clip(s: &str) -> String {
    match s.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

/// Reads the whole journal at `path` (which must exist): its fingerprint and its results
/// in the order stored, each marked replayed. Holds the lock only while reading.
pub(super) fn read_all(path: &Path) -> Result<(String, Vec<AgentResult>)> {
    if !path.is_file() {
        return Err(Error::Journal(format!("no journal at {}", path.display())));
    }
    let sql = |e: rusqlite::Error| classify(path, &e);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut out = (String::new(), Vec::new());
    open_locked(path, flags, |t| {
        if check_version(path, t)?.is_none() {
            return Err(Error::Journal(format!(
                "{} is not a journal (no format version)",
                path.display()
            )));
        }
        out.0 = t
            .query_row(
                "SELECT value FROM meta WHERE key = 'fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?
            .unwrap_or_default();
        let mut st = t
            .prepare(&format!("SELECT {COLUMNS} FROM results ORDER BY rowid"))
            .map_err(sql)?;
        let rows = st.query_map([], from_row).map_err(sql)?;
        for r in rows {
            out.1.push(r.map_err(sql)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// The stored result for `id`, if any.
pub(super) fn lookup(conn: &Connection, id: &str) -> rusqlite::Result<Option<AgentResult>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM results WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Stores `r` with the prepared [`INSERT`].
pub(super) fn insert(
    st: &mut rusqlite::CachedStatement<'_>,
    r: &AgentResult,
) -> rusqlite::Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    st.execute(params![
        &*r.id,
        &*r.question,
        r.question_index as i64,
        r.agent_id as i64,
        r.outcome.as_str(),
        r.answer,
        r.error,
        r.retryable,
        r.attempts,
        crate::metrics::micros(r.duration) as i64,
        r.usage.map(|u| u.prompt_tokens as i64),
        r.usage.map(|u| u.completion_tokens as i64),
        r.hedged,
        r.hedge_won,
        now_ms,
    ])?;
    Ok(())
}

/// A row of [`COLUMNS`] as a result, marked replayed.
fn from_row(row: &Row<'_>) -> rusqlite::Result<AgentResult> {
    let outcome = match row.get_ref(4)?.as_str()? {
        "ok" => Outcome::Ok,
        "failed" => Outcome::Failed,
        "timed_out" => Outcome::TimedOut,
        _ => Outcome::Cancelled,
    };
    let (p, c): (Option<i64>, Option<i64>) = (row.get(10)?, row.get(11)?);
    let usage = match (p, c) {
        (None, None) => None,
        (p, c) => Some(TokenUsage {
            prompt_tokens: p.unwrap_or(0).max(0) as u64,
            completion_tokens: c.unwrap_or(0).max(0) as u64,
        }),
    };
    Ok(AgentResult {
        id: Arc::from(row.get_ref(0)?.as_str()?),
        question: Arc::from(row.get_ref(1)?.as_str()?),
        question_index: row.get::<_, i64>(2)?.max(0) as usize,
        agent_id: row.get::<_, i64>(3)?.max(0) as usize,
        success: outcome == Outcome::Ok,
        outcome,
        answer: row.get(5)?,
        error: row.get(6)?,
        retryable: row.get(7)?,
        attempts: row.get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32,
        duration: Duration::from_micros(row.get::<_, i64>(9)?.max(0) as u64),
        usage,
        hedged: row.get(12)?,
        hedge_won: row.get(13)?,
        replayed: true,
    })
}
