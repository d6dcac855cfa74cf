//! `pagent_agent`: the mock, host callbacks (blocking and completion-based), Python.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use super::guard::{
    boxed, free_boxed, guard, to_cstring, try_callback, try_mut, try_opt_ref, try_opt_slice,
    try_opt_str, try_out, try_out_handle, try_str, try_strings, try_token, FfiResult,
};
use super::status::{pagent_status, Failure};
use parallel_agents::agent::callback::{CompleteError, PendingRegistry};
use parallel_agents::agent::mock::MockAnswers;
use parallel_agents::agent::{
    Agent, AgentError, AsyncCallbackAgent, CallbackAgent, MockAgent, MockOptions,
};

/// An agent: something that answers questions. Create with `pagent_agent_mock`,
/// `pagent_agent_callback`, `pagent_agent_callback_async` or `pagent_agent_python`; free
/// with `pagent_agent_free`. Executors keep their own reference, so the agent may be
/// freed right after creating them. Thread-safe.
pub struct pagent_agent {
    pub(crate) agent: Arc<dyn Agent>,
}

/// Frees the caller's reference to an agent. NULL is a no-op. The host data of a callback
/// agent is released (its `free_fn` called) once no executor or running call uses it.
#[no_mangle]
pub extern "C" fn pagent_agent_free(agent: *mut pagent_agent) {
    let _ = guard("pagent_agent_free", || {
        free_boxed(agent);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Settings of the mock agent. Fill with `pagent_mock_options_init`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct pagent_mock_options {
    /// Base latency of each call, in microseconds.
    pub latency_us: u64,
    /// Each call's latency is uniform in latency ± jitter (never below zero), in µs.
    pub jitter_us: u64,
    /// Probability in [0, 1] that a call fails (with a retryable error).
    pub failure_rate: f64,
    /// Probability in [0, 1] that a call never returns (to exercise timeouts).
    pub hang_rate: f64,
    /// Probability in [0, 1] that a call panics inside the library (to exercise panic
    /// containment: it becomes a failed result).
    pub panic_rate: f64,
    /// Seed of every random draw; same seed, same behaviour.
    pub seed: u64,
    /// NULL: answer "Agent {id} answer for '{question}'". Otherwise an array of
    /// `n_vote_answers` candidate answers, one drawn per call (vote mode). Copied.
    pub vote_answers: *const *const c_char,
    /// Weights of the candidates (NULL: equal); each finite and >= 0, not all 0. Copied.
    pub vote_weights: *const f64,
    /// Length of `vote_answers` (and `vote_weights`).
    pub n_vote_answers: usize,
}

/// Fills `options` with the defaults: 100 ms latency, no jitter, no faults, seed 42,
/// template answers. NULL is ignored.
#[no_mangle]
pub extern "C" fn pagent_mock_options_init(options: *mut pagent_mock_options) {
    // No status to return: a NULL `options` only sets `pagent_last_error()`.
    let _ = guard("pagent_mock_options_init", || -> FfiResult {
        *try_out!(options) = pagent_mock_options {
            latency_us: 100_000,
            jitter_us: 0,
            failure_rate: 0.0,
            hang_rate: 0.0,
            panic_rate: 0.0,
            seed: 42,
            vote_answers: std::ptr::null(),
            vote_weights: std::ptr::null(),
            n_vote_answers: 0,
        };
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Most candidate answers of a mock in vote mode (`n_vote_answers`).
const MAX_VOTE_ANSWERS: usize = 1_000_000;

fn mock_options(o: &pagent_mock_options) -> Result<MockOptions, Failure> {
    const ANSWERS: &str = "options->vote_answers";
    const N: &str = "options->n_vote_answers";
    // No array and no count: template answers. An array with a count of 0, or a count
    // without an array, is a mistake the checks below report.
    let answers = if o.vote_answers.is_null() && o.n_vote_answers == 0 {
        MockAnswers::Template
    } else {
        let texts = try_strings!(
            o.vote_answers,
            o.n_vote_answers,
            MAX_VOTE_ANSWERS,
            ANSWERS,
            N
        );
        // NULL weights: all equal. Otherwise one per answer.
        let weights = try_opt_slice!(
            o.vote_weights,
            o.n_vote_answers,
            MAX_VOTE_ANSWERS,
            "options->vote_weights",
            N
        );
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        MockAnswers::Vote(
            texts
                .into_iter()
                .enumerate()
                .map(|(i, t)| (t, weight(i)))
                .collect(),
        )
    };
    Ok(MockOptions {
        latency: Duration::from_micros(o.latency_us),
        jitter: Duration::from_micros(o.jitter_us),
        failure_rate: o.failure_rate,
        hang_rate: o.hang_rate,
        panic_rate: o.panic_rate,
        seed: o.seed,
        answers,
    })
}

/// Makes a mock agent (`options` NULL: the defaults). Out: `*out` is the new agent, or
/// NULL on failure. Caller owns it and must call `pagent_agent_free`.
#[no_mangle]
pub extern "C" fn pagent_agent_mock(
    options: *const pagent_mock_options,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_mock", || -> FfiResult {
        let out = try_out_handle!(out);
        let opts = match try_opt_ref!(options) {
            Some(o) => mock_options(o)?,
            None => MockOptions::default(),
        };
        let agent = MockAgent::new(opts)?;
        *out = boxed(pagent_agent {
            agent: Arc::new(agent),
        });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Return value of a `pagent_answer_fn`: the answer was set with `pagent_reply_set_answer`.
pub const PAGENT_CALLBACK_OK: i32 = 0;
/// Return value of a `pagent_answer_fn`: the call failed for good.
pub const PAGENT_CALLBACK_ERROR: i32 = 1;
/// Return value of a `pagent_answer_fn`: the call failed but may succeed if retried.
pub const PAGENT_CALLBACK_RETRY: i32 = 2;

/// Where a synchronous callback puts its answer or error. Valid only during the callback.
pub struct pagent_reply {
    answer: Option<String>,
    error: Option<String>,
}

/// Host data for a callback agent, released with the host's `free_fn` when the agent goes.
struct HostData {
    user_data: *mut c_void,
    free_fn: pagent_free_fn,
}

// SAFETY: the header requires `user_data` to be usable from any thread.
unsafe impl Send for HostData {}
unsafe impl Sync for HostData {}

impl HostData {
    /// Through a method, so closures capture the whole `HostData` (which is `Send`), not
    /// just its raw pointer field.
    fn ptr(&self) -> *mut c_void {
        self.user_data
    }
}

impl Drop for HostData {
    fn drop(&mut self) {
        if let Some(f) = self.free_fn {
            // SAFETY: the host's function, called once with its own pointer.
            unsafe { f(self.user_data) }
        }
    }
}

/// Releases host data; called once, on some library or host thread, when the agent and
/// every executor and call using it are gone.
pub type pagent_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// A blocking agent function. Runs on a library blocking thread, possibly many at once.
/// `question` is valid only during the call. Set the answer with `pagent_reply_set_answer`
/// (or an error with `pagent_reply_set_error`) and return `PAGENT_CALLBACK_OK`,
/// `PAGENT_CALLBACK_ERROR` or `PAGENT_CALLBACK_RETRY`; any other value is a failure.
/// Inside it the host may call non-blocking library functions (`pagent_submit`,
/// `pagent_batch_next` with timeout 0, accessors, frees); blocking ones (`pagent_execute`,
/// waits, `pagent_run_consensus`, `pagent_shutdown`) return `PAGENT_ERR_REENTRANT`.
pub type pagent_answer_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        question: *const c_char,
        agent_id: usize,
        reply: *mut pagent_reply,
    ) -> i32,
>;

/// Makes an agent from a blocking host function. `user_data` is passed to every call and
/// must be usable from any thread; `free_fn` (may be NULL) releases it when the agent is
/// no longer used. Ownership of `user_data` passes to the library on success only; on
/// failure `free_fn` is not called. A call that runs past the timeout is reported
/// `PAGENT_OUTCOME_TIMED_OUT` at once; the function itself runs on to its return and its
/// answer is dropped. Out: the new agent, or NULL. Caller owns it (`pagent_agent_free`).
#[no_mangle]
pub extern "C" fn pagent_agent_callback(
    answer_fn: pagent_answer_fn,
    user_data: *mut c_void,
    free_fn: pagent_free_fn,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_callback", || -> FfiResult {
        let out = try_out_handle!(out);
        let f = try_callback!(answer_fn);
        let host = HostData { user_data, free_fn };
        let agent = CallbackAgent::new(move |q, id| {
            let q = to_cstring(q);
            let mut reply = pagent_reply {
                answer: None,
                error: None,
            };
            // SAFETY: the host's function with its own data, a live question and reply.
            let rc = unsafe { f(host.ptr(), q.as_ptr(), id, &mut reply) };
            match (rc, reply.answer) {
                (PAGENT_CALLBACK_OK, Some(a)) => Ok(a),
                (PAGENT_CALLBACK_OK, None) => Err(AgentError::fatal(
                    "callback returned PAGENT_CALLBACK_OK without setting an answer",
                )),
                (PAGENT_CALLBACK_RETRY, _) => Err(AgentError::retryable(
                    reply
                        .error
                        .unwrap_or_else(|| "callback asked for a retry".into()),
                )),
                (PAGENT_CALLBACK_ERROR, _) => Err(AgentError::fatal(
                    reply.error.unwrap_or_else(|| "callback failed".into()),
                )),
                (other, _) => Err(AgentError::fatal(format!(
                    "callback returned unknown code {other}"
                ))),
            }
        });
        *out = boxed(pagent_agent {
            agent: Arc::new(agent),
        });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Sets the answer (or, with `error`, the error) of a reply; `name` is the parameter of
/// the entry point that passed `text`.
fn reply_set(
    function: &str,
    reply: *mut pagent_reply,
    text: *const c_char,
    name: &str,
    error: bool,
) -> pagent_status {
    guard(function, || -> FfiResult {
        let r = try_mut!(reply);
        let t = try_str!(text, name).to_owned();
        if error {
            r.error = Some(t);
        } else {
            r.answer = Some(t);
        }
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Sets the answer of a synchronous callback (copied). Only inside the callback.
#[no_mangle]
pub extern "C" fn pagent_reply_set_answer(
    reply: *mut pagent_reply,
    answer: *const c_char,
) -> pagent_status {
    reply_set("pagent_reply_set_answer", reply, answer, "answer", false)
}

/// Sets the error message of a synchronous callback (copied). Only inside the callback.
#[no_mangle]
pub extern "C" fn pagent_reply_set_error(
    reply: *mut pagent_reply,
    message: *const c_char,
) -> pagent_status {
    reply_set("pagent_reply_set_error", reply, message, "message", true)
}

/// One outstanding call of a completion-based agent. An opaque token, not memory: it is
/// never dereferenced, so completing it twice, or after its call timed out or was
/// cancelled, is harmless and returns `PAGENT_ERR_STALE`.
pub struct pagent_pending {
    _private: [u8; 0],
}

/// A completion-based agent function: start the work and return at once; later, from any
/// thread, call `pagent_pending_complete` or `pagent_pending_fail` on `pending`. Runs on a
/// library worker thread and must not block. `question` is valid only during the call
/// (copy it). The host may complete `pending` before returning.
pub type pagent_start_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        question: *const c_char,
        agent_id: usize,
        pending: *mut pagent_pending,
    ),
>;

/// Makes a completion-based agent: thousands of calls can be in flight without a thread
/// each. `user_data` and `free_fn` as in `pagent_agent_callback`. A call whose pending
/// handle is never completed ends at the executor's timeout; its token then goes stale.
/// Out: the new agent, or NULL. Caller owns it (`pagent_agent_free`).
#[no_mangle]
pub extern "C" fn pagent_agent_callback_async(
    start_fn: pagent_start_fn,
    user_data: *mut c_void,
    free_fn: pagent_free_fn,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_callback_async", || -> FfiResult {
        let out = try_out_handle!(out);
        let f = try_callback!(start_fn);
        let host = HostData { user_data, free_fn };
        let agent = AsyncCallbackAgent::new(move |q, id, pending| {
            let q = to_cstring(q);
            // SAFETY: the host's function with its own data and a live question; the
            // pending "pointer" is an id the host only hands back.
            unsafe {
                f(
                    host.ptr(),
                    q.as_ptr(),
                    id,
                    pending as usize as *mut pagent_pending,
                )
            }
        });
        *out = boxed(pagent_agent {
            agent: Arc::new(agent),
        });
        Ok(pagent_status::PAGENT_OK)
    })
}

fn complete(
    function: &str,
    pending: *mut pagent_pending,
    result: Result<String, AgentError>,
) -> FfiResult {
    let pending = try_token!(pending);
    match PendingRegistry::global().complete(pending as usize as u64, result) {
        Ok(()) => Ok(pagent_status::PAGENT_OK),
        Err(CompleteError::Stale) => Err(Failure::new(
            pagent_status::PAGENT_ERR_STALE,
            format!("{function}: the call was already completed, timed out or cancelled"),
        )),
    }
}

/// Completes a pending call with `answer` (copied). Any thread. Returns
/// `PAGENT_ERR_STALE` (harmless) if it was already completed or is no longer waited for.
/// An answer that is not UTF-8 fails the call and returns `PAGENT_ERR_UTF8`.
#[no_mangle]
pub extern "C" fn pagent_pending_complete(
    pending: *mut pagent_pending,
    answer: *const c_char,
) -> pagent_status {
    /// The answer's check, as a value: a bad answer also fails the call.
    fn text(answer: *const c_char) -> Result<String, Failure> {
        Ok(try_str!(answer).to_owned())
    }
    guard("pagent_pending_complete", || -> FfiResult {
        match text(answer) {
            Ok(a) => complete("pagent_pending_complete", pending, Ok(a)),
            Err(f) => {
                let _ = complete(
                    "pagent_pending_complete",
                    pending,
                    Err(AgentError::fatal(format!(
                        "host answer rejected: {}",
                        f.message
                    ))),
                );
                Err(f)
            }
        }
    })
}

/// Fails a pending call with `message` (copied; NULL for a generic one). `retryable`
/// says whether the executor may retry it. Any thread. `PAGENT_ERR_STALE` as above.
#[no_mangle]
pub extern "C" fn pagent_pending_fail(
    pending: *mut pagent_pending,
    message: *const c_char,
    retryable: bool,
) -> pagent_status {
    guard("pagent_pending_fail", || -> FfiResult {
        let msg = try_opt_str!(message)
            .unwrap_or("host failed the call")
            .to_owned();
        let e = if retryable {
            AgentError::retryable(msg)
        } else {
            AgentError::fatal(msg)
        };
        complete("pagent_pending_fail", pending, Err(e))
    })
}

/// Makes an agent from a Python callable, `"package.module:callable"` or
/// `"path/to/file.py:callable"`, run in-process. The callable gets `(question, agent_id)`
/// and returns a `str` or an object with an `answer` attribute (a DSPy `Prediction`); a
/// DSPy `Module` class or instance is instantiated once and called per question. A sync
/// callable runs on up to as many threads at once as the largest `max_concurrency`
/// (`pagent_config_set_max_concurrency`) of the executors using the agent, at most 512;
/// an `async def` callable (or a DSPy program's `acall`) runs as tasks on one asyncio
/// event loop thread. Starting Python and loading the target leave the process's SIGINT,
/// SIGPIPE and SIGXFSZ dispositions as they were. Fails with `PAGENT_ERR_PYTHON` if the
/// target cannot be imported, or if the library was built without Python support. Out:
/// the new agent, or NULL (`pagent_agent_free`).
#[no_mangle]
pub extern "C" fn pagent_agent_python(
    target: *const c_char,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_python", || -> FfiResult {
        let out = try_out_handle!(out);
        let target = try_str!(target);
        let agent = python_agent(target, None, false)?;
        *out = boxed(pagent_agent { agent });
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Like `pagent_agent_python`, with options: `answer_field` names the attribute (or dict
/// key) that holds the answer in what the callable returns (NULL: `"answer"`); with
/// `factory` true the target is called once, with no arguments, to build the program
/// (e.g. a function returning a configured `dspy.Predict`), which is then called per
/// question as `program(question=...)`.
#[no_mangle]
pub extern "C" fn pagent_agent_python_with(
    target: *const c_char,
    answer_field: *const c_char,
    factory: bool,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_python_with", || -> FfiResult {
        let out = try_out_handle!(out);
        let target = try_str!(target);
        let field = try_opt_str!(answer_field);
        if field.is_some_and(str::is_empty) {
            return Err(Failure::invalid("answer_field is empty"));
        }
        let agent = python_agent(target, field, factory)?;
        *out = boxed(pagent_agent { agent });
        Ok(pagent_status::PAGENT_OK)
    })
}

#[cfg(not(feature = "python"))]
fn python_agent(
    _target: &str,
    _field: Option<&str>,
    _factory: bool,
) -> Result<Arc<dyn Agent>, Failure> {
    Err(Failure::new(
        pagent_status::PAGENT_ERR_PYTHON,
        "this build of parallel-agents has no Python support (feature `python` off)",
    ))
}

#[cfg(feature = "python")]
fn python_agent(
    target: &str,
    field: Option<&str>,
    factory: bool,
) -> Result<Arc<dyn Agent>, Failure> {
    let mut options = parallel_agents::agent::python::PythonOptions {
        factory,
        ..Default::default()
    };
    if let Some(f) = field {
        options.answer_field = f.to_owned();
    }
    let a = parallel_agents::agent::python::PythonAgent::from_target(target, options)?;
    Ok(Arc::new(a))
}
