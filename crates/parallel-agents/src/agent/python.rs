//! Python callables — DSPy programs above all — as in-process agents (feature `python`).
//!
//! A [`PythonAgent`] is made from a target string, `"package.module:callable"` or
//! `"path/to/file.py:callable"` (the callable part may be dotted, `"mod:obj.method"`):
//!
//! - a plain callable is called as `callable(question, agent_id)`;
//! - with [`PythonOptions::factory`], the target is called once, with no arguments, when
//!   the agent is made, and what it returns (a DSPy `Module`, say) is called per question
//!   as `module(question=...)` (the keyword is [`PythonOptions::input_field`]). A DSPy
//!   `Module` instance or subclass as target is treated the same way without the option.
//!
//! The result may be a `str`, a number, a mapping or an object with an answer field (a DSPy
//! `Prediction`: its `.answer`; see [`PythonOptions::answer_field`]). A Python exception
//! becomes a failed call whose error reads `Type: message (at file.py:line in function)`.
//!
//! # Threads and the GIL
//!
//! The GIL is held only while Python runs; no Rust task ever waits while holding it.
//!
//! - **Sync callables** run on the runtime's blocking threads, per agent at most as many
//!   at once as the largest `max_concurrency` of the executors using it (each executor
//!   says so at creation, through [`Agent::fit_concurrency`]; 1 before any, and never more
//!   than 512, the blocking pool's size), or exactly [`PythonOptions::max_threads`] if
//!   set. Calls blocked in Python with the GIL released (I/O, `time.sleep`) thus all run
//!   at once, and the threads stay bounded by the executors' concurrency (a fixed 64 held
//!   100 calls in flight to 0.6 of ideal). A call that times out is reported at once by
//!   the executor; its Python code runs on until it returns (a thread cannot be
//!   interrupted safely) and keeps its thread slot until then, so a hung function can
//!   never grow the thread count.
//! - **`async def` callables** (and DSPy's `acall`, used for DSPy modules unless
//!   [`PythonOptions::prefer_async`] is off) run as tasks on **one** asyncio event loop,
//!   on a thread started once, lazily. Thousands of calls can be in flight on it without a
//!   thread each. Runtime workers hand calls to that thread through a queue and a wake-up
//!   pipe, without touching the GIL; each task reports its end to Rust, which completes
//!   the call. When a call times out or is cancelled, its asyncio task is cancelled
//!   (`task.cancel()`), so the coroutine sees `CancelledError`.
//!   A sync callable that returns an awaitable has the awaitable finished on that loop.
//!
//! # The interpreter
//!
//! It is initialised once, on first use ([`initialize`]); if the host process already runs
//! one, that one is used (the host must not hold the GIL on the thread it calls us from
//! while we wait, or Python work on our threads cannot proceed). At start-up the
//! directories in `PAGENT_PYTHONPATH` (path-separated) go to the front of `sys.path`, and
//! the site-packages of the virtualenv named by `VIRTUAL_ENV` go ahead of the
//! interpreter's own (with their `.pth` files processed). Set both before first use.
//!
//! Starting the interpreter and loading agents leave the host's signal dispositions as
//! they were: Python's `signal` module (which `asyncio` imports) would otherwise take
//! SIGINT, and Ctrl-C would no longer stop a C host. SIGINT, SIGPIPE and SIGXFSZ are
//! recorded first and put back if Python changed them.
//!
//! ```no_run
//! use std::sync::Arc;
//! use parallel_agents::agent::python::{PythonAgent, PythonOptions};
//! use parallel_agents::{ParallelAgentExecutor, ParallelConfig};
//!
//! // qa.py: `def make(): return dspy.ChainOfThought("question -> answer")`
//! let agent = PythonAgent::from_target(
//!     "qa.py:make",
//!     PythonOptions { factory: true, ..Default::default() },
//! )?;
//! let exec = ParallelAgentExecutor::new(ParallelConfig::default(), Arc::new(agent))?;
//! let results = parallel_agents::runtime::block_on(
//!     "example",
//!     exec.execute_parallel(vec!["What is the capital of France?".into()]),
//! )??;
//! println!("{:?}", results[0].answer);
//! # Ok::<(), parallel_agents::Error>(())
//! ```

use std::collections::HashMap;
use std::ffi::CString;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use once_cell::sync::OnceCell;
use pyo3::exceptions::{PyConnectionError, PyTimeoutError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyFloat, PyInt, PyString, PyTraceback, PyTuple, PyType};
use tokio::sync::{oneshot, Semaphore};

use super::{Agent, AgentError, BoxFuture};
use crate::error::{Error, Result};
use crate::sync::lock;

/// Largest accepted [`PythonOptions::max_threads`]. The runtime's blocking pool (512
/// threads, shared with callback agents) is the ceiling in practice.
pub const MAX_PYTHON_THREADS: usize = 100_000;

