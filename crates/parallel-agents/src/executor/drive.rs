//! A batch's driver: starts one call task per question as permits and room ahead of the
//! consumer free up, and hands each result to the consumer as its call ends — with the
//! batch's accounting (metrics, error budget, the p95 for hedging) on the way.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::call::{run_call, Call};
use super::{Assign, Inner};
use crate::metrics::{ExecutionMetrics, MetricsRecorder};
use crate::result::{AgentResult, Outcome};
use crate::sync::lock;

/// Everything one batch's driver needs.
pub(super) struct Job {
    pub(super) inner: Arc<Inner>,
    pub(super) questions: Arc<[Arc<str>]>,
    /// Each question's id (the host's, or its index), unique in the batch.
    pub(super) ids: Arc<[Arc<str>]>,
    /// Which agent serves each call.
    pub(super) assign: Assign,
    /// Calls of this batch in flight at once, at most (1 for `execute_sequential`).
    pub(super) per_batch_limit: usize,
    /// The batch's own token, a child of the executor's.
    pub(super) token: CancellationToken,
    pub(super) shared: Arc<BatchShared>,
    /// With a journal: where the journal's writer forwards this batch's results once
    /// they are durable (results then reach `out`'s channel only through it).
    #[cfg(feature = "journal")]
    pub(super) journal: Option<Arc<ToBatch>>,
    pub(super) out: Output,
    pub(super) sink: Mutex<Sink>,
}

/// Where a batch's results go.
pub(super) enum Output {
    /// To the consumer, with the slots that bound how far ahead of it the batch runs.
    Channel(mpsc::UnboundedSender<AgentResult>, Arc<Semaphore>),
    /// A consensus round takes its voters' results as it polls them; this holds those of
    /// voters cut short.
    Collect(Mutex<Vec<AgentResult>>),
}

impl Job {
    /// The result of question `index` when its call never ran (or was cut short).
    pub(super) fn not_started(&self, index: usize, why: &str) -> AgentResult {
        let mut r = AgentResult::not_started(index, Arc::clone(&self.questions[index]), why);
        r.id = Arc::clone(&self.ids[index]);
        r
    }

    /// Why the batch's calls are being cancelled, for their results.
    pub(super) fn cancel_reason(&self) -> String {
        lock(&self.shared.cancel_reason)
            .as_deref()
            .unwrap_or("cancelled (executor or library shutdown)")
            .to_owned()
    }
}

