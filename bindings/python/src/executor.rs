//! [`Config`] (checked once, when the Python `Executor` is made), [`Executor`] (the core
//! executor bound to one agent), [`Batch`] and [`ConsensusTask`]: running work that Python
//! waits on in slices, with the GIL released.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use parallel_agents::config::HedgePolicy;
use parallel_agents::shared_batch::{Next, SharedBatch};
use parallel_agents::{AgentResult, BatchProbe, ExecutionMetrics};
use parallel_agents::{ParallelAgentExecutor, ParallelConfig, RateLimit, RetryPolicy};

use crate::agents::native_agent;
use crate::types::{Consensus, Metrics, Result};
use crate::{to_py_err, value_error};

/// The Python argument behind a core config field, for error messages.
pub(crate) fn python_name(field: &str) -> &str {
    match field {
        "agent_timeout" => "timeout",
        "max_retries" => "retries",
        "backoff_base" => "backoff",
        "hedge_after" => "hedge",
        other => other,
    }
}

/// `secs` as a duration: a finite number of seconds, at least 0.
pub(crate) fn seconds(py: Python<'_>, name: &str, secs: f64) -> PyResult<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(value_error(
            py,
            name,
            format!("{secs} is not a finite number of seconds >= 0"),
        ));
    }
    Duration::try_from_secs_f64(secs)
        .map_err(|_| value_error(py, name, format!("{secs} seconds is out of range")))
}

/// `timeout` of a wait: `None` waits as long as it takes.
fn wait_for(py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) => Ok(Instant::now().checked_add(seconds(py, "timeout", t)?)),
    }
}

/// How an executor runs its calls, checked when made; a bad value is a `ValueError`
/// naming the argument.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct Config {
    config: ParallelConfig,
    tokens_per_minute: Option<u64>,
    rate_limiter: Option<Arc<parallel_agents::RateLimiter>>,
}

#[pymethods]
impl Config {
    #[new]
    #[pyo3(signature = (*, max_concurrency = 64, timeout = 60.0, retries = 0, backoff = 0.1, backoff_cap = 10.0, retry_timeouts = false, rate_limit = None, rate_burst = 1, tokens_per_minute = None, hedge = None, hedge_p95 = false, max_errors = None, stream_buffer = 1024, consensus_threshold = 0.6, consensus_early_stop = true, journal = None, journal_rerun_failed = false, rate_limiter = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        max_concurrency: i64,
        timeout: f64,
        retries: i64,
        backoff: f64,
        backoff_cap: f64,
        retry_timeouts: bool,
        rate_limit: Option<f64>,
        rate_burst: i64,
        tokens_per_minute: Option<i64>,
        hedge: Option<f64>,
        hedge_p95: bool,
        max_errors: Option<i64>,
        stream_buffer: i64,
        consensus_threshold: f64,
        consensus_early_stop: bool,
        journal: Option<std::path::PathBuf>,
        journal_rerun_failed: bool,
        rate_limiter: Option<PyRef<'_, crate::ratelimit::RateLimiter>>,
    ) -> PyResult<Self> {
        if rate_limiter.is_some() && rate_limit.is_some() {
            return Err(value_error(
                py,
                "rate_limiter",
                "give rate_limit or rate_limiter, not both",
            ));
        }
        let count = |name: &str, v: i64, min: i64| -> PyResult<u64> {
            if v < min {
                return Err(value_error(py, name, format!("{v} is below {min}")));
            }
            Ok(v as u64)
        };
        if timeout <= 0.0 {
            return Err(value_error(py, "timeout", "must be greater than zero"));
        }
        let rate_limit = match rate_limit {
            None => None,
            Some(r) => Some(RateLimit {
                per_second: r,
                burst: u32::try_from(count("rate_burst", rate_burst, 1)?).map_err(|_| {
                    value_error(py, "rate_burst", format!("{rate_burst} is too large"))
                })?,
            }),
        };
        let hedge = HedgePolicy {
            after: hedge.map(|h| seconds(py, "hedge", h)).transpose()?,
            after_p95: hedge_p95,
        };
        let config = ParallelConfig {
            max_concurrency: count("max_concurrency", max_concurrency, 1)? as usize,
            agent_timeout: seconds(py, "timeout", timeout)?,
            deduplicate_results: false,
            consensus_threshold,
            consensus_early_stop,
            retry: RetryPolicy {
                max_retries: u32::try_from(count("retries", retries, 0)?)
                    .map_err(|_| value_error(py, "retries", format!("{retries} is too large")))?,
                backoff_base: seconds(py, "backoff", backoff)?,
                backoff_cap: seconds(py, "backoff_cap", backoff_cap)?,
                retry_timeouts,
            },
            rate_limit,
            stream_buffer: count("stream_buffer", stream_buffer, 1)? as usize,
            hedge,
            max_errors: max_errors
                .map(|m| count("max_errors", m, 0).map(|m| m as usize))
                .transpose()?,
            journal: parallel_agents::config::JournalConfig {
                path: journal,
                rerun_failed: journal_rerun_failed,
                ..Default::default()
            },
        };
        config
            .validate()
            .map_err(|e| to_py_err(py, parallel_agents::Error::Config(e)))?;
        let tokens_per_minute = tokens_per_minute
            .map(|t| count("tokens_per_minute", t, 1))
            .transpose()?;
        Ok(Self {
            config,
            tokens_per_minute,
            rate_limiter: rate_limiter.map(|l| Arc::clone(&l.inner)),
        })
    }

    /// Calls in flight at once.
    #[getter]
    fn max_concurrency(&self) -> usize {
        self.config.max_concurrency
    }

    /// Per-attempt timeout, in seconds.
    #[getter]
    fn timeout(&self) -> f64 {
        self.config.agent_timeout.as_secs_f64()
    }

    /// Retries after a failed first attempt.
    #[getter]
    fn retries(&self) -> u32 {
        self.config.retry.max_retries
    }

    /// The executor's tokens-per-minute budget (applies to an `OpenAIAgent`), if any.
    #[getter]
    fn tokens_per_minute(&self) -> Option<u64> {
        self.tokens_per_minute
    }

    fn __repr__(&self) -> String {
        format!("Config({:?})", self.config)
    }
}