/// Most threads a sync agent without [`PythonOptions::max_threads`] takes from its
/// executors' `max_concurrency`: Tokio's blocking pool, which runs them (512 threads by
/// default, shared with callback agents), could not run more at once. Not `pub`, which
/// would put it in the C header, where `max_threads` cannot be set.
const MAX_FITTED_THREADS: usize = 512;

/// The Python half of this module: target loading and `sys.path` set-up.
const SUPPORT_SOURCE: &str = include_str!("python_support.py");

type Answer = std::result::Result<String, AgentError>;

/// How a [`PythonAgent`] finds and calls its Python code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PythonOptions {
    /// The field or key holding the answer when a call returns something other than a
    /// `str` (a DSPy `Prediction`, a dataclass, a dict). Default `"answer"`.
    pub answer_field: String,
    /// Treat the target as a factory: call it once, with no arguments, when the agent is
    /// made, and call what it returns per question as `product(**{input_field: question})`.
    /// Default `false`.
    pub factory: bool,
    /// The keyword a factory's product (or a DSPy module) receives the question under.
    /// Default `"question"`.
    pub input_field: String,
    /// At most this many calls of a *sync* callable run at once, each on its own blocking
    /// thread; more wait (without a thread) for a slot. Default `None`: as many as the
    /// largest `max_concurrency` of the executors using the agent, up to 512. `Some(n)`
    /// fixes the limit at `n` (1 to [`MAX_PYTHON_THREADS`]), e.g. to hold Python code that
    /// copes badly with many threads to fewer than the executors run.
    pub max_threads: Option<usize>,
    /// Call a DSPy module (or any factory product) through its `async def acall`, on the
    /// shared event loop, instead of through `__call__` on a thread, when it has both
    /// `acall` and `aforward` (DSPy's `Predict`, `ChainOfThought`, ...; a user `Module`
    /// that defines only `forward` runs on threads). Default `true`.
    pub prefer_async: bool,
}

impl Default for PythonOptions {
    fn default() -> Self {
        Self {
            answer_field: "answer".into(),
            factory: false,
            input_field: "question".into(),
            max_threads: None,
            prefer_async: true,
        }
    }
}

impl PythonOptions {
    /// Checks the options; the message names the bad field.
    pub fn validate(&self) -> Result<()> {
        if let Some(n) = self.max_threads {
            if !(1..=MAX_PYTHON_THREADS).contains(&n) {
                return Err(Error::InvalidArgument(format!(
                    "max_threads {n} is not in [1, {MAX_PYTHON_THREADS}]"
                )));
            }
        }
        for (name, value) in [
            ("answer_field", &self.answer_field),
            ("input_field", &self.input_field),
        ] {
            if value.is_empty() || value.contains('\0') {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be a non-empty name without NUL bytes"
                )));
            }
        }
        Ok(())
    }
}

/// An agent backed by a Python callable or DSPy program, run in-process (see the
/// [module docs](self) for targets, call conventions and threading).
pub struct PythonAgent {
    target: String,
    /// What each call invokes: the callable, a factory's product, or its bound `acall`.
    callable: Arc<Py<PyAny>>,
    /// `Some(input_field)`: call as `callable(**{input_field: question})`.
    keyword: Option<Arc<str>>,
    is_async: bool,
    answer_field: Arc<str>,
    threads: Arc<Semaphore>,
    /// Permits `threads` has been given in all: the thread limit.
    granted: Mutex<usize>,
    /// The limit follows [`Agent::fit_concurrency`] (no explicit `max_threads`).
    fitted: bool,
}

impl fmt::Debug for PythonAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PythonAgent")
            .field("target", &self.target)
            .field("is_async", &self.is_async)
            .field("keyword", &self.keyword)
            .field("answer_field", &self.answer_field)
            .field("thread_limit", &self.thread_limit())
            .field("fitted", &self.fitted)
            .finish_non_exhaustive()
    }
}

