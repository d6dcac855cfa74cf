//! What a consumer sees: a running [`Batch`] hands out results in completion order, each
//! question exactly once, and gives a slot of room back to the driver for each; a
//! [`BatchProbe`] reads progress and metrics, or cancels, from any thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::drive::BatchShared;
use crate::error::Result;
use crate::metrics::ExecutionMetrics;
use crate::result::AgentResult;
use crate::runtime;
use crate::sync::lock;

/// A running batch. Results come out of [`next`](Self::next) in completion order, each
/// question index exactly once. Dropping it cancels what still runs.
pub struct Batch {
    rx: mpsc::UnboundedReceiver<AgentResult>,
    /// Results the batch may still run ahead of the consumer; each one handed out gives
    /// its slot back.
    slots: Arc<Semaphore>,
    questions: Arc<[Arc<str>]>,
    ids: Arc<[Arc<str>]>,
    /// Bitset of indices handed out, to back-fill any a shutdown swallowed.
    delivered: Vec<u64>,
    n_delivered: usize,
    backfill: usize,
    token: CancellationToken,
    shared: Arc<BatchShared>,
}

impl Batch {
    /// The consumer's end of a batch just launched: `rx` receives what its calls deliver,
    /// each taken result gives a slot back to `slots`.
    pub(super) fn new(
        rx: mpsc::UnboundedReceiver<AgentResult>,
        slots: Arc<Semaphore>,
        questions: Arc<[Arc<str>]>,
        ids: Arc<[Arc<str>]>,
        token: CancellationToken,
        shared: Arc<BatchShared>,
    ) -> Self {
        Self {
            rx,
            slots,
            ids,
            delivered: vec![0; questions.len().div_ceil(64)],
            questions,
            n_delivered: 0,
            backfill: 0,
            token,
            shared,
        }
    }

    /// The next result in completion order; `None` once every index has been returned.
    pub async fn next(&mut self) -> Option<AgentResult> {
        if let Some(r) = self.rx.recv().await {
            return Some(self.mark(r));
        }
        self.next_backfill()
    }

    /// Like [`next`](Self::next) but does not wait: `Err(())` if nothing is ready yet.
    #[allow(clippy::result_unit_err)]
    pub fn try_next(&mut self) -> Result<Option<AgentResult>, ()> {
        match self.rx.try_recv() {
            Ok(r) => Ok(Some(self.mark(r))),
            Err(mpsc::error::TryRecvError::Empty) => Err(()),
            Err(mpsc::error::TryRecvError::Disconnected) => Ok(self.next_backfill()),
        }
    }

    /// Whether [`try_next`](Self::try_next) would return at once: a result is waiting,
    /// or the batch has ended.
    pub fn has_ready(&self) -> bool {
        !self.rx.is_empty() || self.rx.is_closed()
    }

    fn mark(&mut self, r: AgentResult) -> AgentResult {
        self.slots.add_permits(1);
        let i = r.question_index;
        self.delivered[i / 64] |= 1 << (i % 64);
        self.n_delivered += 1;
        r
    }

    /// After the driver is gone: a `Cancelled` result for each index it never delivered
    /// (only possible if the runtime was shut down under it).
    fn next_backfill(&mut self) -> Option<AgentResult> {
        while self.n_delivered < self.questions.len() && self.backfill < self.questions.len() {
            let i = self.backfill;
            self.backfill += 1;
            if self.delivered[i / 64] & (1 << (i % 64)) == 0 {
                let mut r = AgentResult::not_started(
                    i,
                    Arc::clone(&self.questions[i]),
                    "not run: the library was shut down",
                );
                r.id = Arc::clone(&self.ids[i]);
                return Some(self.mark(r));
            }
        }
        None
    }

    /// Waits for every remaining result, appending them to `out` in completion order.
    pub async fn drain_into(&mut self, out: &mut Vec<AgentResult>) {
        while let Some(r) = self.next().await {
            out.push(r);
        }
    }

    /// Waits for every remaining result and returns them in question order.
    pub async fn collect_ordered(self) -> Vec<AgentResult> {
        self.finish().await.0
    }

    /// Waits for every remaining result; returns them in question order with the batch's
    /// metrics.
    pub async fn finish(mut self) -> (Vec<AgentResult>, ExecutionMetrics) {
        let mut out = Vec::with_capacity(self.total() - self.n_delivered);
        self.drain_into(&mut out).await;
        out.sort_unstable_by_key(|r| r.question_index);
        (out, self.metrics().unwrap_or_default())
    }