/// The core executor bound to one agent. The Python `Executor` keeps one per agent.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct Executor {
    inner: ParallelAgentExecutor,
}

impl Executor {
    /// Starts a batch, with the host's ids when given (one per question, no repeats).
    fn start(
        &self,
        py: Python<'_>,
        questions: Vec<String>,
        ids: Option<Vec<String>>,
    ) -> PyResult<parallel_agents::Batch> {
        let batch = match ids {
            None => self.inner.submit(questions),
            Some(ids) if ids.len() != questions.len() => {
                return Err(value_error(
                    py,
                    "ids",
                    format!("{} ids for {} questions", ids.len(), questions.len()),
                ))
            }
            Some(ids) => self.inner.submit_with_ids(ids, questions),
        };
        batch.map_err(|e| to_py_err(py, e))
    }
}

#[pymethods]
impl Executor {
    #[new]
    fn new(py: Python<'_>, agent: &Bound<'_, PyAny>, config: &Bound<'_, Config>) -> PyResult<Self> {
        let cfg = config.get();
        let agent = match cfg.tokens_per_minute {
            None => native_agent(agent)?,
            Some(tpm) => crate::agents::with_tokens_per_minute(py, agent, tpm)?,
        };
        let inner = match &cfg.rate_limiter {
            None => ParallelAgentExecutor::new(cfg.config.clone(), agent),
            Some(l) => {
                ParallelAgentExecutor::with_rate_limiter(cfg.config.clone(), agent, Arc::clone(l))
            }
        }
        .map_err(|e| to_py_err(py, e))?;
        Ok(Self { inner })
    }

    /// Starts a batch over `questions` (named by `ids`, if given) and returns at once.
    #[pyo3(signature = (questions, ids = None))]
    fn submit(
        &self,
        py: Python<'_>,
        questions: Vec<String>,
        ids: Option<Vec<String>>,
    ) -> PyResult<Batch> {
        let batch = self.start(py, questions, ids)?;
        Ok(Batch {
            inner: Arc::new(SharedBatch::new(batch)),
        })
    }