impl PythonAgent {
    /// Loads `target` (`"package.module:callable"` or `"path/to/file.py:callable"`),
    /// initialising the interpreter if needed. A file's directory is put on `sys.path` so
    /// it can import its neighbours, and loading the same file again reuses its module.
    ///
    /// Fails with [`Error::Python`] if the target is malformed, cannot be imported, lacks
    /// the attribute, is not callable, or its factory raises; the message says which and
    /// carries the Python exception. Fails with [`Error::InvalidArgument`] on bad options.
    pub fn from_target(target: &str, options: PythonOptions) -> Result<Self> {
        options.validate()?;
        let interp = interpreter()?;
        // The module's top-level code (or a factory) may touch signal handlers too.
        let _signals = host_signals::Keep::now();
        let loaded = Python::attach(|py| {
            let load = || -> PyResult<(Py<PyAny>, bool, bool)> {
                let (callable, keyword, is_async): (Bound<'_, PyAny>, bool, bool) = interp
                    .support
                    .bind(py)
                    .call_method1("load", (target, options.factory, options.prefer_async))?
                    .extract()?;
                Ok((callable.unbind(), keyword, is_async))
            };
            load().map_err(|e| {
                let mut m = format!(
                    "cannot load Python agent {target:?}: {}",
                    describe(py, &e).message
                );
                if !interp.note.is_empty() {
                    m.push_str(&format!(" [note: {}]", interp.note));
                }
                Error::Python(m)
            })
        })?;
        let (callable, keyword, is_async) = loaded;
        if is_async {
            // Start the loop now so a broken asyncio shows up here, not on every call. The
            // loop thread needs the GIL to start: release it in case our caller holds it
            // (a pyo3 extension calling this API, say).
            Python::attach(|py| py.detach(event_loop))?;
        }
        // Fitted: 1 until an executor says how many calls it runs at once.
        let limit = options.max_threads.unwrap_or(1);
        Ok(Self {
            target: target.to_owned(),
            callable: Arc::new(callable),
            keyword: keyword.then(|| Arc::from(options.input_field.as_str())),
            is_async,
            answer_field: Arc::from(options.answer_field.as_str()),
            threads: Arc::new(Semaphore::new(limit)),
            granted: Mutex::new(limit),
            fitted: options.max_threads.is_none(),
        })
    }

    /// The target it was made from.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether calls run as tasks on the shared asyncio loop (`async def` or `acall`)
    /// rather than on blocking threads.
    pub fn is_async(&self) -> bool {
        self.is_async
    }

    /// Sync calls holding a thread slot right now, including timed-out calls whose Python
    /// code has not returned yet. Always 0 for an async agent.
    pub fn threads_in_use(&self) -> usize {
        let granted = lock(&self.granted);
        *granted - self.threads.available_permits()
    }

    /// How many sync calls may hold a thread at once: [`PythonOptions::max_threads`] if
    /// set, else the largest `max_concurrency` of the executors using the agent so far (1
    /// before any, 512 at most).
    pub fn thread_limit(&self) -> usize {
        *lock(&self.granted)
    }

    /// One call of a sync callable on a blocking thread.
    async fn answer_sync(&self, question: &str, agent_id: usize) -> Answer {
        let permit = Arc::clone(&self.threads)
            .acquire_owned()
            .await
            .map_err(|_| AgentError::fatal("the Python agent's thread limit was closed"))?;
        // Set when this future is dropped (timeout, cancel): a call still queued for a
        // thread then never starts.
        let abandoned = Arc::new(AtomicBool::new(false));
        let _mark = MarkOnDrop(Arc::clone(&abandoned));
        let callable = Arc::clone(&self.callable);
        let keyword = self.keyword.clone();
        let field = Arc::clone(&self.answer_field);
        let question = question.to_owned();
        let job = move || {
            // The slot is held until the Python code returns, even after a timeout.
            let _permit = permit;
            if abandoned.load(Ordering::Acquire) {
                return SyncOutcome::Abandoned;
            }
            Python::attach(|py| {
                match invoke(
                    py,
                    callable.bind(py),
                    &question,
                    agent_id,
                    keyword.as_deref(),
                ) {
                    Err(e) => SyncOutcome::Done(Err(describe(py, &e))),
                    Ok(obj) if is_awaitable(&obj) => SyncOutcome::Await(obj.unbind()),
                    Ok(obj) => SyncOutcome::Done(extract_answer(&obj, &field)),
                }
            })
        };
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => crate::runtime::handle().map_err(|e| AgentError::fatal(e.to_string()))?,
        };
        match handle.spawn_blocking(job).await {
            Ok(SyncOutcome::Done(r)) => r,
            Ok(SyncOutcome::Await(awaitable)) => {
                let el = event_loop().map_err(|e| AgentError::fatal(e.to_string()))?;
                run_on_loop(el, Work::Await(awaitable), Arc::clone(&self.answer_field)).await
            }
            Ok(SyncOutcome::Abandoned) => Err(AgentError::fatal("the Python call was abandoned")),
            Err(e) if e.is_panic() => Err(AgentError::fatal(format!(
                "the Python call panicked: {}",
                crate::error::panic_message(&e.into_panic())
            ))),
            Err(_) => Err(AgentError::fatal("the Python call was cancelled")),
        }
    }
}

impl Agent for PythonAgent {
    fn answer<'a>(&'a self, question: &'a str, agent_id: usize) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            if !self.is_async {
                return self.answer_sync(question, agent_id).await;
            }
            let el = event_loop().map_err(|e| AgentError::fatal(e.to_string()))?;
            let work = Work::Call {
                callable: Arc::clone(&self.callable),
                question: question.to_owned(),
                agent_id,
                keyword: self.keyword.clone(),
            };
            run_on_loop(el, work, Arc::clone(&self.answer_field)).await
        })
    }

    fn kind(&self) -> &'static str {
        "python"
    }

    fn fingerprint(&self) -> String {
        format!("python {}", self.target)
    }

    /// Grows the thread limit to `max_concurrency` (up to 512) unless
    /// [`PythonOptions::max_threads`] fixed it. It never shrinks: another executor may
    /// still run that many calls.
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