    /// Like [`finish`](Self::finish), but gathers on a runtime worker: the waiting thread
    /// wakes once, not once per result. Shutdown waits for it like for the batch itself.
    /// A shutdown that stops the gathering task part-way loses nothing: the rest is
    /// gathered here; so does one that came after the batch started but before this
    /// (a host's `execute` racing a shutdown gets every result, not an error).
    pub async fn finish_on_runtime(self) -> Result<(Vec<AgentResult>, ExecutionMetrics)> {
        let gather = Arc::new(tokio::sync::Mutex::new((self, Vec::new())));
        if let Ok(handle) = runtime::handle() {
            let task = Arc::clone(&gather).lock_owned();
            let _ = runtime::spawn_tracked(&handle, async move {
                let mut g = task.await;
                let (batch, out) = &mut *g;
                batch.drain_into(out).await;
            })
            .await;
        }
        let mut g = gather.lock().await;
        let (batch, out) = &mut *g;
        batch.drain_into(out).await;
        let mut out = std::mem::take(out);
        out.sort_unstable_by_key(|r| r.question_index);
        Ok((out, batch.metrics().unwrap_or_default()))
    }

    /// A handle that reads progress and metrics without borrowing the batch, so a host
    /// thread can draw a progress bar while another consumes results.
    pub fn probe(&self) -> BatchProbe {
        BatchProbe {
            shared: Arc::clone(&self.shared),
            slots: Arc::clone(&self.slots),
            total: self.total(),
            token: self.token.clone(),
        }
    }

    /// Cancels the calls still running or not yet started; they come back `Cancelled`.
    pub fn cancel(&self) {
        self.cancel_with("cancelled by the host");
    }

    fn cancel_with(&self, reason: &str) {
        self.shared.cancel(&self.token, reason);
    }

    /// Whether the batch was cancelled because its error budget (`max_errors`) ran out.
    pub fn budget_exceeded(&self) -> bool {
        self.shared.budget_exceeded.load(Ordering::Acquire)
    }

    /// Questions in the batch.
    pub fn total(&self) -> usize {
        self.questions.len()
    }

    /// Results handed out so far.
    pub fn delivered(&self) -> usize {
        self.n_delivered
    }

    /// Calls finished so far (handed out or waiting in the buffer), and the total.
    pub fn progress(&self) -> (usize, usize) {
        (self.shared.done.load(Ordering::Acquire), self.total())
    }

    /// Whether every result has been handed out.
    pub fn is_finished(&self) -> bool {
        self.n_delivered == self.questions.len()
    }

    /// The batch's metrics once all its calls have finished: set by the time the last
    /// result is handed out, `None` before.
    pub fn metrics(&self) -> Option<ExecutionMetrics> {
        lock(&self.shared.metrics).clone()
    }
}

/// Reads a batch's progress and metrics from any thread; see [`Batch::probe`].
#[derive(Clone)]
pub struct BatchProbe {
    shared: Arc<BatchShared>,
    slots: Arc<Semaphore>,
    total: usize,
    token: CancellationToken,
}

impl BatchProbe {
    /// Calls finished so far, and the total.
    pub fn progress(&self) -> (usize, usize) {
        (self.shared.done.load(Ordering::Acquire), self.total)
    }

    /// The batch's metrics, once all its calls have finished.
    pub fn metrics(&self) -> Option<ExecutionMetrics> {
        lock(&self.shared.metrics).clone()
    }

    /// Cancels the batch (as [`Batch::cancel`]) without access to it.
    pub fn cancel(&self) {
        self.shared.cancel(&self.token, "cancelled by the host");
    }

    /// Whether the batch was cancelled because its error budget ran out.
    pub fn budget_exceeded(&self) -> bool {
        self.shared.budget_exceeded.load(Ordering::Acquire)
    }

    /// What dropping the batch does, for a handle that is given up while a reader may
    /// still hold the batch: cancels what still runs ("batch freed before it finished")
    /// and stops the batch waiting for room ahead of a consumer. Readers still get every
    /// result.
    pub fn abandon(&self) {
        abandon(&self.shared, &self.slots, &self.token);
    }
}

fn abandon(shared: &BatchShared, slots: &Semaphore, token: &CancellationToken) {
    // Nobody may take results any more: the driver must not wait for slots.
    slots.close();
    shared.cancel(token, "batch freed before it finished");
}

impl Drop for Batch {
    fn drop(&mut self) {
        abandon(&self.shared, &self.slots, &self.token);
    }
}
