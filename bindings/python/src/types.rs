//! What comes back to Python: [`Result`] per call, [`Metrics`] per batch or executor,
//! [`Consensus`] per vote. Plain immutable values, converted once from the core's types.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use parallel_agents::{AgentResult, ConsensusResult, ExecutionMetrics};

/// The result of one call: how it ended, the answer or the error, attempts, duration
/// (seconds) and token usage.
#[pyclass(frozen, module = "parallel_agents._native", name = "Result")]
pub struct Result {
    /// Position of the question in the batch (voter index in a consensus round).
    #[pyo3(get)]
    index: usize,
    /// The host's id for the question, or its index in decimal when none was given.
    #[pyo3(get)]
    id: String,
    /// Whether this result came from the journal instead of a call.
    #[pyo3(get)]
    replayed: bool,
    /// Logical agent slot of the call (the question index for a single agent).
    #[pyo3(get)]
    agent_id: usize,
    /// The question asked.
    #[pyo3(get)]
    question: String,
    /// `"ok"`, `"failed"`, `"timed_out"` or `"cancelled"`.
    #[pyo3(get)]
    outcome: &'static str,
    /// The answer, when the outcome is `"ok"`.
    #[pyo3(get)]
    answer: Option<String>,
    /// Why the call did not succeed, when it did not.
    #[pyo3(get)]
    error: Option<String>,
    /// Attempts made (0 if it never started).
    #[pyo3(get)]
    attempts: u32,
    /// Seconds from the first attempt's start to the end, backoff included.
    #[pyo3(get)]
    duration: f64,
    /// Prompt tokens the answering call used, for agents that report it.
    #[pyo3(get)]
    prompt_tokens: Option<u64>,
    /// Completion tokens the answering call used, for agents that report it.
    #[pyo3(get)]
    completion_tokens: Option<u64>,
    /// Whether a straggler hedge was started for it.
    #[pyo3(get)]
    hedged: bool,
}

impl From<AgentResult> for Result {
    fn from(r: AgentResult) -> Self {
        Self {
            index: r.question_index,
            id: r.id.to_string(),
            replayed: r.replayed,
            agent_id: r.agent_id,
            question: r.question.to_string(),
            outcome: r.outcome.as_str(),
            answer: r.answer,
            error: r.error,
            attempts: r.attempts,
            duration: r.duration.as_secs_f64(),
            prompt_tokens: r.usage.map(|u| u.prompt_tokens),
            completion_tokens: r.usage.map(|u| u.completion_tokens),
            hedged: r.hedged,
        }
    }
}

#[pymethods]
impl Result {
    /// Whether the call answered (`outcome == "ok"`).
    #[getter]
    fn ok(&self) -> bool {
        self.outcome == "ok"
    }

    /// The fields as a dict.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("index", self.index)?;
        d.set_item("id", &self.id)?;
        d.set_item("replayed", self.replayed)?;
        d.set_item("agent_id", self.agent_id)?;
        d.set_item("question", &self.question)?;
        d.set_item("outcome", self.outcome)?;
        d.set_item("answer", &self.answer)?;
        d.set_item("error", &self.error)?;
        d.set_item("attempts", self.attempts)?;
        d.set_item("duration", self.duration)?;
        d.set_item("prompt_tokens", self.prompt_tokens)?;
        d.set_item("completion_tokens", self.completion_tokens)?;
        d.set_item("hedged", self.hedged)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let shown = match (&self.answer, &self.error) {
            (Some(a), _) => format!("answer={a:?}"),
            (None, Some(e)) => format!("error={e:?}"),
            (None, None) => String::new(),
        };
        format!(
            "Result(index={}, outcome={:?}, {shown}, attempts={}, duration={:.6})",
            self.index, self.outcome, self.attempts, self.duration
        )
    }
}

/// What a batch (or an executor over its lifetime) did: counts by outcome, per-call
/// latency statistics in seconds, throughput and tokens.
#[pyclass(frozen, module = "parallel_agents._native", name = "Metrics")]
#[derive(Clone)]
pub struct Metrics {
    /// Seconds from the first call's start to the last call's end.
    #[pyo3(get)]
    total_duration: f64,
    /// Calls that answered.
    #[pyo3(get)]
    successful_count: u64,
    /// Calls that failed after their retries.
    #[pyo3(get)]
    failed_count: u64,
    /// Calls whose last attempt timed out.
    #[pyo3(get)]
    timed_out_count: u64,
    /// Calls cancelled (or never started because of a cancel).
    #[pyo3(get)]
    cancelled_count: u64,
    /// All calls.
    #[pyo3(get)]
    total_count: u64,
    /// Attempts made, retries included.
    #[pyo3(get)]
    attempts: u64,
    /// Calls for which a hedge was started.
    #[pyo3(get)]
    hedged_count: u64,
    /// Mean per-call duration (seconds).
    #[pyo3(get)]
    avg_duration: f64,
    /// Shortest per-call duration.
    #[pyo3(get)]
    min_duration: f64,
    /// Longest per-call duration.
    #[pyo3(get)]
    max_duration: f64,
    /// Median per-call duration.
    #[pyo3(get)]
    p50_duration: f64,
    /// 95th percentile per-call duration.
    #[pyo3(get)]
    p95_duration: f64,
    /// 99th percentile per-call duration.
    #[pyo3(get)]
    p99_duration: f64,
    /// Calls that ran to an outcome per second of `total_duration`.
    #[pyo3(get)]
    throughput: f64,
    /// Prompt tokens reported by the answering calls.
    #[pyo3(get)]
    prompt_tokens: u64,
    /// Completion tokens reported by the answering calls.
    #[pyo3(get)]
    completion_tokens: u64,
}