enum SyncOutcome {
    Done(Answer),
    /// The callable returned an awaitable; it is finished on the event loop.
    Await(Py<PyAny>),
    /// The call's future was dropped before a thread picked it up.
    Abandoned,
}

struct MarkOnDrop(Arc<AtomicBool>);

impl Drop for MarkOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------
// Calling Python and reading what it returns (GIL held throughout).

/// Calls `f(question, agent_id)`, or `f(**{keyword: question})`.
fn invoke<'py>(
    py: Python<'py>,
    f: &Bound<'py, PyAny>,
    question: &str,
    agent_id: usize,
    keyword: Option<&str>,
) -> PyResult<Bound<'py, PyAny>> {
    match keyword {
        None => f.call1((question, agent_id)),
        Some(k) => {
            let kwargs = PyDict::new(py);
            kwargs.set_item(k, question)?;
            f.call((), Some(&kwargs))
        }
    }
}

fn is_awaitable(obj: &Bound<'_, PyAny>) -> bool {
    !obj.is_instance_of::<PyString>()
        && obj.hasattr(intern!(obj.py(), "__await__")).unwrap_or(false)
}

/// The answer in a call's return value: a `str`; `value[field]` of a dict;
/// `value.<field>` of an object (a DSPy `Prediction`); or a number, as text.
fn extract_answer(obj: &Bound<'_, PyAny>, field: &str) -> Answer {
    let py = obj.py();
    let pyerr = |e: PyErr| describe(py, &e);
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_str().map(str::to_owned).map_err(pyerr);
    }
    let value = if let Ok(d) = obj.cast::<PyDict>() {
        d.get_item(field).map_err(pyerr)?
    } else if !obj.is_none() && obj.hasattr(field).map_err(pyerr)? {
        Some(obj.getattr(field).map_err(pyerr)?)
    } else {
        None
    };
    let text = |v: &Bound<'_, PyAny>| -> Answer {
        match v.cast::<PyString>() {
            Ok(s) => s.to_str().map(str::to_owned).map_err(pyerr),
            Err(_) => v
                .str()
                .and_then(|s| s.to_str().map(str::to_owned))
                .map_err(pyerr),
        }
    };
    match value {
        Some(v) if v.is_none() => Err(AgentError::fatal(format!(
            "the Python agent's result has {field} = None"
        ))),
        Some(v) => text(&v),
        None if obj.is_instance_of::<PyInt>() || obj.is_instance_of::<PyFloat>() => text(obj),
        None => Err(AgentError::fatal(format!(
            "the Python agent returned a {}; expected a str or an object with a {field:?} field",
            type_name(&obj.get_type())
        ))),
    }
}

/// Exception names (besides `ConnectionError` and `TimeoutError` subclasses) whose calls
/// are marked retryable: the usual transient LLM-client errors (litellm, openai).
const RETRYABLE_NAMES: &[&str] = &[
    "RateLimitError",
    "APIConnectionError",
    "APITimeoutError",
    "Timeout",
    "ServiceUnavailableError",
    "InternalServerError",
];

/// A Python exception as an agent error: `module.Type: message (at file.py:12 in func)`.
/// Connection and timeout errors, and common LLM-client transient errors, are retryable.
fn describe(py: Python<'_>, err: &PyErr) -> AgentError {
    let ty = err.get_type(py);
    let name = type_name(&ty);
    let msg = err
        .value(py)
        .str()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut message = if msg.is_empty() {
        name.clone()
    } else {
        format!("{name}: {msg}")
    };
    if let Some(at) = err.traceback(py).and_then(|tb| innermost_frame(&tb)) {
        message.push_str(&format!(" (at {at})"));
    }
    let short = ty.name().map(|n| n.to_string()).unwrap_or_default();
    let retryable = err.is_instance_of::<PyConnectionError>(py)
        || err.is_instance_of::<PyTimeoutError>(py)
        || RETRYABLE_NAMES.contains(&short.as_str());
    AgentError {
        retryable,
        ..AgentError::fatal(message)
    }
}

/// `Type` for builtins, `module.Type` otherwise.
fn type_name(ty: &Bound<'_, PyType>) -> String {
    let qual = ty
        .qualname()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "<unknown type>".into());
    match ty.module().map(|m| m.to_string()) {
        Ok(m) if m != "builtins" && m != "__main__" => format!("{m}.{qual}"),
        _ => qual,
    }
}

