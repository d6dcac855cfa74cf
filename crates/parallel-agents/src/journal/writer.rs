//! [`Journal`]: an open journal and its writer thread, which commits results in groups
//! and forwards each to its batch only once its group is on disk.

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::store;
use crate::config::JournalConfig;
use crate::error::{Error, Result};
use crate::result::{AgentResult, Outcome};
use crate::sync::lock;

/// Most results committed in one transaction.
const MAX_GROUP: usize = 4096;

/// Where the writer sends a result once it is durable: the batch it belongs to.
pub(crate) trait Forward: Send + Sync {
    /// Hands `r` to the batch's consumer.
    fn forward(&self, r: AgentResult);
    /// The journal failed (`why`): the batch must stop taking new work.
    fn failed(&self, why: &str);
}

/// A result on its way to the disk, where it goes next, and what the call held (its
/// concurrency permit), released only once the result is durable: so at most
/// `max_concurrency` calls are ever paid for and not yet on disk, which bounds what a
/// crash can make a rerun pay twice.
struct Msg(AgentResult, Arc<dyn Forward>, Option<Held>);

/// Whatever a call holds until its result is durable.
pub(crate) type Held = Box<dyn Send>;

/// An open journal, held (locked) until dropped; see the [module](super) documentation.
pub(crate) struct Journal {
    conn: Arc<Mutex<Connection>>,
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    /// Set by the first failed write; the journal takes no more work.
    broken: Arc<Mutex<Option<String>>>,
    path: PathBuf,
    rerun_failed: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("path", &self.path).finish()
    }
}

impl Journal {
    /// Opens the journal `cfg` names, if any, for an executor with `fingerprint`, and
    /// starts its writer thread.
    pub(crate) fn open(cfg: &JournalConfig, fingerprint: &str) -> Result<Option<Self>> {
        let Some(path) = &cfg.path else {
            return Ok(None);
        };
        let conn = store::open_writer(path, fingerprint, cfg.allow_mismatch, cfg.max_bytes)?;
        let conn = Arc::new(Mutex::new(conn));
        let broken = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pagent-journal".into())
            .spawn({
                let (conn, broken, path) = (Arc::clone(&conn), Arc::clone(&broken), path.clone());
                move || run(&rx, &conn, &broken, &path)
            })
            .map_err(|e| Error::Runtime(format!("cannot start the journal writer: {e}")))?;
        Ok(Some(Self {
            conn,
            tx: Some(tx),
            thread: Some(thread),
            broken,
            path: path.clone(),
            rerun_failed: cfg.rerun_failed,
        }))
    }

    /// Fails with [`Error::Journal`] once a write has failed.
    pub(crate) fn check(&self) -> Result<()> {
        match &*lock(&self.broken) {
            Some(why) => Err(Error::Journal(format!(
                "{why}; the journal takes no more work"
            ))),
            None => Ok(()),
        }
    }

    /// For each question of a batch, the stored result to replay instead of running it
    /// (question index and text set to the batch's), or `None` to run it. Fails if a
    /// stored id was asked a different question.
    pub(crate) fn replay(
        &self,
        ids: &[Arc<str>],
        questions: &[Arc<str>],
    ) -> Result<Vec<Option<AgentResult>>> {
        self.check()?;
        let conn = lock(&self.conn);
        let mut out = Vec::with_capacity(ids.len());
        for (i, (id, q)) in ids.iter().zip(questions).enumerate() {
            let stored = store::lookup(&conn, id).map_err(|e| store::classify(&self.path, &e))?;
            let Some(mut r) = stored else {
                out.push(None);
                continue;
            };
            if *r.question != **q {
                return Err(Error::InvalidArgument(format!(
                    "question id {id:?} is in the journal {} with another question; a \
                     journal ties each id to one question",
                    self.path.display()
                )));
            }
            let rerun = self.rerun_failed
                && r.retryable
                && matches!(r.outcome, Outcome::Failed | Outcome::TimedOut);
            if rerun {
                out.push(None);
                continue;
            }
            r.question_index = i;
            r.question = Arc::clone(q);
            r.id = Arc::clone(id);
            out.push(Some(r));
        }
        Ok(out)
    }

    /// Queues `r` for the disk; `to` receives it once it is there. Never waits.
    pub(crate) fn submit(&self, r: AgentResult, to: Arc<dyn Forward>, hold: Option<Held>) {
        if let Some(tx) = &self.tx {
            if let Err(mpsc::SendError(Msg(r, to, _))) = tx.send(Msg(r, to, hold)) {
                // The writer is gone (it cannot be while `self` lives); lose nothing.
                to.forward(r);
            }
        }
    }
}

impl Drop for Journal {
    /// Lets the writer finish what is queued, then closes the file (releasing the lock).
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: takes every result queued (up to [`MAX_GROUP`]), commits them in
/// one transaction, then forwards them.
fn run(
    rx: &mpsc::Receiver<Msg>,
    conn: &Mutex<Connection>,
    broken: &Mutex<Option<String>>,
    path: &std::path::Path,
) {
    let mut group: Vec<Msg> = Vec::new();
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(m) => group.push(m),
                Err(_) => break,
            }
        }
        let failed = lock(broken).clone();
        let written = match failed {
            Some(why) => Err(why),
            None => write(conn, &group).map_err(|e| {
                let why = format!("journal write failed: {}", store::classify(path, &e));
                *lock(broken) = Some(why.clone());
                why
            }),
        };
        match written {
            // Each call's permit goes after its result is forwarded.
            Ok(()) => group.drain(..).for_each(|Msg(r, to, _hold)| to.forward(r)),
            Err(why) => {
                for Msg(r, to, _hold) in group.drain(..) {
                    if stored(&r) {
                        to.failed(&why);
                        to.forward(lost(r, &why));
                    } else {
                        to.forward(r);
                    }
                }
            }
        }
    }
}

/// Whether a result is kept in the journal: calls that ran to an outcome.
fn stored(r: &AgentResult) -> bool {
    r.outcome != Outcome::Cancelled
}

/// Stores a group in one transaction; nothing of it on failure.
fn write(conn: &Mutex<Connection>, group: &[Msg]) -> rusqlite::Result<()> {
    if !group.iter().any(|Msg(r, ..)| stored(r)) {
        return Ok(());
    }
    let mut conn = lock(conn);
    let t = conn.transaction()?;
    {
        let mut st = t.prepare_cached(store::INSERT)?;
        for Msg(r, ..) in group.iter().filter(|Msg(r, ..)| stored(r)) {
            store::insert(&mut st, r)?;
        }
    }
    t.commit()
}

/// What the host gets for a result the journal could not store: cancelled, with why, so
/// it is never taken for durable; a rerun runs it again.
fn lost(mut r: AgentResult, why: &str) -> AgentResult {
    r.outcome = Outcome::Cancelled;
    r.success = false;
    r.answer = None;
    r.usage = None;
    r.retryable = false;
    r.error = Some(format!("not journaled ({why}); it runs again on a rerun"));
    r
}