/// Starts calls as permits free up. Each call task delivers its own result, so results
/// flow out in completion order without funnelling through this one task. Before a call
/// starts it takes a slot of room ahead of the consumer, so a finished call never waits
/// to hand over its result: it delivers and ends, and its permit goes to the next call.
///
/// `replay` holds, by index, results read back from the journal: they are handed out
/// first (each still taking its slot) and their questions are not run.
pub(super) async fn drive(job: Job, replay: Vec<Option<AgentResult>>) {
    let job = Arc::new(job);
    let n = job.questions.len();
    let mut skip = vec![false; if replay.is_empty() { 0 } else { n }];
    for (i, r) in replay.into_iter().enumerate() {
        if let Some(r) = r {
            skip[i] = true;
            take_slot(&job).await;
            deliver(&job, r);
        }
    }
    let skipped = |i: usize| skip.get(i).copied().unwrap_or(false);
    let mut set: JoinSet<()> = JoinSet::new();
    let mut next = 0;
    let mut have_slot = false;
    while next < n {
        if skipped(next) {
            next += 1;
            continue;
        }
        if job.token.is_cancelled() {
            // Calls in flight are aborted and report `Cancelled` themselves (see `Call`).
            set.abort_all();
            // Questions never started still get their result, each exactly once, still
            // no further ahead of the consumer than the slots allow.
            let why = job.cancel_reason();
            while next < n {
                if skipped(next) {
                    next += 1;
                    continue;
                }
                if !std::mem::take(&mut have_slot) {
                    take_slot(&job).await;
                }
                deliver(&job, job.not_started(next, &why));
                next += 1;
            }
            break;
        }
        // `biased`: the work branch first, so a wait that is over at once never
        // registers a cancellation waiter (a lock on the batch token's waiter list).
        if set.len() >= job.per_batch_limit {
            tokio::select! {
                biased;
                _ = set.join_next() => {}
                _ = job.token.cancelled() => {}
            }
            continue;
        }
        if !have_slot {
            tokio::select! {
                biased;
                _ = take_slot(&job) => have_slot = true,
                _ = job.token.cancelled() => continue,
            }
        }
        let permit = tokio::select! {
            biased;
            p = Arc::clone(&job.inner.semaphore).acquire_owned() => p.expect("the executor semaphore is never closed"),
            _ = job.token.cancelled() => continue,
        };
        have_slot = false;
        // Made outside the task, so a task aborted before it first ran still reports.
        let mut call = Call::new(Arc::clone(&job), next);
        next += 1;
        set.spawn(async move {
            let r = run_call(&mut call).await;
            let r = call.finish(r);
            // With a journal the permit is held until the result is durable.
            deliver_holding(&call.job, r, permit);
        });
        while set.try_join_next().is_some() {}
    }
    // The batch's one cancellation waiter: calls themselves never wait on the token.
    let mut aborted = false;
    loop {
        tokio::select! {
            biased;
            r = set.join_next() => if r.is_none() { break },
            _ = job.token.cancelled(), if !aborted => {
                set.abort_all();
                aborted = true;
            }
        }
    }
}

/// Waits for one slot of room ahead of the consumer (at once if the consumer has gone).
async fn take_slot(job: &Job) {
    let Output::Channel(_, slots) = &job.out else {
        return;
    };
    let permit = match slots.try_acquire() {
        Ok(p) => Ok(p),
        Err(tokio::sync::TryAcquireError::Closed) => return,
        Err(tokio::sync::TryAcquireError::NoPermits) => slots.acquire().await,
    };
    // The consumer gives the slot back when it takes a result (`Batch::mark`).
    if let Ok(p) = permit {
        p.forget();
    }
}

/// Records one result and hands it to the consumer; never waits (see [`drive`]).
pub(super) fn deliver(job: &Job, r: AgentResult) {
    lock(&job.sink).record(job, &r);
    match &job.out {
        #[cfg(feature = "journal")]
        Output::Channel(..) if !r.replayed && job.journal.is_some() => {
            if let (Some(j), Some(to)) = (&job.inner.journal, &job.journal) {
                j.submit(r, Arc::clone(to) as Arc<dyn crate::journal::Forward>, None);
            }
        }
        // Fails only once the consumer has gone; the result is then dropped.
        Output::Channel(tx, _) => drop(tx.send(r)),
        Output::Collect(cut) => lock(cut).push(r),
    }
}

/// [`deliver`] for a call that ran under `permit`: with a journal, the permit goes to
/// the journal's writer and is released once the result is durable, so the calls paid
/// for and not yet on disk never exceed `max_concurrency`; without one it is released
/// now.
fn deliver_holding(job: &Job, r: AgentResult, permit: tokio::sync::OwnedSemaphorePermit) {
    #[cfg(feature = "journal")]
    if matches!(job.out, Output::Channel(..)) && !r.replayed && job.journal.is_some() {
        lock(&job.sink).record(job, &r);
        if let (Some(j), Some(to)) = (&job.inner.journal, &job.journal) {
            let to = Arc::clone(to) as Arc<dyn crate::journal::Forward>;
            j.submit(r, to, Some(Box::new(permit)));
        }
        return;
    }
    deliver(job, r);
    drop(permit);
}