    /// Starts a batch whose results are gathered on a runtime worker (the waiting thread
    /// wakes once, not once per result) and returns at once.
    #[pyo3(signature = (questions, ids = None))]
    fn run(
        &self,
        py: Python<'_>,
        questions: Vec<String>,
        ids: Option<Vec<String>>,
    ) -> PyResult<RunTask> {
        let batch = self.start(py, questions, ids)?;
        let probe = batch.probe();
        let handle = parallel_agents::runtime::handle().map_err(|e| to_py_err(py, e))?;
        Ok(RunTask {
            task: Mutex::new(Some(handle.spawn(batch.finish()))),
            probe,
        })
    }

    /// Starts a consensus round of `n` voters on `question` and returns at once.
    fn consensus(&self, py: Python<'_>, question: String, n: i64) -> PyResult<ConsensusTask> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| (1..=parallel_agents::config::MAX_CONSENSUS_AGENTS).contains(&n))
            .ok_or_else(|| {
                value_error(
                    py,
                    "n",
                    format!(
                        "{n} is not in [1, {}]",
                        parallel_agents::config::MAX_CONSENSUS_AGENTS
                    ),
                )
            })?;
        let handle = parallel_agents::runtime::handle().map_err(|e| to_py_err(py, e))?;
        let exec = self.inner.clone();
        let task = handle.spawn(async move { exec.execute_with_consensus(question, n).await });
        Ok(ConsensusTask {
            task: Mutex::new(Some(task)),
        })
    }

    /// Metrics over every call this executor finished.
    fn metrics(&self) -> Metrics {
        self.inner.lifetime_metrics().into()
    }

    /// Calls in flight right now.
    #[getter]
    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    /// Cancels every batch of this executor, now and later.
    fn cancel_all(&self) {
        self.inner.cancel_all();
    }
}

/// A running batch: results come out in completion order, each question exactly once.
/// Dropping it cancels what still runs.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct Batch {
    inner: Arc<SharedBatch>,
}

#[pymethods]
impl Batch {
    /// Up to `max` results in completion order, waiting at most `timeout` seconds
    /// (`None`: as long as it takes) for the first; `[]` if none came in time, `None`
    /// once every result has been handed out. The GIL is released while waiting.
    #[pyo3(signature = (max = 1024, timeout = None))]
    fn next_many(
        &self,
        py: Python<'_>,
        max: usize,
        timeout: Option<f64>,
    ) -> PyResult<Option<Vec<Result>>> {
        let deadline = wait_for(py, timeout)?;
        let batch = Arc::clone(&self.inner);
        let got = py.detach(move || -> parallel_agents::Result<Option<Vec<_>>> {
            let mut out = Vec::new();
            let first = batch.next(
                "next",
                deadline.map(|d| d.saturating_duration_since(Instant::now())),
            )?;
            match first {
                Next::Done => return Ok(None),
                Next::TimedOut => return Ok(Some(out)),
                Next::Result(r) => out.push(r),
            }
            while out.len() < max.max(1) {
                match batch.next("next", Some(Duration::ZERO))? {
                    Next::Result(r) => out.push(r),
                    Next::Done | Next::TimedOut => break,
                }
            }
            Ok(Some(out))
        });
        let got = got.map_err(|e| to_py_err(py, e))?;
        Ok(got.map(|v| v.into_iter().map(Result::from).collect()))
    }

    /// Waits at most `timeout` seconds (`None`: as long as it takes) for every call to
    /// finish; returns the results not yet handed out, in question order, with the batch's
    /// metrics, or `None` if the timeout came first (nothing is lost: the next wait goes
    /// on from there). The GIL is released while waiting.
    #[pyo3(signature = (timeout = None))]
    fn wait_all(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Vec<Result>, Metrics)>> {
        let deadline = wait_for(py, timeout)?;
        let batch = Arc::clone(&self.inner);
        let got = py
            .detach(move || {
                batch.wait_all(
                    "wait_all",
                    deadline.map(|d| d.saturating_duration_since(Instant::now())),
                )
            })
            .map_err(|e| to_py_err(py, e))?;
        Ok(got.map(|(rs, m)| (rs.into_iter().map(Result::from).collect(), m.into())))
    }

