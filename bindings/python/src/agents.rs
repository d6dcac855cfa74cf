//! Agents Python can hand to an executor: the core's mock and HTTP agents, and
//! [`CallableAgent`], which runs Python code.
//!
//! # Python calls and the GIL
//!
//! No runtime worker ever waits for the GIL.
//!
//! - A **sync** callable runs on the runtime's blocking threads, at most as many at once as
//!   the largest `max_concurrency` of the executors using it (up to 512), or `max_threads`.
//! - An **async** callable runs as a task on one asyncio event loop owned by the Python
//!   package (a daemon thread). Calls reach it through one submitter thread here, which
//!   takes the GIL once for every call queued meanwhile, so a thousand calls starting
//!   together cost a few GIL acquisitions, not a thousand contending threads. A call that
//!   times out or is cancelled has its asyncio task cancelled.
//!
//! The Python side (`parallel_agents._callable`) turns whatever the callable returns, or
//! raises, into `(ok, text, retryable)`, so this file never inspects Python values.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::{oneshot, Semaphore};

use parallel_agents::agent::openai::OpenAiOptions;
use parallel_agents::agent::OpenAiAgent;
use parallel_agents::{Agent, AgentError, Answer, BoxFuture, MockAnswers, MockOptions};

use crate::executor::seconds;
use crate::{to_py_err, value_error};

/// The agent behind any of the Python agent classes.
pub(crate) fn native_agent(agent: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Agent>> {
    if let Ok(a) = agent.cast::<MockAgent>() {
        return Ok(Arc::clone(&a.get().inner) as Arc<dyn Agent>);
    }
    if let Ok(a) = agent.cast::<OpenAIAgent>() {
        return Ok(Arc::clone(&a.get().inner) as Arc<dyn Agent>);
    }
    if let Ok(a) = agent.cast::<CallableAgent>() {
        return Ok(Arc::clone(&a.get().inner) as Arc<dyn Agent>);
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "agent: expected a MockAgent, OpenAIAgent or CallableAgent, got {}",
        agent.get_type().name()?
    )))
}

fn rate(py: Python<'_>, name: &str, r: f64) -> PyResult<f64> {
    if !(0.0..=1.0).contains(&r) {
        return Err(value_error(py, name, format!("{r} is not in [0, 1]")));
    }
    Ok(r)
}

/// A simulated agent: answers after `latency` (± `jitter`) seconds, with injected failures
/// or hangs at the given rates. Answers are `Agent {i} answer for '{question}'`, or, with
/// `votes`, one of the given answers drawn by weight. Draws are seeded by `seed`, the
/// question and the slot, so a run repeats exactly.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct MockAgent {
    inner: Arc<parallel_agents::MockAgent>,
}

#[pymethods]
impl MockAgent {
    #[new]
    #[pyo3(signature = (*, latency = 0.1, jitter = 0.0, failure_rate = 0.0, hang_rate = 0.0, seed = 42, votes = None))]
    fn new(
        py: Python<'_>,
        latency: f64,
        jitter: f64,
        failure_rate: f64,
        hang_rate: f64,
        seed: i64,
        votes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let answers = match votes {
            None => MockAnswers::Template,
            Some(d) => {
                let mut v = Vec::with_capacity(d.len());
                for (k, w) in d.iter() {
                    let k: String = k
                        .extract()
                        .map_err(|_| value_error(py, "votes", "keys must be str"))?;
                    let w: f64 = w
                        .extract()
                        .map_err(|_| value_error(py, "votes", "weights must be numbers"))?;
                    v.push((k, w));
                }
                MockAnswers::Vote(v)
            }
        };
        let opts = MockOptions {
            latency: seconds(py, "latency", latency)?,
            jitter: seconds(py, "jitter", jitter)?,
            failure_rate: rate(py, "failure_rate", failure_rate)?,
            hang_rate: rate(py, "hang_rate", hang_rate)?,
            panic_rate: 0.0,
            seed: u64::try_from(seed)
                .map_err(|_| value_error(py, "seed", format!("{seed} is negative")))?,
            answers,
        };
        let agent = parallel_agents::MockAgent::new(opts).map_err(|e| to_py_err(py, e))?;
        Ok(Self {
            inner: Arc::new(agent),
        })
    }

    fn __repr__(&self) -> String {
        let o = self.inner.options();
        format!(
            "MockAgent(latency={}, jitter={}, failure_rate={}, hang_rate={}, seed={})",
            o.latency.as_secs_f64(),
            o.jitter.as_secs_f64(),
            o.failure_rate,
            o.hang_rate,
            o.seed
        )
    }
}

