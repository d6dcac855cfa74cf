//! [`ParallelAgentExecutor`]: fans questions out to agents with a `JoinSet` bounded by a
//! semaphore, and hands results back in question order, in completion order, or as a vote.
//!
//! # The data path, top to bottom
//!
//! From a host's call to the agent's and back, one file per step:
//!
//! 1. `executor/mod.rs` (here): the executor — its constructors and public entry points.
//!    Each batch entry point ([`submit`](ParallelAgentExecutor::submit),
//!    [`execute_parallel`](ParallelAgentExecutor::execute_parallel), ...) ends in
//!    `launch`, which sets up the batch's channel and spawns its driver on the global
//!    runtime.
//! 2. `executor/drive.rs`: the driver starts one call task per question as permits (and
//!    room ahead of the consumer) free up; each call task delivers its own result into the
//!    batch's channel and ends. The batch's accounting (metrics, error budget, the p95
//!    for hedging) happens as results are delivered.
//! 3. `executor/call.rs`: one call — rate limit, attempts under the timeout, hedging,
//!    retries with backoff — down to the agent's own future; a panic becomes a failure,
//!    and a call dropped unfinished still reports `Cancelled`.
//! 4. `executor/members.rs`: which pool member serves a call, one call per member.
//! 5. `executor/batch.rs`: the [`Batch`] on the other end of the channel hands the results
//!    to the caller (and fills in `Cancelled` for any that a shutdown swallowed);
//!    [`BatchProbe`] reads its progress from any thread.
//!
//! `executor/consensus.rs` is the other entry:
//! [`execute_with_consensus`](ParallelAgentExecutor::execute_with_consensus) runs the same
//! calls (step 3) as voters polled in one task, no driver or channel, and returns a
//! [`ConsensusResult`].

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::agent::Agent;
use crate::aggregate;
use crate::config::ParallelConfig;
use crate::error::{Error, Result};
use crate::metrics::cache::MetricsCache;
use crate::metrics::{ExecutionMetrics, MetricsRecorder};
use crate::ratelimit::RateLimiter;
use crate::result::AgentResult;
use crate::runtime;
use crate::sync::lock;

mod batch;
mod call;
mod consensus;
mod drive;
mod members;

pub use batch::{Batch, BatchProbe};
pub use consensus::ConsensusResult;

use drive::{drive, BatchShared, Job, Output, Sink};
use members::Members;

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

/// What every clone of an executor shares, and every batch of it holds.
struct Inner {
    config: ParallelConfig,
    agents: Agents,
    /// `max_concurrency` permits: one per call in flight, across all batches.
    semaphore: Arc<Semaphore>,
    rate: Option<Arc<RateLimiter>>,
    /// Metrics by key (consensus rounds store theirs under the question); bounded.
    metrics_cache: MetricsCache,
    /// Every finished batch merged in, for [`lifetime_metrics`](ParallelAgentExecutor::lifetime_metrics).
    lifetime: Mutex<MetricsRecorder>,
    /// A child of the runtime's token: cancelled by `cancel_all` or shutdown.
    token: CancellationToken,
    /// The open journal, if the config names one; held (locked) while the executor or
    /// any of its batches lives.
    #[cfg(feature = "journal")]
    journal: Option<crate::journal::Journal>,
}

