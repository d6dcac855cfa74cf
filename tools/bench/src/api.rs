//! Measurements through the library's Rust API, every result checked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_agents::{
    runtime, Agent, AgentError, AgentResult, BoxFuture, MockAgent, MockAnswers, MockOptions,
    Outcome, ParallelAgentExecutor, ParallelConfig,
};

/// Agent timeout of every executor here: on, as a real host has it, never reached.
pub const AGENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Every this-many-th answer is compared in full (the rest are checked structurally),
/// so checking does not dominate the zero-latency runs.
pub const ANSWER_STRIDE: usize = 64;

/// Questions `q0`, `q1`, ...
pub fn questions(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("q{i}")).collect()
}

/// The mock's template answer to question `i` (its agent id is the question index).
pub fn expected_answer(i: usize) -> String {
    format!("Agent {i} answer for 'q{i}'")
}

/// An executor over a template mock with `latency` and no jitter, at concurrency `c`.
pub fn executor(c: usize, latency: Duration) -> Result<ParallelAgentExecutor, String> {
    executor_over(c, Arc::new(mock(latency, MockAnswers::Template)?))
}

/// An executor over `agent` at concurrency `c`, timeouts on, otherwise defaults.
pub fn executor_over(c: usize, agent: Arc<dyn Agent>) -> Result<ParallelAgentExecutor, String> {
    let config = ParallelConfig {
        max_concurrency: c,
        agent_timeout: AGENT_TIMEOUT,
        ..Default::default()
    };
    ParallelAgentExecutor::new(config, agent).map_err(|e| e.to_string())
}

/// A mock agent with `latency`, no jitter, no faults.
pub fn mock(latency: Duration, answers: MockAnswers) -> Result<MockAgent, String> {
    MockAgent::new(MockOptions {
        latency,
        jitter: Duration::ZERO,
        answers,
        ..Default::default()
    })
    .map_err(|e| e.to_string())
}

/// Which question indices have come back, to catch lost and duplicated results.
pub struct Seen {
    seen: Vec<bool>,
    got: usize,
}

impl Seen {
    /// None of `n` seen yet.
    pub fn new(n: usize) -> Self {
        Seen {
            seen: vec![false; n],
            got: 0,
        }
    }

    /// Checks one result of a template-mock batch: index in range and new, outcome OK,
    /// agent id = index, and (every [`ANSWER_STRIDE`]th) the exact answer.
    pub fn check(&mut self, r: &AgentResult) -> Result<(), String> {
        let i = r.question_index;
        let slot = self
            .seen
            .get_mut(i)
            .ok_or_else(|| format!("question index {i} out of range"))?;
        if std::mem::replace(slot, true) {
            return Err(format!("question index {i} delivered twice"));
        }
        self.got += 1;
        if r.outcome != Outcome::Ok || !r.success {
            return Err(format!("call {i} ended {:?}: {:?}", r.outcome, r.error));
        }
        if r.agent_id != i {
            return Err(format!("call {i} reports agent id {}", r.agent_id));
        }
        if i % ANSWER_STRIDE == 0 && r.answer.as_deref() != Some(expected_answer(i).as_str()) {
            return Err(format!("call {i} answered {:?}", r.answer));
        }
        Ok(())
    }

    /// Fails unless every index came back exactly once.
    pub fn finish(&self) -> Result<(), String> {
        if self.got != self.seen.len() {
            return Err(format!(
                "{} results for {} questions",
                self.got,
                self.seen.len()
            ));
        }
        Ok(())
    }
}

/// Submits `qs` and drains the batch in completion order, checking each result and the
/// batch's metrics. Returns the time from before the submit to the last result.
pub async fn submit_and_drain(
    exec: &ParallelAgentExecutor,
    qs: Vec<String>,
) -> Result<Duration, String> {
    let n = qs.len();
    let mut seen = Seen::new(n);
    let t0 = Instant::now();
    let mut batch = exec.submit(qs).map_err(|e| e.to_string())?;
    while let Some(r) = batch.next().await {
        seen.check(&r)?;
    }
    let dt = t0.elapsed();
    seen.finish()?;
    let m = batch.metrics().ok_or("finished batch has no metrics")?;
    if m.successful_count != n as u64 || m.total_count != n as u64 {
        return Err(format!(
            "metrics count {} successes of {} calls for {n} questions",
            m.successful_count, m.total_count
        ));
    }
    Ok(dt)
}