/// An OpenAI-compatible chat-completions client, in Rust: no Python runs per request.
/// Each call POSTs `{base_url}/chat/completions` with `model`, the optional
/// `system_prompt`, `user_template` with `{question}` replaced, and only the fields set
/// here: `temperature`, `max_tokens`, `max_completion_tokens`, and `extra_body` (a dict
/// merged into the request: `seed`, `top_p`, `stop`, `response_format`, ...). The API
/// key is read once, now, from the environment variable `api_key_env` (unset or empty:
/// no key, for local servers); it and the `headers` values never appear in a result or
/// error. 429, 5xx and connection errors are retryable (the executor's `retries`),
/// honouring `Retry-After` up to the backoff cap. Idle connections are kept
/// `idle_timeout` seconds (default 4).
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct OpenAIAgent {
    inner: Arc<OpenAiAgent>,
}

#[pymethods]
impl OpenAIAgent {
    #[new]
    #[pyo3(signature = (*, base_url = "https://api.openai.com/v1".to_owned(), model = "gpt-4o-mini".to_owned(), api_key_env = "OPENAI_API_KEY".to_owned(), system_prompt = None, user_template = "{question}".to_owned(), temperature = None, max_tokens = None, max_completion_tokens = None, extra_body = None, headers = None, request_timeout = 60.0, idle_timeout = 4.0, tokens_per_minute = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        base_url: String,
        model: String,
        api_key_env: String,
        system_prompt: Option<String>,
        user_template: String,
        temperature: Option<f64>,
        max_tokens: Option<i64>,
        max_completion_tokens: Option<i64>,
        extra_body: Option<Bound<'_, pyo3::types::PyDict>>,
        headers: Option<Vec<(String, String)>>,
        request_timeout: f64,
        idle_timeout: f64,
        tokens_per_minute: Option<i64>,
    ) -> PyResult<Self> {
        let limit = |name: &str, n: Option<i64>| {
            n.map(|n| {
                u32::try_from(n).map_err(|_| value_error(py, name, format!("{n} is out of range")))
            })
            .transpose()
        };
        let max_tokens = limit("max_tokens", max_tokens)?;
        let max_completion_tokens = limit("max_completion_tokens", max_completion_tokens)?;
        let extra_body = extra_body
            .map(|d| -> PyResult<_> {
                let json = py.import("json")?.call_method1("dumps", (d,))?;
                parallel_agents::agent::openai::parse_extra_body(&json.extract::<String>()?)
                    .map_err(|e| to_py_err(py, e))
            })
            .transpose()?;
        let tokens_per_minute = tokens_per_minute
            .map(|t| {
                u64::try_from(t)
                    .map_err(|_| value_error(py, "tokens_per_minute", format!("{t} is negative")))
            })
            .transpose()?;
        let opts = OpenAiOptions {
            base_url,
            model,
            api_key_env,
            system_prompt,
            user_template,
            temperature,
            max_tokens,
            max_completion_tokens,
            extra_body,
            headers: headers.unwrap_or_default(),
            request_timeout: seconds(py, "request_timeout", request_timeout)?,
            pool_idle_timeout: seconds(py, "idle_timeout", idle_timeout)?,
            tokens_per_minute,
        };
        let agent = OpenAiAgent::new(opts).map_err(|e| to_py_err(py, e))?;
        Ok(Self {
            inner: Arc::new(agent),
        })
    }

    /// The URL each call POSTs to.
    #[getter]
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    /// The model asked.
    #[getter]
    fn model(&self) -> &str {
        &self.inner.options().model
    }

    fn __repr__(&self) -> String {
        format!(
            "OpenAIAgent(endpoint={:?}, model={:?})",
            self.inner.endpoint(),
            self.inner.options().model
        )
    }
}

/// Python code as an agent. Made by `parallel_agents` from a callable or DSPy module;
/// exactly one of `call` (sync: `call(question, agent_id) -> (ok, text, retryable)`) or
/// `submit` + `cancel` (async: `submit(call_id, question, agent_id, done)` starts a task
/// that ends with `done(ok, text, retryable)`; `cancel(call_id)` cancels it).
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct CallableAgent {
    inner: Arc<PyAgent>,
}