/// Where the journal's writer hands a batch's results, once durable.
#[cfg(feature = "journal")]
pub(super) struct ToBatch {
    pub(super) tx: mpsc::UnboundedSender<AgentResult>,
    pub(super) shared: Arc<BatchShared>,
    pub(super) token: CancellationToken,
}

#[cfg(feature = "journal")]
impl crate::journal::Forward for ToBatch {
    fn forward(&self, r: AgentResult) {
        // Fails only once the consumer has gone; the result is then dropped.
        drop(self.tx.send(r));
    }

    fn failed(&self, why: &str) {
        self.shared.cancel(&self.token, why);
    }
}

/// What a batch's calls and its consumer (the [`Batch`](super::Batch) and its probes)
/// share.
#[derive(Default)]
pub(super) struct BatchShared {
    /// Results recorded so far.
    pub(super) done: AtomicUsize,
    /// The batch's metrics, set when its last result is recorded.
    pub(super) metrics: Mutex<Option<ExecutionMetrics>>,
    /// Why the batch was cancelled; the first reason wins.
    pub(super) cancel_reason: Mutex<Option<Arc<str>>>,
    /// Set when the error budget ran out and cancelled the batch.
    pub(super) budget_exceeded: AtomicBool,
    /// The batch's recent p95 call duration in µs (0 until known), for p95 hedging.
    pub(super) p95_us: AtomicU64,
}

impl BatchShared {
    /// Cancels the batch, recording `reason` unless an earlier cancel gave one.
    pub(super) fn cancel(&self, token: &CancellationToken, reason: &str) {
        lock(&self.cancel_reason).get_or_insert_with(|| Arc::from(reason));
        token.cancel();
    }
}

/// Recent durations kept for the p95 that drives hedging.
const P95_WINDOW: usize = 256;
/// Results needed before the p95 is trusted.
const P95_MIN_SAMPLES: usize = 20;

/// A batch's accounting: metrics, the error budget, and the p95 for hedging.
#[derive(Default)]
pub(super) struct Sink {
    rec: MetricsRecorder,
    errors: usize,
    recent: Vec<u64>,
    seen: usize,
}

impl Sink {
    /// Accounts for one result, just before it is handed on.
    /// A replayed result is only counted: its call did not run in this batch.
    pub(super) fn record(&mut self, job: &Job, r: &AgentResult) {
        if !r.replayed {
            self.rec.record_timed(r, Instant::now());
        }
        let done = job.shared.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done == job.questions.len() {
            // Before the last result goes out, so whoever receives it can read them.
            *lock(&job.shared.metrics) = Some(self.rec.snapshot());
            lock(&job.inner.lifetime).merge(&self.rec);
        }
        if r.replayed {
            return;
        }
        if matches!(r.outcome, Outcome::Failed | Outcome::TimedOut) {
            self.errors += 1;
            if let Some(max) = job.inner.config.max_errors {
                if self.errors > max && !job.shared.budget_exceeded.swap(true, Ordering::AcqRel) {
                    let why = format!(
                        "cancelled: error budget exceeded ({} errors > max_errors {max})",
                        self.errors
                    );
                    job.shared.cancel(&job.token, &why);
                }
            }
        }
        if job.inner.config.hedge.after_p95 && r.outcome != Outcome::Cancelled {
            self.track_p95(job, r.duration);
        }
    }

    fn track_p95(&mut self, job: &Job, d: Duration) {
        let us = crate::metrics::micros(d);
        if self.recent.len() < P95_WINDOW {
            self.recent.push(us);
        } else {
            self.recent[self.seen % P95_WINDOW] = us;
        }
        self.seen += 1;
        if self.seen >= P95_MIN_SAMPLES && self.seen % 16 == 0 {
            let mut v = self.recent.clone();
            let k = (v.len() * 95).div_ceil(100) - 1;
            let (_, p95, _) = v.select_nth_unstable(k);
            job.shared.p95_us.store((*p95).max(1), Ordering::Relaxed);
        }
    }
}