/// `file.py:line in function` of the frame that raised.
fn innermost_frame(tb: &Bound<'_, PyTraceback>) -> Option<String> {
    let mut cur = tb.clone().into_any();
    while let Ok(next) = cur.getattr("tb_next") {
        if next.is_none() {
            break;
        }
        cur = next;
    }
    let line: u32 = cur.getattr("tb_lineno").ok()?.extract().ok()?;
    let code = cur.getattr("tb_frame").ok()?.getattr("f_code").ok()?;
    let file: String = code.getattr("co_filename").ok()?.extract().ok()?;
    let func: String = code.getattr("co_name").ok()?.extract().ok()?;
    let file = std::path::Path::new(&file)
        .file_name()
        .map_or(file.clone(), |f| f.to_string_lossy().into_owned());
    Some(format!("{file}:{line} in {func}"))
}

// ---------------------------------------------------------------------------------------
// The interpreter.

struct Interpreter {
    /// The loaded `python_support.py`.
    support: Py<PyModule>,
    /// What `VIRTUAL_ENV` / `PAGENT_PYTHONPATH` set-up could not honour ("" if nothing).
    note: String,
}

static INTERPRETER: OnceCell<std::result::Result<Interpreter, String>> = OnceCell::new();

/// Initialises the Python interpreter (or adopts the host's) and sets up `sys.path` from
/// `PAGENT_PYTHONPATH` and `VIRTUAL_ENV`. Idempotent; [`PythonAgent::from_target`] calls
/// it. Call it from a thread that does not hold the GIL.
pub fn initialize() -> Result<()> {
    interpreter().map(|_| ())
}

fn interpreter() -> Result<&'static Interpreter> {
    INTERPRETER
        .get_or_init(start_interpreter)
        .as_ref()
        .map_err(|m| Error::Python(m.clone()))
}

fn start_interpreter() -> std::result::Result<Interpreter, String> {
    let _signals = host_signals::Keep::now();
    // SAFETY: a plain query; valid whether or not an interpreter exists.
    if unsafe { pyo3::ffi::Py_IsInitialized() } == 0 {
        promote_libpython();
    }
    // pyo3 initialises without Python's signal handlers (`Py_InitializeEx(0)`).
    Python::initialize();
    let code = CString::new(SUPPORT_SOURCE).map_err(|e| e.to_string())?;
    Python::attach(|py| {
        let setup = || -> PyResult<Interpreter> {
            // The `signal` module takes SIGINT on its first import (asyncio imports it):
            // import it here, where `_signals` puts the host's disposition back, so no
            // later import can.
            py.import("signal")?;
            let support = PyModule::from_code(
                py,
                &code,
                c"parallel_agents/python_support.py",
                c"_parallel_agents_support",
            )?;
            let venv = std::env::var("VIRTUAL_ENV").ok().filter(|v| !v.is_empty());
            let extra = std::env::var("PAGENT_PYTHONPATH").ok();
            let note: String = support
                .call_method1("add_paths", (venv, extra))?
                .extract()?;
            Ok(Interpreter {
                support: support.unbind(),
                note,
            })
        };
        setup().map_err(|e| {
            format!(
                "cannot set up the Python interpreter: {}",
                describe(py, &e).message
            )
        })
    })
}

/// When this library brings libpython in (rather than a Python host), and the host loaded
/// the library with `dlopen(RTLD_LOCAL)`, libpython's symbols are not global, and CPython's
/// own extension modules (`_asyncio`, `_json`, ...), which expect to find them there, fail
/// to import. Re-opening libpython with `RTLD_GLOBAL` fixes that; it is a no-op otherwise.
#[cfg(all(unix, not(target_os = "macos")))]
fn promote_libpython() {
    let probe: unsafe extern "C" fn() -> libc::c_int = pyo3::ffi::Py_IsInitialized;
    // SAFETY: dladdr only reads the loader's tables; `info` is plain data it fills in.
    // dlopen with RTLD_NOLOAD never loads anything new; the handle is kept for good.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(probe as *const libc::c_void, &mut info) != 0 && !info.dli_fname.is_null() {
            libc::dlopen(
                info.dli_fname,
                libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
            );
        }
    }
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn promote_libpython() {}

