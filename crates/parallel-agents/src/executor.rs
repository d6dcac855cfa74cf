//! [`ParallelAgentExecutor`]: fans questions out to agents with a `JoinSet` bounded by a
//! semaphore, and hands results back in question order, in completion order, or as a vote.
//!
//! The data path, top to bottom: [`ParallelAgentExecutor::submit`] spawns [`drive`] on the
//! global runtime; `drive` starts one [`run_call`] task per question as permits (and room
//! ahead of the consumer) free up; each call task puts its result into the batch's channel
//! and ends; the [`Batch`] on the other end hands them to the caller (and fills in
//! `Cancelled` for any that a shutdown swallowed).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentError, Answer, BoxFuture, TokenUsage};
use crate::aggregate::{self, Tally};
use crate::config::{ParallelConfig, MAX_CONSENSUS_AGENTS};
use crate::error::{Error, Result};
use crate::metrics::cache::MetricsCache;
use crate::metrics::{ExecutionMetrics, MetricsRecorder};
use crate::pool::Members;
use crate::ratelimit::RateLimiter;
use crate::result::{AgentResult, Outcome};
use crate::runtime;

/// Who answers an executor's calls.
enum Agents {
    Single(Arc<dyn Agent>),
    Pool(Members),
}

/// How a batch picks the agent for each call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Assign {
    /// Ordinary batch: the single agent with `agent_id` = question index, or any free
    /// pool member.
    Questions,
    /// Consensus round: voter `i` is agent slot `i` (pool member `i mod size`), so a pool
    /// asks different agents.
    Voters,
}

struct Inner {
    config: ParallelConfig,
    agents: Agents,
    semaphore: Arc<Semaphore>,
    rate: Option<Arc<RateLimiter>>,
    /// Metrics by key (consensus rounds store theirs under the question); bounded.
    metrics_cache: MetricsCache,
    lifetime: Mutex<MetricsRecorder>,
    token: CancellationToken,
}