/// `execute_parallel`: all results at once, in question order. Returns its duration.
pub async fn execute_parallel(
    exec: &ParallelAgentExecutor,
    qs: Vec<String>,
) -> Result<Duration, String> {
    let n = qs.len();
    let t0 = Instant::now();
    let results = exec.execute_parallel(qs).await.map_err(|e| e.to_string())?;
    let dt = t0.elapsed();
    let mut seen = Seen::new(n);
    for (k, r) in results.iter().enumerate() {
        if r.question_index != k {
            return Err(format!("result {k} is for question {}", r.question_index));
        }
        seen.check(r)?;
    }
    seen.finish()?;
    Ok(dt)
}

/// Nanoseconds per call of the zero-latency template mock on its own: `answer()` made and
/// polled once, inline on this thread, `n` times. The agent's share of a zero-latency
/// call, which the raw primitive's no-op tasks do not pay.
pub fn mock_cost_ns(n: usize) -> Result<f64, String> {
    use futures_util::FutureExt;
    let agent = mock(Duration::ZERO, MockAnswers::Template)?;
    let qs = questions(n);
    let t0 = Instant::now();
    for (i, q) in qs.iter().enumerate() {
        let a = agent
            .answer(q, i)
            .now_or_never()
            .ok_or("the zero-latency mock did not answer at once")?
            .map_err(|e| e.message)?;
        if i % ANSWER_STRIDE == 0 && a != expected_answer(i) {
            return Err(format!("mock answered {a:?} to question {i}"));
        }
    }
    Ok(t0.elapsed().as_secs_f64() * 1e9 / n as f64)
}

/// Runs `f` on the library's runtime from this (host) thread.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    runtime::block_on("bench", f).map_err(|e| e.to_string())
}

/// Latencies in µs of `rounds` consensus rounds of `agents` zero-latency voters, each
/// run with its own `block_on` from the host thread, as a synchronous host would; after
/// `rounds / 10 + 1` rounds of warm-up. Every round must reach consensus on "Paris".
/// The config is the default one, so consensus early stop is on.
pub fn consensus_rounds(agents: usize, rounds: usize) -> Result<Vec<f64>, String> {
    let agent = Arc::new(mock(
        Duration::ZERO,
        MockAnswers::Vote(vec![("Paris".into(), 1.0)]),
    )?);
    let exec = executor_over(agents, agent)?;
    let question = "What is the capital of France?";
    let warm = rounds / 10 + 1;
    let mut us = Vec::with_capacity(rounds);
    for k in 0..warm + rounds {
        let t0 = Instant::now();
        let c = block_on(exec.execute_with_consensus(question.to_owned(), agents))?
            .map_err(|e| e.to_string())?;
        let dt = t0.elapsed();
        // Early stop (on by default) may cancel calls that can no longer change the
        // verdict; every other call must have answered "Paris".
        let cancelled = c
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Cancelled)
            .count();
        let right = c.answer.as_deref() == Some("Paris")
            && c.reached
            && c.results.len() == agents
            && c.votes == c.counted
            && c.votes + cancelled == agents
            && (cancelled == 0 || c.early_stopped);
        if !right {
            let calls: Vec<String> = c
                .results
                .iter()
                .map(|r| format!("{:?} {:?}", r.outcome, r.error.as_deref().unwrap_or("")))
                .collect();
            return Err(format!(
                "consensus round {k}: answer {:?}, {} votes of {} counted, reached {}; calls: {}",
                c.answer,
                c.votes,
                c.counted,
                c.reached,
                calls.join(", ")
            ));
        }
        if k >= warm {
            us.push(dt.as_secs_f64() * 1e6);
        }
    }
    Ok(us)
}

/// A template mock that counts calls as they start, so a memory probe knows when every
/// call has been polled at least once (and so holds all the memory it will hold).
pub struct CountingMock {
    inner: MockAgent,
    started: AtomicUsize,
}

impl CountingMock {
    /// Wraps a template mock with `latency`.
    pub fn new(latency: Duration) -> Result<Self, String> {
        Ok(CountingMock {
            inner: mock(latency, MockAnswers::Template)?,
            started: AtomicUsize::new(0),
        })
    }

    /// Calls started so far.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Acquire)
    }
}

impl Agent for CountingMock {
    fn answer<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<String, AgentError>> {
        self.started.fetch_add(1, Ordering::Release);
        self.inner.answer(question, agent_id)
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}