/// Keeps the host's signal dispositions across interpreter start-up and agent loading.
///
/// CPython's `signal` module, on its first import (`asyncio` imports it), installs its own
/// SIGINT handler when SIGINT is at its default; that handler only flags a
/// `KeyboardInterrupt` for Python's main thread, so a C host whose threads never run
/// Python would ignore Ctrl-C. An interpreter started with signal handlers (not ours:
/// pyo3 starts it without) also ignores SIGPIPE and SIGXFSZ. [`Keep`](host_signals::Keep)
/// records those dispositions and, when dropped, puts back any that changed. Python's own
/// record (`signal.getsignal`) may then name a handler that is not installed; Python code
/// that wants SIGINT must install its handler after loading (from Python's main thread).
#[cfg(unix)]
mod host_signals {
    /// The signals CPython may take over.
    const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGPIPE, libc::SIGXFSZ];

    fn query(sig: libc::c_int) -> Option<libc::sigaction> {
        // SAFETY: a query (no new action) into a zeroed struct.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(sig, std::ptr::null(), &mut old) == 0).then_some(old)
        }
    }

    /// The dispositions when it was made, restored on drop.
    pub(super) struct Keep(Vec<(libc::c_int, libc::sigaction)>);

    impl Keep {
        pub(super) fn now() -> Self {
            Self(
                SIGNALS
                    .iter()
                    .filter_map(|&sig| query(sig).map(|sa| (sig, sa)))
                    .collect(),
            )
        }
    }

    impl Drop for Keep {
        fn drop(&mut self) {
            for (sig, saved) in &self.0 {
                // Only what changed: a disposition the host sets meanwhile on another
                // thread is left alone unless Python changed the same one.
                let changed = query(*sig).is_some_and(|now| {
                    now.sa_sigaction != saved.sa_sigaction || now.sa_flags != saved.sa_flags
                });
                if changed {
                    // SAFETY: re-installs an action sigaction itself reported.
                    unsafe { libc::sigaction(*sig, saved, std::ptr::null_mut()) };
                }
            }
        }
    }
}

#[cfg(not(unix))]
mod host_signals {
    /// Nothing to keep without POSIX signal dispositions.
    pub(super) struct Keep;

    impl Keep {
        pub(super) fn now() -> Self {
            Self
        }
    }
}

// ---------------------------------------------------------------------------------------
// The asyncio event loop thread.
//
// Runtime workers never take the GIL for an async call: `EventLoop::start` pushes a
// message onto a queue and, if no wake-up is pending, writes a byte to a pipe the loop
// watches (`loop.add_reader`). On the loop thread, `LoopState::drain` turns messages into
// asyncio tasks (`python_support.make_starter`), each of which reports its end through
// `LoopState::complete`; that completes the call's oneshot. Dropping the call's future (timeout, cancel) sends a
// `Cancel` message, and the loop cancels the task.

/// What an async call runs.
enum Work {
    /// `callable(question, agent_id)` or `callable(**{keyword: question})`; must return an
    /// awaitable (a plain value is taken as the answer).
    Call {
        callable: Arc<Py<PyAny>>,
        question: String,
        agent_id: usize,
        keyword: Option<Arc<str>>,
    },
    /// An awaitable a sync callable returned.
    Await(Py<PyAny>),
}

enum Msg {
    Start {
        id: u64,
        work: Work,
        answer_field: Arc<str>,
        tx: oneshot::Sender<Answer>,
    },
    Cancel(u64),
}

/// The shared half of the loop thread: what runtime workers touch.
struct EventLoop {
    queue: Mutex<Vec<Msg>>,
    /// A wake-up byte is in the pipe (or about to be) and the loop has not drained yet.
    wake_pending: AtomicBool,
    /// False once the loop thread has ended (user code closed the loop).
    alive: AtomicBool,
    next_id: AtomicU64,
    waker: wake::Waker,
}

impl EventLoop {
    fn send(&self, msg: Msg) {
        lock(&self.queue).push(msg);
        // Invariant: while the flag is set, a wake-up byte is in the pipe (or about to be
        // written), or the loop has yet to clear the flag and take the queue.
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Queues `work`; the receiver gets its answer.
    fn start(&self, work: Work, answer_field: Arc<str>) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if self.alive.load(Ordering::Acquire) {
            self.send(Msg::Start {
                id,
                work,
                answer_field,
                tx,
            });
        } // else: `tx` drops here and the receiver reports the loop gone.
        (id, rx)
    }

    /// Takes every queued message (loop thread).
    fn take(&self) -> Vec<Msg> {
        // Empty the pipe first, then clear the flag, then take the queue: a message pushed
        // before the flag is cleared is in this take; one pushed after it sets the flag
        // again and writes a fresh byte. (Clearing first would let a sender see the flag
        // still set by a byte this drain already swallowed, and its message would wait.)
        self.waker.drain();
        self.wake_pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *lock(&self.queue))
    }
}

/// Cancels the call's task when its future is dropped before the answer came.
struct CancelOnDrop {
    el: &'static EventLoop,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed && self.el.alive.load(Ordering::Acquire) {
            self.el.send(Msg::Cancel(self.id));
        }
    }
}

async fn run_on_loop(el: &'static EventLoop, work: Work, answer_field: Arc<str>) -> Answer {
    let (id, rx) = el.start(work, answer_field);
    let mut guard = CancelOnDrop {
        el,
        id,
        armed: true,
    };
    let answer = rx.await;
    guard.armed = false;
    answer.unwrap_or_else(|_| {
        Err(AgentError::fatal(
            "the Python event loop is gone (did Python code stop or close it?)",
        ))
    })
}

static EVENT_LOOP: OnceCell<std::result::Result<&'static EventLoop, String>> = OnceCell::new();

