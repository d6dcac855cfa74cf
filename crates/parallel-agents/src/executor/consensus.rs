//! Consensus: ask several agents the same question and vote. The voters are ordinary
//! calls (see `call.rs`), polled here in the caller's task instead of being spawned by a
//! driver, so a round costs no driver task, no channel and no extra thread wake-ups.

use std::sync::{Arc, Mutex};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::call::{run_call, Call};
use super::drive::{BatchShared, Job, Output, Sink};
use super::{Assign, ParallelAgentExecutor};
use crate::aggregate::Tally;
use crate::config::MAX_CONSENSUS_AGENTS;
use crate::error::{Error, Result};
use crate::metrics::ExecutionMetrics;
use crate::result::{AgentResult, Outcome};
use crate::runtime;
use crate::sync::lock;

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

impl ParallelAgentExecutor {
    /// The consensus round itself; must run inside the library's runtime (a worker, or a
    /// host thread in [`runtime::block_on`]). The voters are polled right here, in one
    /// task: a round costs no driver task, no channel and no extra thread wake-ups.
    pub(super) async fn consensus_in_runtime(
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
            ids: super::index_ids(n_agents),
            assign: Assign::Voters,
            per_batch_limit: usize::MAX,
            token: self.inner.token.child_token(),
            shared: Arc::new(BatchShared::default()),
            #[cfg(feature = "journal")]
            journal: None,
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
}