#[pymethods]
impl CallableAgent {
    #[new]
    #[pyo3(signature = (*, call = None, submit = None, cancel = None, max_threads = None))]
    fn new(
        py: Python<'_>,
        call: Option<Py<PyAny>>,
        submit: Option<Py<PyAny>>,
        cancel: Option<Py<PyAny>>,
        max_threads: Option<usize>,
    ) -> PyResult<Self> {
        let mode = match (call, submit, cancel) {
            (Some(c), None, None) => Mode::Sync(Arc::new(c)),
            (None, Some(s), Some(c)) => Mode::Async {
                submit: Arc::new(s),
                cancel: Arc::new(c),
            },
            _ => {
                return Err(value_error(
                    py,
                    "call",
                    "give either call, or submit and cancel",
                ))
            }
        };
        if let Some(n) = max_threads {
            if !(1..=MAX_FITTED_THREADS).contains(&n) {
                return Err(value_error(
                    py,
                    "max_threads",
                    format!("{n} is not in [1, {MAX_FITTED_THREADS}]"),
                ));
            }
        }
        let limit = max_threads.unwrap_or(1);
        Ok(Self {
            inner: Arc::new(PyAgent {
                mode,
                threads: Arc::new(Semaphore::new(limit)),
                granted: Mutex::new(limit),
                fitted: max_threads.is_none(),
            }),
        })
    }

    /// Whether calls run as asyncio tasks (rather than on threads).
    #[getter]
    fn is_async(&self) -> bool {
        matches!(self.inner.mode, Mode::Async { .. })
    }

    /// How many sync calls may run at once (1 before any executor used it).
    #[getter]
    fn thread_limit(&self) -> usize {
        *lock(&self.inner.granted)
    }
}

/// Most threads a sync callable takes: Tokio's blocking pool (512) could not run more.
const MAX_FITTED_THREADS: usize = 512;

type AnswerResult = std::result::Result<String, AgentError>;

enum Mode {
    Sync(Arc<Py<PyAny>>),
    Async {
        submit: Arc<Py<PyAny>>,
        cancel: Arc<Py<PyAny>>,
    },
}

/// The [`Agent`] behind [`CallableAgent`].
pub(crate) struct PyAgent {
    mode: Mode,
    threads: Arc<Semaphore>,
    /// Permits `threads` has been given in all.
    granted: Mutex<usize>,
    /// The thread limit follows the executors' concurrency (no explicit `max_threads`).
    fitted: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `(ok, text, retryable)` from the Python side as an answer.
fn to_answer(ok: bool, text: String, retryable: bool) -> AnswerResult {
    if ok {
        Ok(text)
    } else if retryable {
        Err(AgentError::retryable(text))
    } else {
        Err(AgentError::fatal(text))
    }
}

/// A Python exception raised by our own glue (not by the user's code) as a failure.
fn glue_error(py: Python<'_>, e: &PyErr) -> AgentError {
    AgentError::fatal(format!("parallel_agents: {}", e.value(py)))
}

struct MarkOnDrop(Arc<AtomicBool>);

impl Drop for MarkOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

impl PyAgent {
    async fn answer_sync(
        &self,
        call: &Arc<Py<PyAny>>,
        question: &str,
        agent_id: usize,
    ) -> AnswerResult {
        let permit = Arc::clone(&self.threads)
            .acquire_owned()
            .await
            .map_err(|_| AgentError::fatal("the agent's thread limit was closed"))?;
        // Set if this call is dropped (timeout, cancel) before a thread picks it up.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _mark = MarkOnDrop(Arc::clone(&abandoned));
        let call = Arc::clone(call);
        let question = question.to_owned();
        let job = move || {
            // The slot is held until the Python code returns, even after a timeout.
            let _permit = permit;
            if abandoned.load(Ordering::Acquire) {
                return Err(AgentError::fatal("the call was abandoned"));
            }
            Python::attach(|py| {
                call.call1(py, (question, agent_id))
                    .and_then(|v| v.extract::<(bool, String, bool)>(py))
                    .map_err(|e| glue_error(py, &e))
                    .and_then(|(ok, text, retryable)| to_answer(ok, text, retryable))
            })
        };
        match tokio::task::spawn_blocking(job).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => Err(AgentError::fatal("the Python call panicked")),
            Err(_) => Err(AgentError::fatal("the Python call was cancelled")),
        }
    }

    async fn answer_async(
        &self,
        submit: &Arc<Py<PyAny>>,
        cancel: &Arc<Py<PyAny>>,
        question: &str,
        agent_id: usize,
    ) -> AnswerResult {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let submitter = submitter();
        submitter
            .send(Msg::Start {
                submit: Arc::clone(submit),
                id,
                question: question.to_owned(),
                agent_id,
                tx,
            })
            .map_err(|_| AgentError::fatal("the Python submitter thread has stopped"))?;
        // Dropped unfinished (timeout, cancel): cancel the asyncio task.
        struct CancelOnDrop<'a> {
            armed: bool,
            id: u64,
            cancel: &'a Arc<Py<PyAny>>,
            submitter: &'a mpsc::Sender<Msg>,
        }
        impl Drop for CancelOnDrop<'_> {
            fn drop(&mut self) {
                if self.armed {
                    let _ = self.submitter.send(Msg::Cancel {
                        cancel: Arc::clone(self.cancel),
                        id: self.id,
                    });
                }
            }
        }
        let mut guard = CancelOnDrop {
            armed: true,
            id,
            cancel,
            submitter,
        };
        let r = rx.await;
        guard.armed = false;
        r.unwrap_or_else(|_| Err(AgentError::fatal("the Python task ended without an answer")))
    }
}