/// The loop, started on first use. Must not be called while attached to Python.
fn event_loop() -> Result<&'static EventLoop> {
    EVENT_LOOP
        .get_or_init(start_event_loop)
        .clone()
        .map_err(Error::Python)
}

fn start_event_loop() -> std::result::Result<&'static EventLoop, String> {
    interpreter().map_err(|e| e.to_string())?;
    // Until the loop runs (its thread imports asyncio and makes the loop).
    let _signals = host_signals::Keep::now();
    let el: &'static EventLoop = Box::leak(Box::new(EventLoop {
        queue: Mutex::new(Vec::new()),
        wake_pending: AtomicBool::new(false),
        alive: AtomicBool::new(true),
        next_id: AtomicU64::new(1),
        waker: wake::Waker::new()
            .map_err(|e| format!("cannot create the event loop's wake-up pipe: {e}"))?,
    }));
    // Inside the runtime's context, a blocking library call made by Python code on the
    // loop thread is refused (Error::Reentrant) instead of deadlocking the loop.
    let runtime = crate::runtime::handle().ok();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("pagent-asyncio".into())
        .spawn(move || {
            let _context = runtime.as_ref().map(|h| h.enter());
            loop_thread(el, ready_tx);
        })
        .map_err(|e| format!("cannot start the asyncio thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(el),
        Ok(Err(m)) => Err(m),
        Err(_) => Err("the asyncio thread ended while starting".into()),
    }
}

fn loop_thread(el: &'static EventLoop, ready: mpsc::Sender<std::result::Result<(), String>>) {
    Python::attach(|py| {
        let ev = match setup_loop(py, el) {
            Ok(ev) => {
                let _ = ready.send(Ok(()));
                ev
            }
            Err(e) => {
                let m = describe(py, &e).message;
                let _ = ready.send(Err(format!("cannot start the asyncio event loop: {m}")));
                return;
            }
        };
        // `run_forever` returns if Python code stops the loop, and raises if a task lets
        // SystemExit or KeyboardInterrupt escape; either way, carry on unless it is closed.
        loop {
            if let Err(e) = ev.call_method0("run_forever") {
                eprintln!("parallel_agents: the asyncio event loop raised; restarting it:");
                e.display(py);
            }
            if ev
                .call_method0("is_closed")
                .and_then(|c| c.is_truthy())
                .unwrap_or(true)
            {
                break;
            }
        }
        el.alive.store(false, Ordering::Release);
        drop(el.take()); // fails whatever was queued: the senders drop
    });
}

/// Loop-thread state, reached from the two Python-callable closures.
struct LoopState {
    el: &'static EventLoop,
    /// `start(call_id, awaitable) -> task` from `python_support.make_starter`.
    start: OnceCell<Py<PyAny>>,
    coroutine_type: Py<PyType>,
    /// Running tasks by call id. Only the loop thread touches it.
    tasks: Mutex<HashMap<u64, InFlight>>,
}

struct InFlight {
    task: Py<PyAny>,
    tx: oneshot::Sender<Answer>,
    answer_field: Arc<str>,
}

fn setup_loop<'py>(py: Python<'py>, el: &'static EventLoop) -> PyResult<Bound<'py, PyAny>> {
    let asyncio = py.import("asyncio")?;
    let ev = asyncio.call_method0("new_event_loop")?;
    asyncio.call_method1("set_event_loop", (&ev,))?;
    let support = interpreter()
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?
        .support
        .bind(py);
    let state = Arc::new(LoopState {
        el,
        start: OnceCell::new(),
        coroutine_type: py
            .import("types")?
            .getattr("CoroutineType")?
            .cast_into::<PyType>()?
            .unbind(),
        tasks: Mutex::new(HashMap::new()),
    });
    let s = Arc::clone(&state);
    let complete = PyCFunction::new_closure(
        py,
        Some(c"pagent_complete"),
        None,
        move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| s.complete(args),
    )?;
    let start = support.call_method1("make_starter", (&ev, complete))?;
    let _ = state.start.set(start.unbind());
    let s = Arc::clone(&state);
    let drain = PyCFunction::new_closure(
        py,
        Some(c"pagent_drain"),
        None,
        move |args: &Bound<'_, PyTuple>, _: Option<&Bound<'_, PyDict>>| {
            s.drain(args.py());
        },
    )?;
    el.waker.register(&ev, drain.into_any())?;
    Ok(ev)
}

impl LoopState {
    /// Runs on the loop thread when the waker fires: starts and cancels tasks.
    fn drain(&self, py: Python<'_>) {
        for msg in self.el.take() {
            match msg {
                Msg::Start {
                    id,
                    work,
                    answer_field,
                    tx,
                } => {
                    if tx.is_closed() {
                        continue; // timed out or cancelled while queued
                    }
                    self.start(py, id, work, answer_field, tx);
                }
                Msg::Cancel(id) => {
                    let task = lock(&self.tasks).get(&id).map(|f| f.task.clone_ref(py));
                    if let Some(task) = task {
                        let _ = task.bind(py).call_method0(intern!(py, "cancel"));
                    }
                }
            }
        }
    }