    /// Cancels the calls still running or not yet started; they come back `cancelled`.
    fn cancel(&self) {
        self.inner.probe().cancel();
    }

    /// `(finished, total)` calls.
    fn progress(&self) -> (usize, usize) {
        self.inner.probe().progress()
    }

    /// The batch's metrics once every call has finished, else `None`.
    fn metrics(&self) -> Option<Metrics> {
        self.inner.probe().metrics().map(Metrics::from)
    }

    /// Whether the batch was cancelled because its error budget (`max_errors`) ran out.
    #[getter]
    fn budget_exceeded(&self) -> bool {
        self.inner.probe().budget_exceeded()
    }
}

/// A consensus round running on the runtime.
type Voting = tokio::task::JoinHandle<parallel_agents::Result<parallel_agents::ConsensusResult>>;

/// A running consensus round.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct ConsensusTask {
    task: Mutex<Option<Voting>>,
}

#[pymethods]
impl ConsensusTask {
    /// Waits at most `timeout` seconds for the verdict (`None`: as long as it takes);
    /// `None` if the timeout came first. The GIL is released while waiting.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Consensus>> {
        let deadline = wait_for(py, timeout)?;
        let got = py.detach(|| {
            let mut slot = self.task.lock().unwrap_or_else(|e| e.into_inner());
            let Some(task) = slot.as_mut() else {
                return Err(parallel_agents::Error::InvalidArgument(
                    "the consensus round was already collected or cancelled".into(),
                ));
            };
            let got = parallel_agents::runtime::wait("consensus", task, deadline)?;
            if got.is_some() {
                *slot = None;
            }
            Ok(got)
        });
        match got.map_err(|e| to_py_err(py, e))? {
            None => Ok(None),
            Some(Ok(Ok(c))) => Consensus::new(py, c).map(Some),
            Some(Ok(Err(e))) => Err(to_py_err(py, e)),
            Some(Err(_)) => Err(to_py_err(py, parallel_agents::Error::Shutdown)),
        }
    }

    /// Cancels the round: its calls still running are dropped.
    fn cancel(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }
}

/// A batch gathered on the runtime: every result in question order, and the metrics.
type Gathering = tokio::task::JoinHandle<(Vec<AgentResult>, ExecutionMetrics)>;

/// A running batch whose results come back all at once, in question order.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct RunTask {
    task: Mutex<Option<Gathering>>,
    probe: BatchProbe,
}

#[pymethods]
impl RunTask {
    /// Waits at most `timeout` seconds (`None`: as long as it takes) for every call;
    /// returns every result in question order with the batch's metrics, or `None` if the
    /// timeout came first. The GIL is released while waiting.
    #[pyo3(signature = (timeout = None))]
    fn wait(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Option<(Vec<Result>, Metrics)>> {
        let deadline = wait_for(py, timeout)?;
        let got = py.detach(|| {
            let mut slot = self.task.lock().unwrap_or_else(|e| e.into_inner());
            let Some(task) = slot.as_mut() else {
                return Err(parallel_agents::Error::InvalidArgument(
                    "the batch's results were already collected".into(),
                ));
            };
            let got = parallel_agents::runtime::wait("run", task, deadline)?;
            if got.is_some() {
                *slot = None;
            }
            Ok(got)
        });
        match got.map_err(|e| to_py_err(py, e))? {
            None => Ok(None),
            Some(Ok((rs, m))) => Ok(Some((rs.into_iter().map(Result::from).collect(), m.into()))),
            // The runtime was shut down under the batch.
            Some(Err(_)) => Err(to_py_err(py, parallel_agents::Error::Shutdown)),
        }
    }

    /// Cancels the calls still running or not yet started; they come back `cancelled`.
    fn cancel(&self) {
        self.probe.cancel();
    }

    /// `(finished, total)` calls.
    fn progress(&self) -> (usize, usize) {
        self.probe.progress()
    }
}