impl Agent for PyAgent {
    fn answer<'a>(&'a self, question: &'a str, agent_id: usize) -> BoxFuture<'a, AnswerResult> {
        Box::pin(async move {
            match &self.mode {
                Mode::Sync(call) => self.answer_sync(call, question, agent_id).await,
                Mode::Async { submit, cancel } => {
                    self.answer_async(submit, cancel, question, agent_id).await
                }
            }
        })
    }

    fn answer_with_usage<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, std::result::Result<Answer, AgentError>> {
        Box::pin(async move {
            self.answer(question, agent_id)
                .await
                .map(|text| Answer { text, usage: None })
        })
    }

    fn kind(&self) -> &'static str {
        "python"
    }

    /// Grows the sync thread limit to `max_concurrency` (up to 512) unless `max_threads`
    /// fixed it; never shrinks, since another executor may still run that many.
    fn fit_concurrency(&self, max_concurrency: usize) {
        if !self.fitted {
            return;
        }
        let want = max_concurrency.min(MAX_FITTED_THREADS);
        let mut granted = lock(&self.granted);
        if want > *granted {
            self.threads.add_permits(want - *granted);
            *granted = want;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The submitter thread: hands async calls to the Python event loop.

enum Msg {
    Start {
        submit: Arc<Py<PyAny>>,
        id: u64,
        question: String,
        agent_id: usize,
        tx: oneshot::Sender<AnswerResult>,
    },
    Cancel {
        cancel: Arc<Py<PyAny>>,
        id: u64,
    },
}

/// Completes one async call; the Python side calls it once, on the event loop thread.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct Done {
    tx: Mutex<Option<oneshot::Sender<AnswerResult>>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, ok: bool, text: String, retryable: bool) {
        if let Some(tx) = lock(&self.tx).take() {
            // The call may have been dropped meanwhile (timeout, cancel): nobody waits.
            let _ = tx.send(to_answer(ok, text, retryable));
        }
    }
}

fn submitter() -> &'static mpsc::Sender<Msg> {
    static SUBMITTER: OnceLock<mpsc::Sender<Msg>> = OnceLock::new();
    SUBMITTER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("pagent-py-submit".into())
            .spawn(move || {
                // Waits without the GIL; then takes it once for everything queued.
                while let Ok(first) = rx.recv() {
                    Python::attach(|py| {
                        handle(py, first);
                        while let Ok(m) = rx.try_recv() {
                            handle(py, m);
                        }
                    });
                }
            })
            .expect("spawn the Python submitter thread");
        tx
    })
}

fn handle(py: Python<'_>, msg: Msg) {
    match msg {
        Msg::Start {
            submit,
            id,
            question,
            agent_id,
            tx,
        } => {
            let done = match Py::new(
                py,
                Done {
                    tx: Mutex::new(Some(tx)),
                },
            ) {
                Ok(d) => d,
                Err(_) => return, // out of memory in Python: the call fails as dropped
            };
            if let Err(e) = submit.call1(py, (id, question, agent_id, done.clone_ref(py))) {
                let err = glue_error(py, &e);
                if let Some(tx) = lock(&done.get().tx).take() {
                    let _ = tx.send(Err(err));
                }
            }
        }
        Msg::Cancel { cancel, id } => {
            // Best effort: the task may have finished already.
            let _ = cancel.call1(py, (id,));
        }
    }
}

/// `agent` with a tokens-per-minute budget: a fresh HTTP agent with the same options
/// (the budget belongs to the HTTP agent); any other agent is refused.
pub(crate) fn with_tokens_per_minute(
    py: Python<'_>,
    agent: &Bound<'_, PyAny>,
    tpm: u64,
) -> PyResult<Arc<dyn Agent>> {
    let Ok(a) = agent.cast::<OpenAIAgent>() else {
        return Err(value_error(
            py,
            "tokens_per_minute",
            "applies to an OpenAIAgent only",
        ));
    };
    let opts = OpenAiOptions {
        tokens_per_minute: Some(tpm),
        ..a.get().inner.options().clone()
    };
    let agent = OpenAiAgent::new(opts).map_err(|e| to_py_err(py, e))?;
    Ok(Arc::new(agent))
}
