//! Agents made from host functions: a blocking function run on a blocking thread, and a
//! completion-based function that returns at once and finishes later from any thread.
//!
//! The C ABI wraps host function pointers in these; Rust users can pass closures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use once_cell::sync::Lazy;
use tokio::sync::{oneshot, Semaphore};
use tokio_util::task::AbortOnDropHandle;

use super::{Agent, AgentError, BoxFuture};
use crate::sync::lock;

type BlockingFn = dyn Fn(&str, usize) -> Result<String, AgentError> + Send + Sync;

/// Most threads a [`CallbackAgent`] runs its function on at once: the runtime's blocking
/// pool (Tokio's default, 512 threads) could not run more anyway.
pub const MAX_CALLBACK_THREADS: usize = 512;

/// An agent whose answer comes from a blocking function. Each call runs on Tokio's
/// blocking thread pool so it never stalls the runtime's workers. A call that times out
/// is reported at once; the function itself runs on until it returns, and its answer is
/// dropped (a thread cannot be interrupted safely).
///
/// The function runs on at most as many threads at once as the largest `max_concurrency`
/// of the executors using the agent (see [`Agent::fit_concurrency`]; 1 before any,
/// [`MAX_CALLBACK_THREADS`] at most): a call that timed out keeps its thread until the
/// function returns, and later calls wait for one, so timeouts never pile up threads.
/// A call cancelled or timed out before its function started never starts it.
pub struct CallbackAgent {
    f: Arc<BlockingFn>,
    threads: Arc<Semaphore>,
    /// Permits `threads` has been given in all.
    granted: Mutex<usize>,
}

impl CallbackAgent {
    /// Wraps `f`. It is called from library threads, possibly many at once.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&str, usize) -> Result<String, AgentError> + Send + Sync + 'static,
    {
        Self {
            f: Arc::new(f),
            threads: Arc::new(Semaphore::new(1)),
            granted: Mutex::new(1),
        }
    }

    /// Threads running the function right now (or about to).
    pub fn threads_in_use(&self) -> usize {
        let granted = *lock(&self.granted);
        granted - self.threads.available_permits()
    }
}

/// Tells a blocking call that its caller has gone, when the caller's future is dropped.
struct Abandon(Arc<AtomicBool>);

impl Drop for Abandon {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl Agent for CallbackAgent {
    fn answer<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<String, AgentError>> {
        Box::pin(async move {
            let permit = Arc::clone(&self.threads)
                .acquire_owned()
                .await
                .map_err(|_| AgentError::fatal("callback agent closed"))?;
            let f = Arc::clone(&self.f);
            let q = question.to_owned();
            let abandoned = Arc::new(AtomicBool::new(false));
            let gone = Arc::clone(&abandoned);
            // The thread keeps the permit until the function returns, even if the call
            // timed out meanwhile; a queued job whose call has gone does not start it.
            let job = AbortOnDropHandle::new(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                if gone.load(Ordering::Acquire) {
                    return Err(AgentError::fatal("callback not started: call cancelled"));
                }
                f(&q, agent_id)
            }));
            let _abandon = Abandon(abandoned);
            match job.await {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(AgentError::fatal(format!(
                    "callback panicked: {}",
                    crate::error::panic_message(&*e.into_panic())
                ))),
                Err(_) => Err(AgentError::fatal("callback was cancelled")),
            }
        })
    }

    fn kind(&self) -> &'static str {
        "callback"
    }

    fn fit_concurrency(&self, max_concurrency: usize) {
        let want = max_concurrency.min(MAX_CALLBACK_THREADS);
        let mut granted = lock(&self.granted);
        if want > *granted {
            self.threads.add_permits(want - *granted);
            *granted = want;
        }
    }
}

/// Identifies one outstanding call of an [`AsyncCallbackAgent`]; never 0.
pub type PendingId = u64;

/// Why completing a pending call did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompleteError {
    /// Unknown id: already completed, or its call already ended (timed out, cancelled).
    Stale,
}

/// The outstanding calls of every [`AsyncCallbackAgent`], by id. Ids are never reused, so
/// completing twice, or after the call timed out, finds nothing and is harmless.
pub struct PendingRegistry {
    next: AtomicU64,
    waiting: DashMap<PendingId, oneshot::Sender<Result<String, AgentError>>>,
}

static REGISTRY: Lazy<PendingRegistry> = Lazy::new(|| PendingRegistry {
    next: AtomicU64::new(1),
    waiting: DashMap::new(),
});

impl PendingRegistry {
    /// The process-wide registry.
    pub fn global() -> &'static PendingRegistry {
        &REGISTRY
    }

    /// Finishes call `id` with `result`. Safe from any thread, any number of times.
    pub fn complete(
        &self,
        id: PendingId,
        result: Result<String, AgentError>,
    ) -> Result<(), CompleteError> {
        match self.waiting.remove(&id) {
            // The receiver may have gone in the meantime; that is the same as stale.
            Some((_, tx)) => tx.send(result).map_err(|_| CompleteError::Stale),
            None => Err(CompleteError::Stale),
        }
    }

    /// Calls currently waiting for completion.
    pub fn outstanding(&self) -> usize {
        self.waiting.len()
    }

    fn register(&self) -> (PendingId, oneshot::Receiver<Result<String, AgentError>>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(id, tx);
        (id, rx)
    }
}

/// Removes a call's registry entry when its future ends for any reason (answer, timeout,
/// cancellation), so a host that never completes leaks nothing.
struct Deregister(PendingId);

impl Drop for Deregister {
    fn drop(&mut self) {
        PendingRegistry::global().waiting.remove(&self.0);
    }
}

type StartFn = dyn Fn(&str, usize, PendingId) + Send + Sync;

/// An agent whose function only *starts* the work: it gets a [`PendingId`] and returns at
/// once; the answer arrives later through [`PendingRegistry::complete`], from any thread.
/// Thousands of calls can be in flight without a thread each. The start function runs on a
/// runtime worker and must not block.
pub struct AsyncCallbackAgent {
    start: Box<StartFn>,
}

impl AsyncCallbackAgent {
    /// Wraps `start`.
    pub fn new<F>(start: F) -> Self
    where
        F: Fn(&str, usize, PendingId) + Send + Sync + 'static,
    {
        Self {
            start: Box::new(start),
        }
    }
}

impl Agent for AsyncCallbackAgent {
    fn answer<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<String, AgentError>> {
        Box::pin(async move {
            let (id, rx) = PendingRegistry::global().register();
            let _deregister = Deregister(id);
            (self.start)(question, agent_id, id);
            match rx.await {
                Ok(r) => r,
                Err(_) => Err(AgentError::fatal(
                    "pending call was dropped without an answer",
                )),
            }
        })
    }

    fn kind(&self) -> &'static str {
        "async-callback"
    }
}