impl From<ExecutionMetrics> for Metrics {
    fn from(m: ExecutionMetrics) -> Self {
        Self {
            total_duration: m.total_duration.as_secs_f64(),
            successful_count: m.successful_count,
            failed_count: m.failed_count,
            timed_out_count: m.timed_out_count,
            cancelled_count: m.cancelled_count,
            total_count: m.total_count,
            attempts: m.attempts,
            hedged_count: m.hedged_count,
            avg_duration: m.avg_duration.as_secs_f64(),
            min_duration: m.min_duration.as_secs_f64(),
            max_duration: m.max_duration.as_secs_f64(),
            p50_duration: m.p50_duration.as_secs_f64(),
            p95_duration: m.p95_duration.as_secs_f64(),
            p99_duration: m.p99_duration.as_secs_f64(),
            throughput: m.throughput,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
        }
    }
}

#[pymethods]
impl Metrics {
    /// The fields as a dict (durations in seconds).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("total_duration", self.total_duration)?;
        d.set_item("successful_count", self.successful_count)?;
        d.set_item("failed_count", self.failed_count)?;
        d.set_item("timed_out_count", self.timed_out_count)?;
        d.set_item("cancelled_count", self.cancelled_count)?;
        d.set_item("total_count", self.total_count)?;
        d.set_item("attempts", self.attempts)?;
        d.set_item("hedged_count", self.hedged_count)?;
        d.set_item("avg_duration", self.avg_duration)?;
        d.set_item("min_duration", self.min_duration)?;
        d.set_item("max_duration", self.max_duration)?;
        d.set_item("p50_duration", self.p50_duration)?;
        d.set_item("p95_duration", self.p95_duration)?;
        d.set_item("p99_duration", self.p99_duration)?;
        d.set_item("throughput", self.throughput)?;
        d.set_item("prompt_tokens", self.prompt_tokens)?;
        d.set_item("completion_tokens", self.completion_tokens)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Metrics(total={}, ok={}, failed={}, timed_out={}, cancelled={}, p50={:.6}, \
             p99={:.6}, throughput={:.1}/s)",
            self.total_count,
            self.successful_count,
            self.failed_count,
            self.timed_out_count,
            self.cancelled_count,
            self.p50_duration,
            self.p99_duration,
            self.throughput
        )
    }
}

/// A consensus round: the winning answer, its confidence, the tally and every vote.
#[pyclass(frozen, module = "parallel_agents._native", name = "Consensus")]
pub struct Consensus {
    /// The winning answer as its first voter wrote it; `None` if no call succeeded.
    #[pyo3(get)]
    answer: Option<String>,
    /// Winning votes / answers counted.
    #[pyo3(get)]
    confidence: f64,
    /// Votes for the winner.
    #[pyo3(get)]
    votes: usize,
    /// Answers counted.
    #[pyo3(get)]
    counted: usize,
    /// Whether the confidence reached the executor's `consensus_threshold`.
    #[pyo3(get)]
    reached: bool,
    /// Whether the round stopped early, cancelling calls that could not change the verdict.
    #[pyo3(get)]
    early_stopped: bool,
    /// Votes per normalised answer, most first.
    #[pyo3(get)]
    tally: Vec<(String, usize)>,
    results: Vec<Py<Result>>,
    /// The round's metrics.
    #[pyo3(get)]
    metrics: Metrics,
}

impl Consensus {
    pub(crate) fn new(py: Python<'_>, c: ConsensusResult) -> PyResult<Self> {
        let results = c
            .results
            .into_iter()
            .map(|r| Py::new(py, Result::from(r)))
            .collect::<PyResult<_>>()?;
        Ok(Self {
            answer: c.answer,
            confidence: c.confidence,
            votes: c.votes,
            counted: c.counted,
            reached: c.reached,
            early_stopped: c.early_stopped,
            tally: c.tally,
            results,
            metrics: c.metrics.into(),
        })
    }
}

#[pymethods]
impl Consensus {
    /// Every call, in voter order.
    #[getter]
    fn results(&self, py: Python<'_>) -> Vec<Py<Result>> {
        self.results.iter().map(|r| r.clone_ref(py)).collect()
    }

    fn __repr__(&self) -> String {
        let answer = self
            .answer
            .as_ref()
            .map_or("None".into(), |a| format!("{a:?}"));
        let reached = if self.reached { "True" } else { "False" };
        format!(
            "Consensus(answer={answer}, confidence={:.3}, votes={}, counted={}, reached={reached})",
            self.confidence, self.votes, self.counted
        )
    }
}