/// Runs questions through an agent (or a pool of agents) with bounded concurrency,
/// per-call timeouts, retries and an optional rate limit. Cheap to clone: clones share
/// the same concurrency limit, metrics and cancellation.
#[derive(Clone)]
pub struct ParallelAgentExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ParallelAgentExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelAgentExecutor")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ParallelAgentExecutor {
    /// An executor that asks `agent`. Fails if `config` does not validate.
    pub fn new(config: ParallelConfig, agent: Arc<dyn Agent>) -> Result<Self> {
        Self::build(config, Agents::Single(agent), None)
    }

    /// An executor over a pool: each agent serves one call at a time, work goes to
    /// whichever is free, and consensus asks different agents.
    pub fn new_pool(config: ParallelConfig, agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
        Self::build(config, Agents::Pool(Members::new(agents)?), None)
    }

    /// Like [`new`](Self::new), but call starts go through `limiter`, which other
    /// executors may share; it replaces `config.rate_limit`.
    pub fn with_rate_limiter(
        config: ParallelConfig,
        agent: Arc<dyn Agent>,
        limiter: Arc<RateLimiter>,
    ) -> Result<Self> {
        Self::build(config, Agents::Single(agent), Some(limiter))
    }

    /// Like [`new_pool`](Self::new_pool), with a shared rate limiter.
    pub fn pool_with_rate_limiter(
        config: ParallelConfig,
        agents: Vec<Arc<dyn Agent>>,
        limiter: Arc<RateLimiter>,
    ) -> Result<Self> {
        Self::build(config, Agents::Pool(Members::new(agents)?), Some(limiter))
    }

    fn build(
        config: ParallelConfig,
        agents: Agents,
        limiter: Option<Arc<RateLimiter>>,
    ) -> Result<Self> {
        config.validate()?;
        match &agents {
            Agents::Single(a) => a.fit_concurrency(config.max_concurrency),
            // A member serves one call at a time, but one agent may fill several members.
            Agents::Pool(m) => {
                let most = m.len().min(config.max_concurrency);
                m.agents().for_each(|a| a.fit_concurrency(most));
            }
        }
        let rate = limiter.or_else(|| {
            config
                .rate_limit
                .clone()
                .map(|l| Arc::new(RateLimiter::new(l)))
        });
        Ok(Self {
            inner: Arc::new(Inner {
                semaphore: Arc::new(Semaphore::new(config.max_concurrency)),
                config,
                agents,
                rate,
                metrics_cache: MetricsCache::new(),
                lifetime: Mutex::new(MetricsRecorder::new()),
                token: runtime::child_token(),
            }),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &ParallelConfig {
        &self.inner.config
    }

    /// Pool size (1 for a single agent).
    pub fn pool_size(&self) -> usize {
        match &self.inner.agents {
            Agents::Single(_) => 1,
            Agents::Pool(m) => m.len(),
        }
    }

    /// Calls in flight right now.
    pub fn in_flight(&self) -> usize {
        self.inner.config.max_concurrency - self.inner.semaphore.available_permits()
    }

    /// Starts a batch and returns at once; results stream out of the [`Batch`] in
    /// completion order. The batch runs at most `config.stream_buffer + max_concurrency`
    /// calls ahead of the consumer (running, or finished and waiting); past that it stops
    /// starting calls until the consumer catches up.
    pub fn submit(&self, questions: Vec<String>) -> Result<Batch> {
        let buffer = self.inner.config.stream_buffer;
        let qs = questions.into_iter().map(Arc::from).collect();
        self.launch(qs, Assign::Questions, usize::MAX, buffer)
    }

    /// Answers every question, at most `max_concurrency` at once. Results are in question
    /// order; with `deduplicate_results` set, repeated answers are dropped (first kept).
    pub async fn execute_parallel(&self, questions: Vec<String>) -> Result<Vec<AgentResult>> {
        Ok(self.execute_with_metrics(questions).await?.0)
    }

    /// [`execute_parallel`](Self::execute_parallel), with the batch's metrics.
    pub async fn execute_with_metrics(
        &self,
        questions: Vec<String>,
    ) -> Result<(Vec<AgentResult>, ExecutionMetrics)> {
        let qs: Vec<Arc<str>> = questions.into_iter().map(Arc::from).collect();
        // Every result is kept until the end anyway, so a buffer the size of the batch
        // costs nothing extra and spares finished calls from waiting on the collector.
        let buffer = qs.len().clamp(1, crate::config::MAX_BUFFER_LIMIT);
        let batch = self.launch(qs, Assign::Questions, usize::MAX, buffer)?;
        let (results, metrics) = batch.finish_on_runtime().await?;
        Ok((self.maybe_dedup(results), metrics))
    }

    /// Answers the questions one at a time, in order (the baseline for comparisons).
    pub async fn execute_sequential(&self, questions: Vec<String>) -> Result<Vec<AgentResult>> {
        let qs = questions.into_iter().map(Arc::from).collect();
        let batch = self.launch(qs, Assign::Questions, 1, self.inner.config.stream_buffer)?;
        Ok(self.maybe_dedup(batch.finish_on_runtime().await?.0))
    }

    /// Answers every question and returns the results in completion order, with at most
    /// `buffer_size` finished results held back from the consumer at any time.
    pub async fn execute_with_stream(
        &self,
        questions: Vec<String>,
        buffer_size: usize,
    ) -> Result<Vec<AgentResult>> {
        let mut batch = self.stream(questions, buffer_size)?;
        let mut out = Vec::with_capacity(batch.total());
        while let Some(r) = batch.next().await {
            out.push(r);
        }
        Ok(out)
    }

    /// Starts a batch whose results stream out through a buffer of `buffer_size` (as
    /// [`submit`](Self::submit) with `stream_buffer = buffer_size`).
    pub fn stream(&self, questions: Vec<String>, buffer_size: usize) -> Result<Batch> {
        if buffer_size == 0 || buffer_size > crate::config::MAX_BUFFER_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "buffer_size {buffer_size} is not in [1, {}]",
                crate::config::MAX_BUFFER_LIMIT
            )));
        }
        let qs = questions.into_iter().map(Arc::from).collect();
        self.launch(qs, Assign::Questions, usize::MAX, buffer_size)
    }

    /// Asks `n_agents` agents the same question and votes (see [`crate::aggregate`]).
    /// With `consensus_early_stop`, the round ends as soon as the outstanding calls can
    /// no longer change the winner or the verdict; those are cancelled. The round's
    /// metrics are stored in the cache under the question.
    pub async fn execute_with_consensus(
        &self,
        question: String,
        n_agents: usize,
    ) -> Result<ConsensusResult> {
        if runtime::in_library_runtime() {
            return self.consensus_in_runtime(question, n_agents).await;
        }
        // Run on the library's runtime, whatever runtime (if any) the caller awaits from.
        let exec = self.clone();
        runtime::handle()?
            .spawn(async move { exec.consensus_in_runtime(question, n_agents).await })
            .await
            .map_err(|_| Error::Shutdown)?
    }

    /// The consensus round itself; must run inside the library's runtime (a worker, or a
    /// host thread in [`runtime::block_on`]). The voters are polled right here, in one
    /// task: a round costs no driver task, no channel and no extra thread wake-ups.
    async fn consensus_in_runtime(
        &self,
        question: String,
        n_agents: usize,
    ) -> Result<ConsensusResult> {
        if n_agents == 0 || n_agents > MAX_CONSENSUS_AGENTS {
            return Err(Error::InvalidArgument(format!(
                "n_agents = {n_agents} is not in [1, {MAX_CONSENSUS_AGENTS}]"
            )));
        }
        runtime::handle()?; // fails fast after shutdown or fork
        if self.inner.token.is_cancelled() {
            return Err(Error::InvalidArgument(
                "the executor has been cancelled".into(),
            ));
        }
        let q: Arc<str> = Arc::from(question.as_str());
        let job = Arc::new(Job {
            inner: Arc::clone(&self.inner),
            questions: vec![q; n_agents].into(),
            assign: Assign::Voters,
            per_batch_limit: usize::MAX,
            token: self.inner.token.child_token(),
            shared: Arc::new(BatchShared::default()),
            out: Output::Collect(Mutex::new(Vec::new())),
            sink: Mutex::new(Sink::default()),
        });
        // Voters start as permits free up, so a round holds at most `max_concurrency`
        // voters in flight, not one future per voter from the start.
        let semaphore = &job.inner.semaphore;
        let mut voters = FuturesUnordered::new();
        let mut started = 0;
        let mut permit = std::pin::pin!(semaphore.acquire());
        let threshold = self.inner.config.consensus_threshold;
        let mut tally = Tally::default();
        let mut results = Vec::with_capacity(n_agents);
        let mut early_stopped = false;
        while results.len() < n_agents {
            let next = tokio::select! {
                biased;
                Some(r) = voters.next(), if !voters.is_empty() => Some(r),
                p = &mut permit, if started < n_agents => {
                    let p = p.expect("the executor semaphore is never closed");
                    let mut call = Call::new(Arc::clone(&job), started);
                    started += 1;
                    voters.push(async move {
                        let _permit = p;
                        let r = run_call(&mut call).await;
                        call.finish(r)
                    });
                    permit.set(semaphore.acquire());
                    continue;
                }
                // The executor cancelled, or the library shuts down.
                _ = job.token.cancelled() => None,
            };
            let Some(r) = next else { break };
            lock(&job.sink).record(&job, &r);
            if let (Outcome::Ok, Some(a)) = (r.outcome, &r.answer) {
                tally.add(r.question_index, a);
            }
            results.push(r);
            let outstanding = n_agents - results.len();
            if self.inner.config.consensus_early_stop
                && outstanding > 0
                && tally.is_settled(outstanding, threshold)
            {
                early_stopped = true;
                job.shared.cancel(&job.token, "consensus settled early");
                break;
            }
        }
        // The voters still out report `Cancelled` as they are dropped, and so do those
        // never started (see `Call`).
        drop(voters);
        (started..n_agents).for_each(|i| drop(Call::new(Arc::clone(&job), i)));
        if let Output::Collect(cut) = &job.out {
            results.append(&mut lock(cut));
        }
        results.sort_by_key(|r| r.question_index);
        // Only an early stop that actually cut a call short counts as one.
        early_stopped &= results.iter().any(|r| r.outcome == Outcome::Cancelled);
        let vote = tally.vote(threshold);
        let metrics = lock(&job.shared.metrics).take().unwrap_or_default();
        self.store_metrics(question, metrics.clone());
        Ok(ConsensusResult {
            answer: vote.answer,
            confidence: vote.confidence,
            votes: vote.votes,
            counted: vote.counted,
            reached: vote.reached,
            early_stopped,
            tally: vote.tally,
            results,
            metrics,
        })
    }

    /// Keeps the first result of each distinct normalised answer (and every failure).
    pub fn deduplicate_results(&self, results: Vec<AgentResult>) -> Vec<AgentResult> {
        aggregate::deduplicate(results)
    }

    fn maybe_dedup(&self, results: Vec<AgentResult>) -> Vec<AgentResult> {
        if self.inner.config.deduplicate_results {
            aggregate::deduplicate(results)
        } else {
            results
        }
    }

    /// Stores metrics under `key` in this executor's cache (replacing any there). The
    /// cache keeps the [`METRICS_CACHE_CAPACITY`](crate::metrics::cache::METRICS_CACHE_CAPACITY)
    /// most recently stored or read keys; a long key costs a digest and a preview, not
    /// its text.
    pub fn store_metrics(&self, key: String, metrics: ExecutionMetrics) {
        self.inner.metrics_cache.insert(&key, metrics);
    }

    /// Metrics stored under `key`, if any and not yet evicted.
    pub fn get_metrics(&self, key: &str) -> Option<ExecutionMetrics> {
        self.inner.metrics_cache.get(key)
    }

    /// Metrics over every call this executor finished, across all its batches;
    /// `total_duration` spans the first call's start to the last call's end.
    pub fn lifetime_metrics(&self) -> ExecutionMetrics {
        lock(&self.inner.lifetime).snapshot()
    }

    /// All metrics as JSON: `{"lifetime": {...}, "by_key": {key: {...}}}`, durations in
    /// microseconds. `by_key` holds the cached keys (see [`store_metrics`](Self::store_metrics)),
    /// a key over [`METRICS_KEY_FULL_MAX`](crate::metrics::cache::METRICS_KEY_FULL_MAX)
    /// bytes shown as `"{preview}... ({len} bytes, digest {hex})"`.
    pub fn metrics_json(&self) -> String {
        let mut by_key = serde_json::Map::new();
        for (key, m) in self.inner.metrics_cache.entries() {
            let v = serde_json::from_str(&m.to_json()).unwrap_or_default();
            by_key.insert(key, v);
        }
        let lifetime: serde_json::Value =
            serde_json::from_str(&self.lifetime_metrics().to_json()).unwrap_or_default();
        serde_json::json!({ "lifetime": lifetime, "by_key": by_key }).to_string()
    }

    /// Cancels every batch of this executor, now and later: calls in flight end
    /// `Cancelled`, new batches fail.
    pub fn cancel_all(&self) {
        self.inner.token.cancel();
    }

    fn launch(
        &self,
        questions: Vec<Arc<str>>,
        assign: Assign,
        per_batch_limit: usize,
        buffer: usize,
    ) -> Result<Batch> {
        if questions.is_empty() {
            return Err(Error::InvalidArgument("no questions given".into()));
        }
        // Shutdown cancels every executor too; report the cause, not the symptom.
        let handle = runtime::handle()?;
        if self.inner.token.is_cancelled() {
            return Err(Error::InvalidArgument(
                "the executor has been cancelled".into(),
            ));
        }
        let total = questions.len();
        // The channel itself is unbounded: `slots` bounds it, and makes the driver (not
        // the call tasks) wait for a slow consumer.
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(
            buffer.saturating_add(self.inner.config.max_concurrency),
        ));
        let shared = Arc::new(BatchShared {
            done: AtomicUsize::new(0),
            metrics: Mutex::new(None),
            cancel_reason: Mutex::new(None),
            budget_exceeded: Default::default(),
            p95_us: Default::default(),
        });
        let token = self.inner.token.child_token();
        let questions: Arc<[Arc<str>]> = questions.into();
        let job = Job {
            inner: Arc::clone(&self.inner),
            questions: Arc::clone(&questions),
            assign,
            per_batch_limit,
            token: token.clone(),
            shared: Arc::clone(&shared),
            out: Output::Channel(tx, Arc::clone(&slots)),
            sink: Mutex::new(Sink::default()),
        };
        runtime::spawn_tracked(&handle, drive(job));
        Ok(Batch {
            rx,
            slots,
            questions,
            delivered: vec![0; total.div_ceil(64)],
            n_delivered: 0,
            backfill: 0,
            token,
            shared,
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A consensus round's verdict and the calls behind it.
#[derive(Clone, Debug)]
pub struct ConsensusResult {
    /// The winning answer as its first voter wrote it; `None` if no call succeeded.
    pub answer: Option<String>,
    /// Winning votes / answers counted (0 when none were counted).
    pub confidence: f64,
    /// Votes for the winner.
    pub votes: usize,
    /// Answers counted: successful calls whose answer is not empty after normalising.
    pub counted: usize,
    /// Whether `confidence >= consensus_threshold`.
    pub reached: bool,
    /// Whether the round stopped early, cancelling calls that could not change the verdict.
    pub early_stopped: bool,
    /// Votes per normalised answer, most first.
    pub tally: Vec<(String, usize)>,
    /// Every call, in voter order.
    pub results: Vec<AgentResult>,
    /// The round's metrics.
    pub metrics: ExecutionMetrics,
}

#[derive(Default)]
struct BatchShared {
    done: AtomicUsize,
    metrics: Mutex<Option<ExecutionMetrics>>,
    /// Why the batch was cancelled; the first reason wins.
    cancel_reason: Mutex<Option<Arc<str>>>,
    budget_exceeded: std::sync::atomic::AtomicBool,
    /// The batch's recent p95 call duration in µs (0 until known), for p95 hedging.
    p95_us: std::sync::atomic::AtomicU64,
}

impl BatchShared {
    fn cancel(&self, token: &CancellationToken, reason: &str) {
        lock(&self.cancel_reason).get_or_insert_with(|| Arc::from(reason));
        token.cancel();
    }
}

/// A running batch. Results come out of [`next`](Self::next) in completion order, each
/// question index exactly once. Dropping it cancels what still runs.
pub struct Batch {
    rx: mpsc::UnboundedReceiver<AgentResult>,
    /// Results the batch may still run ahead of the consumer; each one handed out gives
    /// its slot back.
    slots: Arc<Semaphore>,
    questions: Arc<[Arc<str>]>,
    /// Bitset of indices handed out, to back-fill any a shutdown swallowed.
    delivered: Vec<u64>,
    n_delivered: usize,
    backfill: usize,
    token: CancellationToken,
    shared: Arc<BatchShared>,
}

impl Batch {
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
                let r = AgentResult::not_started(
                    i,
                    Arc::clone(&self.questions[i]),
                    "not run: the library was shut down",
                );
                return Some(self.mark(r));
            }
        }
        None
    }

    /// Waits for every remaining result and returns them in question order.
    pub async fn collect_ordered(mut self) -> Vec<AgentResult> {
        let mut out = Vec::with_capacity(self.total());
        while let Some(r) = self.next().await {
            out.push(r);
        }
        out.sort_unstable_by_key(|r| r.question_index);
        out
    }

    /// Waits for every remaining result; returns them in question order with the batch's
    /// metrics.
    pub async fn finish(mut self) -> (Vec<AgentResult>, ExecutionMetrics) {
        let mut out = Vec::with_capacity(self.total() - self.n_delivered);
        while let Some(r) = self.next().await {
            out.push(r);
        }
        out.sort_unstable_by_key(|r| r.question_index);
        (out, self.metrics().unwrap_or_default())
    }

    /// Like [`finish`](Self::finish), but gathers on a runtime worker: the waiting thread
    /// wakes once, not once per result. Shutdown waits for it like for the batch itself.
    /// A shutdown that stops the gathering task part-way loses nothing: the rest is
    /// gathered here.
    pub async fn finish_on_runtime(self) -> Result<(Vec<AgentResult>, ExecutionMetrics)> {
        let handle = runtime::handle()?;
        let gather = Arc::new(tokio::sync::Mutex::new((self, Vec::new())));
        let task = Arc::clone(&gather).lock_owned();
        let _ = runtime::spawn_tracked(&handle, async move {
            let mut g = task.await;
            let (batch, out) = &mut *g;
            while let Some(r) = batch.next().await {
                out.push(r);
            }
        })
        .await;
        let mut g = gather.lock().await;
        let (batch, out) = &mut *g;
        while let Some(r) = batch.next().await {
            out.push(r);
        }
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

/// Everything one batch's driver needs.
struct Job {
    inner: Arc<Inner>,
    questions: Arc<[Arc<str>]>,
    assign: Assign,
    per_batch_limit: usize,
    token: CancellationToken,
    shared: Arc<BatchShared>,
    out: Output,
    sink: Mutex<Sink>,
}

/// Where a batch's results go.
enum Output {
    /// To the consumer, with the slots that bound how far ahead of it the batch runs.
    Channel(mpsc::UnboundedSender<AgentResult>, Arc<Semaphore>),
    /// A consensus round takes its voters' results as it polls them; this holds those of
    /// voters cut short.
    Collect(Mutex<Vec<AgentResult>>),
}

impl Job {
    fn cancel_reason(&self) -> String {
        lock(&self.shared.cancel_reason)
            .as_deref()
            .unwrap_or("cancelled (executor or library shutdown)")
            .to_owned()
    }

    /// Waits for the rate limiter, if any, before an agent start: every first attempt,
    /// retry and hedge goes through here.
    async fn rate_gate(&self) {
        if let Some(rate) = &self.inner.rate {
            // Boxed: a rare path, and the call's future (the bulk of the memory per call
            // in flight) stays small.
            Box::pin(rate.acquire()).await;
        }
    }

    /// How long a call may run before it is hedged, if hedging is on and due.
    fn hedge_delay(&self) -> Option<Duration> {
        let h = &self.inner.config.hedge;
        let p95 = match self.shared.p95_us.load(Ordering::Relaxed) {
            0 => None,
            us if h.after_p95 => Some(Duration::from_micros(us)),
            _ => None,
        };
        match (h.after, p95) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Starts calls as permits free up. Each call task delivers its own result, so results
/// flow out in completion order without funnelling through this one task. Before a call
/// starts it takes a slot of room ahead of the consumer, so a finished call never waits
/// to hand over its result: it delivers and ends, and its permit goes to the next call.
async fn drive(job: Job) {
    let job = Arc::new(job);
    let n = job.questions.len();
    let mut set: JoinSet<()> = JoinSet::new();
    let mut next = 0;
    let mut have_slot = false;
    while next < n {
        if job.token.is_cancelled() {
            // Calls in flight are aborted and report `Cancelled` themselves (see `Call`).
            set.abort_all();
            // Questions never started still get their result, each exactly once, still
            // no further ahead of the consumer than the slots allow.
            let why = job.cancel_reason();
            while next < n {
                if !std::mem::take(&mut have_slot) {
                    take_slot(&job).await;
                }
                deliver(
                    &job,
                    AgentResult::not_started(next, Arc::clone(&job.questions[next]), &why),
                );
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
            deliver(&call.job, r);
            drop(permit);
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
fn deliver(job: &Job, r: AgentResult) {
    lock(&job.sink).record(job, &r);
    match &job.out {
        // Fails only once the consumer has gone; the result is then dropped.
        Output::Channel(tx, _) => drop(tx.send(r)),
        Output::Collect(cut) => lock(cut).push(r),
    }
}

/// One call from its start to its result. Cancellation drops a call's future (its task
/// is aborted, or a consensus round drops its voters) instead of each call waiting on the
/// batch's token, so a call dropped unfinished reports `Cancelled` from here: every
/// question still gets exactly one result.
struct Call {
    job: Arc<Job>,
    index: usize,
    /// When its first attempt began to be prepared (`None` while it waits for a permit).
    start: Option<Instant>,
    attempts: u32,
    finished: bool,
}

impl Call {
    fn new(job: Arc<Job>, index: usize) -> Self {
        Self {
            job,
            index,
            start: None,
            attempts: 0,
            finished: false,
        }
    }

    /// Marks the call as having its result, which the caller then delivers.
    fn finish(&mut self, r: AgentResult) -> AgentResult {
        self.finished = true;
        r
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let question = Arc::clone(&self.job.questions[self.index]);
            let mut r = AgentResult::not_started(self.index, question, &self.job.cancel_reason());
            r.duration = self.start.map_or(Duration::ZERO, |t| t.elapsed());
            r.attempts = self.attempts;
            deliver(&self.job, r);
        }
    }
}

/// Recent durations kept for the p95 that drives hedging.
const P95_WINDOW: usize = 256;
/// Results needed before the p95 is trusted.
const P95_MIN_SAMPLES: usize = 20;

/// A batch's accounting: metrics, the error budget, and the p95 for hedging.
#[derive(Default)]
struct Sink {
    rec: MetricsRecorder,
    errors: usize,
    recent: Vec<u64>,
    seen: usize,
}

impl Sink {
    fn record(&mut self, job: &Job, r: &AgentResult) {
        self.rec.record_timed(r, Instant::now());
        let done = job.shared.done.fetch_add(1, Ordering::AcqRel) + 1;
        if done == job.questions.len() {
            // Before the last result goes out, so whoever receives it can read them.
            *lock(&job.shared.metrics) = Some(self.rec.snapshot());
            lock(&job.inner.lifetime).merge(&self.rec);
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
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
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

enum Attempt {
    Answer(Answer),
    Error(AgentError),
    Panic(String),
    TimedOut,
    Cancelled,
}

/// One call: rate limit, attempt with timeout, retries with backoff; never panics.
async fn run_call(call: &mut Call) -> AgentResult {
    call.start = Some(Instant::now());
    let (job, index) = (&*call.job, call.index);
    let cfg = &job.inner.config;
    let question = Arc::clone(&job.questions[index]);
    let mut info = CallInfo {
        agent_id: index,
        hedged: false,
        hedge_won: false,
    };
    let outcome = loop {
        // A cancelled batch starts no attempt. Calls are cancelled by dropping them (see
        // `Call`), but a consensus voter may get its permit after an early stop.
        if job.token.is_cancelled() {
            break Attempt::Cancelled;
        }
        job.rate_gate().await;
        call.attempts += 1;
        let attempt = attempt_once(job, index, &question, &mut info).await;
        let retry = match &attempt {
            Attempt::Error(e) => e.retryable,
            Attempt::TimedOut => cfg.retry.retry_timeouts,
            _ => false,
        };
        if !retry || call.attempts > cfg.retry.max_retries {
            break attempt;
        }
        // A server's retry-after hint is a floor under the jittered backoff.
        let hint = match &attempt {
            Attempt::Error(e) => e.retry_after,
            _ => None,
        };
        let backoff = full_jitter(&cfg.retry, call.attempts, index)
            .max(hint.unwrap_or_default().min(crate::config::MAX_DURATION));
        Box::pin(tokio::time::sleep(backoff)).await;
    };
    let mut usage: Option<TokenUsage> = None;
    let (answer, error, outcome) = match outcome {
        Attempt::Answer(a) => {
            usage = a.usage;
            (Some(a.text), None, Outcome::Ok)
        }
        Attempt::Error(e) => (None, Some(e.message), Outcome::Failed),
        Attempt::Panic(m) => (None, Some(format!("agent panicked: {m}")), Outcome::Failed),
        Attempt::TimedOut => (
            None,
            Some(format!("timed out after {:?}", cfg.agent_timeout)),
            Outcome::TimedOut,
        ),
        Attempt::Cancelled => (None, Some(job.cancel_reason()), Outcome::Cancelled),
    };
    AgentResult {
        agent_id: info.agent_id,
        question_index: index,
        question,
        success: outcome == Outcome::Ok,
        answer,
        error,
        outcome,
        duration: call.start.map_or(Duration::ZERO, |t| t.elapsed()),
        attempts: call.attempts,
        hedged: info.hedged,
        hedge_won: info.hedge_won,
        usage,
    }
}

/// One attempt against the right agent, bounded by the timeout; a panic becomes a value.
async fn attempt_once(job: &Job, index: usize, question: &str, info: &mut CallInfo) -> Attempt {
    if let Some(delay) = job.hedge_delay() {
        return Box::pin(hedged_attempt(job, index, question, info, delay)).await;
    }
    // Waiting for a free pool member counts against the timeout: the host cares how long
    // the call took, not which part of it was queueing.
    match tokio::time::timeout(
        job.inner.config.agent_timeout,
        call_agent(job, index, question),
    )
    .await
    {
        Ok((attempt, member)) => {
            info.agent_id = member;
            attempt
        }
        Err(_) => Attempt::TimedOut,
    }
}

/// An attempt with straggler hedging: a call still running at `delay` gets one duplicate;
/// the first answer wins and the other call is dropped (cancelled).
async fn hedged_attempt(
    job: &Job,
    index: usize,
    question: &str,
    info: &mut CallInfo,
    delay: Duration,
) -> Attempt {
    let work = async {
        let primary = call_agent(job, index, question);
        tokio::pin!(primary);
        tokio::select! {
            r = &mut primary => return (r, false),
            _ = tokio::time::sleep(delay) => {}
        }
        // A duplicate is an agent start like any other.
        job.rate_gate().await;
        info.hedged = true;
        let backup = call_agent(job, index, question);
        tokio::pin!(backup);
        // Take the first answer; if the first to finish failed, wait for the other.
        tokio::select! {
            r = &mut primary => match r {
                (Attempt::Answer(_), _) => (r, false),
                _ => (backup.await, true),
            },
            r = &mut backup => match r {
                (Attempt::Answer(_), _) => (r, true),
                _ => (primary.await, false),
            },
        }
    };
    match tokio::time::timeout(job.inner.config.agent_timeout, work).await {
        Ok(((attempt, member), won)) => {
            info.agent_id = member;
            info.hedge_won |= won && matches!(attempt, Attempt::Answer(_));
            attempt
        }
        Err(_) => Attempt::TimedOut,
    }
}

/// One call to the agent that serves slot `index`; returns the attempt and the agent id.
async fn call_agent(job: &Job, index: usize, question: &str) -> (Attempt, usize) {
    match &job.inner.agents {
        Agents::Single(agent) => (
            guarded(start(|| agent.answer_with_usage(question, index))).await,
            index,
        ),
        Agents::Pool(members) => Box::pin(pool_call(job, members, index, question)).await,
    }
}

/// A call through a pool member: any free one, or voter `index`'s own.
async fn pool_call(job: &Job, members: &Members, index: usize, question: &str) -> (Attempt, usize) {
    let lease = match job.assign {
        Assign::Questions => members.acquire_any().await,
        Assign::Voters => members.acquire(index).await,
    };
    let id = lease.index;
    (
        guarded(start(|| lease.agent.answer_with_usage(question, id))).await,
        id,
    )
}

/// What a call's attempts learned about it, for its result.
struct CallInfo {
    agent_id: usize,
    hedged: bool,
    hedge_won: bool,
}

/// Runs an agent's future (made by [`start`]); a panic becomes a value.
async fn guarded(fut: BoxFuture<'_, std::result::Result<Answer, AgentError>>) -> Attempt {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(a)) => Attempt::Answer(a),
        Ok(Err(e)) => Attempt::Error(e),
        Err(p) => Attempt::Panic(crate::panic_message(&*p)),
    }
}

/// Makes an agent's future. A panic while making it is raised again from the returned
/// future, so [`guarded`] reports it like any other panic of the agent; synchronous, so
/// the call's future holds only the agent's boxed future, not what made it.
fn start<'a>(
    make: impl FnOnce() -> BoxFuture<'a, std::result::Result<Answer, AgentError>>,
) -> BoxFuture<'a, std::result::Result<Answer, AgentError>> {
    std::panic::catch_unwind(AssertUnwindSafe(make))
        .unwrap_or_else(|p| Box::pin(async move { std::panic::resume_unwind(p) }))
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base * 2^(k-1))]`.
fn full_jitter(policy: &crate::config::RetryPolicy, attempt: u32, index: usize) -> Duration {
    let exp = policy
        .backoff_base
        .saturating_mul(1u32 << (attempt - 1).min(30))
        .min(policy.backoff_cap);
    if exp.is_zero() {
        return exp;
    }
    // Jitter only needs to de-correlate callers, not to be unpredictable.
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let c = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let seed =
        c.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ now ^ ((index as u64) << 20) ^ u64::from(attempt);
    exp.mul_f64(SmallRng::seed_from_u64(seed).random::<f64>())
}