    fn start(
        &self,
        py: Python<'_>,
        id: u64,
        work: Work,
        answer_field: Arc<str>,
        tx: oneshot::Sender<Answer>,
    ) {
        let awaitable = match work {
            Work::Call {
                callable,
                question,
                agent_id,
                keyword,
            } => invoke(
                py,
                callable.bind(py),
                &question,
                agent_id,
                keyword.as_deref(),
            ),
            Work::Await(obj) => Ok(obj.into_bound(py)),
        };
        let awaitable = match awaitable {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(Err(describe(py, &e)));
                return;
            }
        };
        // Coroutines (the common case) skip the attribute lookup.
        if !awaitable.get_type().is(self.coroutine_type.bind(py)) && !is_awaitable(&awaitable) {
            // An "async" callable that answered directly.
            let _ = tx.send(extract_answer(&awaitable, &answer_field));
            return;
        }
        let start = self.start.get().expect("set at start-up").bind(py);
        match start.call1((id, awaitable)) {
            Ok(task) => {
                lock(&self.tasks).insert(
                    id,
                    InFlight {
                        task: task.unbind(),
                        tx,
                        answer_field,
                    },
                );
            }
            Err(e) => {
                let _ = tx.send(Err(describe(py, &e)));
            }
        }
    }

    /// `complete(call_id, value, exception)`, called by each task as it ends. The task is
    /// always recorded by then: a task's first step runs on a later loop iteration.
    fn complete(&self, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let py = args.py();
        let id: u64 = args.get_item(0)?.extract()?;
        let Some(call) = lock(&self.tasks).remove(&id) else {
            return Ok(());
        };
        if call.tx.is_closed() {
            return Ok(()); // timed out or cancelled: nobody is waiting
        }
        let exc = args.get_item(2)?;
        let answer = if exc.is_none() {
            extract_answer(&args.get_item(1)?, &call.answer_field)
        } else {
            Err(describe(py, &PyErr::from_value(exc)))
        };
        let _ = call.tx.send(answer);
        Ok(())
    }
}

/// How runtime workers wake the loop thread without the GIL.
#[cfg(unix)]
mod wake {
    use std::io;
    use std::os::fd::RawFd;

    use pyo3::prelude::*;

    /// A non-blocking pipe; the loop watches its read end with `loop.add_reader`.
    pub(super) struct Waker {
        read: RawFd,
        write: RawFd,
    }

    impl Waker {
        pub(super) fn new() -> io::Result<Self> {
            let mut fds = [0 as libc::c_int; 2];
            // SAFETY: `fds` has room for the two descriptors pipe() writes.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: fcntl on descriptors we own.
                unsafe {
                    let fl = libc::fcntl(fd, libc::F_GETFL);
                    libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(Self {
                read: fds[0],
                write: fds[1],
            })
        }

        /// Makes the loop call the drain function soon. Never blocks: if the pipe is
        /// full, a wake-up is pending anyway.
        pub(super) fn wake(&self) {
            // SAFETY: writes one byte from a live buffer to a descriptor we own.
            unsafe { libc::write(self.write, b"!".as_ptr().cast(), 1) };
        }

        /// Empties the pipe (loop thread, before taking the queue).
        pub(super) fn drain(&self) {
            let mut buf = [0u8; 256];
            // SAFETY: reads into a live buffer of the given length, from our descriptor.
            while unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        }

        pub(super) fn register(
            &self,
            event_loop: &Bound<'_, PyAny>,
            drain: Bound<'_, PyAny>,
        ) -> PyResult<()> {
            event_loop.call_method1("add_reader", (self.read, drain))?;
            Ok(())
        }
    }
}

/// Without pipes: `loop.call_soon_threadsafe`, which needs the GIL (held only briefly, and
/// only for the first call after each drain).
#[cfg(not(unix))]
mod wake {
    use std::io;

    use once_cell::sync::OnceCell;
    use pyo3::prelude::*;

    pub(super) struct Waker {
        target: OnceCell<(Py<PyAny>, Py<PyAny>)>,
    }

    impl Waker {
        pub(super) fn new() -> io::Result<Self> {
            Ok(Self {
                target: OnceCell::new(),
            })
        }

        pub(super) fn wake(&self) {
            if let Some((event_loop, drain)) = self.target.get() {
                Python::attach(|py| {
                    let _ = event_loop
                        .bind(py)
                        .call_method1("call_soon_threadsafe", (drain.bind(py),));
                });
            }
        }

        pub(super) fn drain(&self) {}

        pub(super) fn register(
            &self,
            event_loop: &Bound<'_, PyAny>,
            drain: Bound<'_, PyAny>,
        ) -> PyResult<()> {
            let _ = self
                .target
                .set((event_loop.clone().unbind(), drain.unbind()));
            Ok(())
        }
    }
}