/// What decides the executor's answers, for the journal: the agent's fingerprint (every
/// member's, for a pool). No field of [`ParallelConfig`] changes an answer's text (timeouts
/// and retries change whether one arrives, not what it says), so none is in it.
fn fingerprint(agents: &Agents) -> String {
    match agents {
        Agents::Single(a) => a.fingerprint(),
        Agents::Pool(m) => {
            let all: Vec<String> = m.agents().map(|a| a.fingerprint()).collect();
            format!("pool [{}]", all.join(" | "))
        }
    }
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
        #[cfg(feature = "journal")]
        let journal = crate::journal::Journal::open(&config.journal, &fingerprint(&agents))?;
        #[cfg(not(feature = "journal"))]
        if config.journal.path.is_some() {
            let _ = fingerprint(&agents);
            return Err(crate::journal::not_built());
        }
        // With hedging, each call may run one duplicate beside it.
        let calls = config
            .max_concurrency
            .saturating_mul(if config.hedge.enabled() { 2 } else { 1 });
        match &agents {
            Agents::Single(a) => a.fit_concurrency(calls),
            // A member serves one call at a time, but one agent may fill several members.
            Agents::Pool(m) => {
                let most = m.len().min(calls);
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
                #[cfg(feature = "journal")]
                journal,
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
        self.launch(qs, None, Assign::Questions, usize::MAX, buffer)
    }

    /// [`submit`](Self::submit) with the host's id for each question (`ids[i]` names
    /// `questions[i]`): every result carries its question's id, and a journal stores
    /// and replays results by id. Fails with [`Error::DuplicateId`] if an id appears
    /// twice, and with `InvalidArgument` if the lengths differ.
    pub fn submit_with_ids(&self, ids: Vec<String>, questions: Vec<String>) -> Result<Batch> {
        let buffer = self.inner.config.stream_buffer;
        let qs = questions.into_iter().map(Arc::from).collect();
        self.launch(qs, Some(ids), Assign::Questions, usize::MAX, buffer)
    }

    /// [`execute_with_metrics`](Self::execute_with_metrics) with the host's ids, as in
    /// [`submit_with_ids`](Self::submit_with_ids).
    pub async fn execute_with_ids(
        &self,
        ids: Vec<String>,
        questions: Vec<String>,
    ) -> Result<(Vec<AgentResult>, ExecutionMetrics)> {
        self.execute_inner(Some(ids), questions).await
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
        self.execute_inner(None, questions).await
    }

    async fn execute_inner(
        &self,
        ids: Option<Vec<String>>,
        questions: Vec<String>,
    ) -> Result<(Vec<AgentResult>, ExecutionMetrics)> {
        let qs: Vec<Arc<str>> = questions.into_iter().map(Arc::from).collect();
        // Every result is kept until the end anyway, so a buffer the size of the batch
        // costs nothing extra and spares finished calls from waiting on the collector.
        let buffer = qs.len().clamp(1, crate::config::MAX_BUFFER_LIMIT);
        let batch = self.launch(qs, ids, Assign::Questions, usize::MAX, buffer)?;
        let (results, metrics) = batch.finish_on_runtime().await?;
        Ok((self.maybe_dedup(results), metrics))
    }

    /// Answers the questions one at a time, in order (the baseline for comparisons).
    pub async fn execute_sequential(&self, questions: Vec<String>) -> Result<Vec<AgentResult>> {
        let qs = questions.into_iter().map(Arc::from).collect();
        let batch = self.launch(
            qs,
            None,
            Assign::Questions,
            1,
            self.inner.config.stream_buffer,
        )?;
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
        batch.drain_into(&mut out).await;
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
        self.launch(qs, None, Assign::Questions, usize::MAX, buffer_size)
    }

    /// Every batch entry point ends here: sets up the batch's channel and the slots that
    /// bound how far ahead of the consumer it runs (`buffer` results past the calls in
    /// flight), spawns its driver (`drive.rs`) and returns the consumer's end.
    fn launch(
        &self,
        questions: Vec<Arc<str>>,
        ids: Option<Vec<String>>,
        assign: Assign,
        per_batch_limit: usize,
        buffer: usize,
    ) -> Result<Batch> {
        if questions.is_empty() {
            return Err(Error::InvalidArgument("no questions given".into()));
        }
        let ids = match ids {
            None => index_ids(questions.len()),
            Some(ids) => checked_ids(ids, questions.len())?,
        };
        // Shutdown cancels every executor too; report the cause, not the symptom.
        let handle = runtime::handle()?;
        if self.inner.token.is_cancelled() {
            return Err(Error::InvalidArgument(
                "the executor has been cancelled".into(),
            ));
        }
        // The channel itself is unbounded: `slots` bounds it, and makes the driver (not
        // the call tasks) wait for a slow consumer.
        let (tx, rx) = mpsc::unbounded_channel();
        // With a journal, results wait for their group's commit before they reach the
        // consumer: room for one more round of calls keeps calls starting meanwhile.
        #[cfg(feature = "journal")]
        let rounds = if self.inner.journal.is_some() { 2 } else { 1 };
        #[cfg(not(feature = "journal"))]
        let rounds = 1;
        let slots = Arc::new(Semaphore::new(
            buffer.saturating_add(self.inner.config.max_concurrency.saturating_mul(rounds)),
        ));
        let shared = Arc::new(BatchShared::default());
        let token = self.inner.token.child_token();
        let questions: Arc<[Arc<str>]> = questions.into();
        #[cfg(feature = "journal")]
        let replay = match &self.inner.journal {
            Some(j) => j.replay(&ids, &questions)?,
            None => Vec::new(),
        };
        #[cfg(not(feature = "journal"))]
        let replay = Vec::new();
        let job = Job {
            inner: Arc::clone(&self.inner),
            questions: Arc::clone(&questions),
            ids: Arc::clone(&ids),
            assign,
            per_batch_limit,
            token: token.clone(),
            shared: Arc::clone(&shared),
            #[cfg(feature = "journal")]
            journal: self.inner.journal.is_some().then(|| {
                Arc::new(drive::ToBatch {
                    tx: tx.clone(),
                    shared: Arc::clone(&shared),
                    token: token.clone(),
                })
            }),
            out: Output::Channel(tx, Arc::clone(&slots)),
            sink: Mutex::new(Sink::default()),
        };
        runtime::spawn_tracked(&handle, drive(job, replay));
        Ok(Batch::new(rx, slots, questions, ids, token, shared))
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
}

/// Ids `"0"`, `"1"`, ...: the ids of questions the host gave none.
pub(super) fn index_ids(n: usize) -> Arc<[Arc<str>]> {
    (0..n).map(|i| Arc::from(i.to_string())).collect()
}

/// The host's ids, one per question and each unique.
fn checked_ids(ids: Vec<String>, n: usize) -> Result<Arc<[Arc<str>]>> {
    if ids.len() != n {
        return Err(Error::InvalidArgument(format!(
            "{} ids for {n} questions",
            ids.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    for id in &ids {
        if !seen.insert(id.as_str()) {
            return Err(Error::DuplicateId(id.clone()));
        }
    }
    Ok(ids.into_iter().map(Arc::from).collect())
}
