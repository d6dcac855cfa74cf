//! One call from its start to its result: the rate limit, attempts bounded by the timeout
//! (hedged if slow), retries with backoff, and the agent's own future, whose panics become
//! failures. Every call delivers exactly one result, even one dropped unfinished.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::drive::{deliver, Job};
use super::members::Members;
use super::{Agents, Assign};
use crate::agent::{AgentError, Answer, BoxFuture, TokenUsage};
use crate::result::{AgentResult, Outcome};

/// One call from its start to its result. Cancellation drops a call's future (its task
/// is aborted, or a consensus round drops its voters) instead of each call waiting on the
/// batch's token, so a call dropped unfinished reports `Cancelled` from here: every
/// question still gets exactly one result.
pub(super) struct Call {
    pub(super) job: Arc<Job>,
    index: usize,
    /// When its first attempt began to be prepared (`None` while it waits for a permit).
    start: Option<Instant>,
    attempts: u32,
    finished: bool,
}

impl Call {
    /// Call `index` of `job`, not yet started.
    pub(super) fn new(job: Arc<Job>, index: usize) -> Self {
        Self {
            job,
            index,
            start: None,
            attempts: 0,
            finished: false,
        }
    }

    /// Marks the call as having its result, which the caller then delivers.
    pub(super) fn finish(&mut self, r: AgentResult) -> AgentResult {
        self.finished = true;
        r
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let mut r = self.job.not_started(self.index, &self.job.cancel_reason());
            r.duration = self.start.map_or(Duration::ZERO, |t| t.elapsed());
            r.attempts = self.attempts;
            deliver(&self.job, r);
        }
    }
}

impl Job {
    /// Waits for the rate limiter, if any, before an agent start: every first attempt,
    /// retry and hedge goes through here. With a token budget it also reserves the
    /// agent's estimate for `question`; returns the tokens reserved, to settle with
    /// [`settle`](Self::settle). Fails only for a budget in Redis that stayed unreachable
    /// for the agent timeout.
    async fn rate_gate(&self, question: &str) -> Result<u64, AgentError> {
        let Some(rate) = &self.inner.rate else {
            return Ok(0);
        };
        // Boxed: a rare path, and the call's future (the bulk of the memory per call in
        // flight) stays small.
        Box::pin(async {
            let max_wait = self.inner.config.agent_timeout;
            rate.acquire_within(max_wait).await?;
            if !rate.counts_tokens() {
                return Ok(0);
            }
            let estimate = match &self.inner.agents {
                Agents::Single(a) => a.estimate_tokens(question),
                // Members may differ: reserve for the costliest.
                Agents::Pool(m) => m
                    .agents()
                    .map(|a| a.estimate_tokens(question))
                    .max()
                    .unwrap_or(0),
            };
            rate.acquire_tokens(estimate, max_wait).await
        })
        .await
        .map_err(AgentError::fatal)
    }

    /// Settles tokens reserved by [`rate_gate`](Self::rate_gate) to what the attempt
    /// used: its reported usage, else (no usage, an error, a timeout) the estimate.
    fn settle(&self, reserved: u64, attempt: &Attempt) {
        if reserved == 0 {
            return;
        }
        if let (Some(rate), Attempt::Answer(Answer { usage: Some(u), .. })) =
            (&self.inner.rate, attempt)
        {
            rate.settle_tokens(
                reserved,
                u.prompt_tokens.saturating_add(u.completion_tokens),
            );
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

/// How one attempt ended.
enum Attempt {
    Answer(Answer),
    Error(AgentError),
    Panic(String),
    TimedOut,
    Cancelled,
}

/// One call: rate limit, attempt with timeout, retries with backoff; never panics.
pub(super) async fn run_call(call: &mut Call) -> AgentResult {
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
        let reserved = match job.rate_gate(&question).await {
            Ok(r) => r,
            Err(e) => break Attempt::Error(e),
        };
        call.attempts += 1;
        let attempt = attempt_once(job, index, &question, &mut info).await;
        job.settle(reserved, &attempt);
        let retry = match &attempt {
            Attempt::Error(e) => e.retryable,
            Attempt::TimedOut => cfg.retry.retry_timeouts,
            _ => false,
        };
        if !retry || call.attempts > cfg.retry.max_retries {
            break attempt;
        }
        // A server's retry-after hint is a floor under the jittered backoff; a hint past
        // the longest backoff ends the call now instead of holding it for that long.
        let cap = cfg.retry.backoff_cap;
        let hint = match attempt {
            Attempt::Error(mut e) if e.retry_after.is_some_and(|h| h > cap) => {
                let h = e.retry_after.unwrap_or_default();
                e.message = format!(
                    "{}; the server asked to wait {h:?} before retrying, longer than the \
                     longest backoff ({cap:?}), so the call gives up",
                    e.message
                );
                break Attempt::Error(e);
            }
            Attempt::Error(e) => e.retry_after,
            _ => None,
        };
        let backoff = full_jitter(&cfg.retry, call.attempts, index).max(hint.unwrap_or_default());
        Box::pin(tokio::time::sleep(backoff)).await;
    };
    let mut usage: Option<TokenUsage> = None;
    let mut retryable = false;
    let (answer, error, outcome) = match outcome {
        Attempt::Answer(a) => {
            usage = a.usage;
            (Some(a.text), None, Outcome::Ok)
        }
        Attempt::Error(e) => {
            retryable = e.retryable;
            (None, Some(e.message), Outcome::Failed)
        }
        Attempt::Panic(m) => (None, Some(format!("agent panicked: {m}")), Outcome::Failed),
        Attempt::TimedOut => {
            retryable = true;
            (
                None,
                Some(format!("timed out after {:?}", cfg.agent_timeout)),
                Outcome::TimedOut,
            )
        }
        Attempt::Cancelled => (None, Some(job.cancel_reason()), Outcome::Cancelled),
    };
    AgentResult {
        id: Arc::clone(&job.ids[index]),
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
        retryable,
        replayed: false,
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
        // A duplicate is an agent start like any other; no budget, no duplicate. Its
        // tokens keep their estimate (only the attempt's winner is settled).
        if job.rate_gate(question).await.is_err() {
            return (primary.await, false);
        }
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
        Err(p) => Attempt::Panic(crate::error::panic_message(&*p)),
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
