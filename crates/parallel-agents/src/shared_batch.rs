//! [`SharedBatch`]: a [`Batch`] that host threads read with deadlines, several at once.
//!
//! This is what a C host's `pagent_batch` (and any binding's batch object) is: blocking
//! reads from host threads with a timeout, a poll that never blocks, a wait for the whole
//! batch that may time out without losing what it gathered, and a probe for progress and
//! cancellation that never waits. Reads wait with [`runtime::wait`], not inside the
//! runtime, so they keep handing out results while and after the library shuts down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::Result;
use crate::executor::{Batch, BatchProbe};
use crate::metrics::ExecutionMetrics;
use crate::result::AgentResult;
use crate::runtime;

/// What one read of a [`SharedBatch`] got.
#[derive(Debug)]
pub enum Next {
    /// The next result in completion order.
    Result(AgentResult),
    /// Every result has been handed out.
    Done,
    /// Nothing came before the timeout (or, polling, another thread is reading).
    TimedOut,
}

struct Reader {
    batch: Batch,
    /// Results gathered by a [`SharedBatch::wait_all`] that timed out, handed out first.
    held: VecDeque<AgentResult>,
}

/// A batch for host threads. Reads are serialised: a thread that waits while another
/// reads waits its turn (within its own timeout); a poll (timeout zero) never waits for
/// anything, and finds nothing while another thread is reading.
pub struct SharedBatch {
    reader: Mutex<Reader>,
    probe: BatchProbe,
}

impl SharedBatch {
    /// Wraps a running batch.
    pub fn new(batch: Batch) -> Self {
        Self {
            probe: batch.probe(),
            reader: Mutex::new(Reader {
                batch,
                held: VecDeque::new(),
            }),
        }
    }

    /// Progress, metrics and cancellation, without reading.
    pub fn probe(&self) -> &BatchProbe {
        &self.probe
    }

    /// The next result in completion order. `timeout`: `None` waits as long as needed,
    /// zero only polls. Each question index comes out exactly once, across all readers.
    /// Fails only if the calling thread may not block (a library thread) with a non-zero
    /// timeout, or in a forked child.
    pub fn next(&self, what: &'static str, timeout: Option<Duration>) -> Result<Next> {
        let got = if timeout == Some(Duration::ZERO) {
            match self.reader.try_lock() {
                Ok(mut r) => match r.held.pop_front() {
                    Some(res) => Some(Some(res)),
                    None => r.batch.try_next().ok(),
                },
                Err(_) => None,
            }
        } else {
            let read = async {
                let mut r = self.reader.lock().await;
                match r.held.pop_front() {
                    Some(res) => Some(res),
                    None => r.batch.next().await,
                }
            };
            runtime::wait(what, read, deadline(timeout))?
        };
        Ok(match got {
            Some(Some(r)) => Next::Result(r),
            Some(None) => Next::Done,
            None => Next::TimedOut,
        })
    }

    /// Waits until every call has finished and returns the results not yet handed out,
    /// in question order, with the batch's metrics. `None` if the timeout came first:
    /// what was gathered so far stays in the batch for the next read. Timeout as in
    /// [`next`](Self::next).
    pub fn wait_all(
        &self,
        what: &'static str,
        timeout: Option<Duration>,
    ) -> Result<Option<(Vec<AgentResult>, ExecutionMetrics)>> {
        let finished = if timeout == Some(Duration::ZERO) {
            match self.reader.try_lock() {
                Ok(mut r) => {
                    gather_ready(&mut r);
                    r.batch.is_finished().then_some(r)
                }
                Err(_) => None,
            }
        } else {
            let read = async {
                let mut r = self.reader.lock().await;
                while let Some(res) = r.batch.next().await {
                    r.held.push_back(res);
                }
                r
            };
            runtime::wait(what, read, deadline(timeout))?
        };
        Ok(finished.map(|mut r| {
            let mut rs: Vec<AgentResult> = r.held.drain(..).collect();
            rs.sort_unstable_by_key(|r| r.question_index);
            (rs, self.probe.metrics().unwrap_or_default())
        }))
    }

    /// Gives the batch up while readers may still hold it: cancels what still runs
    /// (readers get those results `Cancelled`); see [`BatchProbe::abandon`].
    pub fn abandon(&self) {
        self.probe.abandon();
    }
}

/// Moves every result that is ready into `held`, without waiting.
fn gather_ready(r: &mut Reader) {
    while let Ok(Some(res)) = r.batch.try_next() {
        r.held.push_back(res);
    }
}

/// When a wait of `timeout` from now ends (`None`: never; far futures saturate).
fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|d| Instant::now().checked_add(d))
}
