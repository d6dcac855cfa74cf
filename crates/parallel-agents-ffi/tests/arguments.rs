//! Bad arguments as a C host can pass them: NULL handles, strings, arrays and
//! out-pointers, invalid UTF-8, zero and absurd counts, out-of-range timeouts. Each
//! checking macro of `src/guard.rs` is met through at least one entry point that uses it,
//! and each failure must return its status and leave a last error that names the
//! function and the argument.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::batch::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::openai::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};
use parallel_agents_ffi::PAGENT_MAX_BATCH;

use pagent_status::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts `status` and that the last error is exactly `function: message`.
#[track_caller]
fn fails(status: pagent_status, want: pagent_status, function: &str, message: &str) {
    assert_eq!(status, want, "{}", last_error());
    assert_eq!(last_error(), format!("{function}: {message}"));
}

/// "caf\xff": invalid UTF-8 from byte 3.
const BAD_UTF8: &CStr = c"caf\xff";

/// A non-NULL pointer the library must overwrite with NULL, never read.
fn stale<T>() -> *mut T {
    ptr::NonNull::dangling().as_ptr()
}

fn mock() -> *mut pagent_agent {
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    let mut a = ptr::null_mut();
    assert_eq!(pagent_agent_mock(&o, &mut a), PAGENT_OK, "{}", last_error());
    a
}

fn executor(agent: *const pagent_agent) -> *mut pagent_executor {
    let mut e = ptr::null_mut();
    // `try_opt_ref!`: a NULL config means the defaults.
    assert_eq!(
        pagent_executor_new(ptr::null(), agent, &mut e),
        PAGENT_OK,
        "{}",
        last_error()
    );
    e
}

#[test]
fn null_handles_are_named() {
    // try_ref!
    fails(
        pagent_executor_cancel(ptr::null()),
        PAGENT_ERR_NULL,
        "pagent_executor_cancel",
        "executor is NULL",
    );
    fails(
        pagent_batch_cancel(ptr::null()),
        PAGENT_ERR_NULL,
        "pagent_batch_cancel",
        "batch is NULL",
    );
    let (mut done, mut total) = (7, 7);
    fails(
        pagent_batch_progress(ptr::null(), &mut done, &mut total),
        PAGENT_ERR_NULL,
        "pagent_batch_progress",
        "batch is NULL",
    );
    assert_eq!((done, total), (7, 7), "outputs are written only on success");
    let mut m = pagent_metrics::default();
    fails(
        pagent_results_metrics(ptr::null(), &mut m),
        PAGENT_ERR_NULL,
        "pagent_results_metrics",
        "results is NULL",
    );
    // try_mut!
    fails(
        pagent_config_set_max_concurrency(ptr::null_mut(), 4),
        PAGENT_ERR_NULL,
        "pagent_config_set_max_concurrency",
        "config is NULL",
    );
    fails(
        pagent_reply_set_answer(ptr::null_mut(), c"Paris".as_ptr()),
        PAGENT_ERR_NULL,
        "pagent_reply_set_answer",
        "reply is NULL",
    );
    fails(
        pagent_openai_options_set_model(ptr::null_mut(), c"m".as_ptr()),
        PAGENT_ERR_NULL,
        "pagent_openai_options_set_model",
        "options is NULL",
    );
    // try_token!
    fails(
        pagent_pending_complete(ptr::null_mut(), c"Paris".as_ptr()),
        PAGENT_ERR_NULL,
        "pagent_pending_complete",
        "pending is NULL",
    );
    fails(
        pagent_pending_fail(ptr::null_mut(), ptr::null(), false),
        PAGENT_ERR_NULL,
        "pagent_pending_fail",
        "pending is NULL",
    );
}

#[test]
fn accessors_given_null_return_their_default_and_name_the_handle() {
    assert_eq!(pagent_results_len(ptr::null()), 0);
    assert_eq!(last_error(), "pagent_results_len: results is NULL");
    assert!(pagent_result_answer(ptr::null()).is_null());
    assert_eq!(last_error(), "pagent_result_answer: result is NULL");
    assert_eq!(
        pagent_result_outcome(ptr::null()),
        pagent_outcome::PAGENT_OUTCOME_FAILED
    );
    assert_eq!(last_error(), "pagent_result_outcome: result is NULL");
    assert_eq!(pagent_consensus_votes(ptr::null()), 0);
    assert_eq!(last_error(), "pagent_consensus_votes: consensus is NULL");
    assert!(!pagent_batch_budget_exceeded(ptr::null()));
    assert_eq!(last_error(), "pagent_batch_budget_exceeded: batch is NULL");
}

#[test]
fn optional_handles_may_be_null() {
    // try_opt_ref!: NULL options are the defaults, a NULL limiter detaches.
    let agent = mock();
    let exec = executor(agent);
    let mut a = ptr::null_mut();
    assert_eq!(pagent_agent_mock(ptr::null(), &mut a), PAGENT_OK);
    assert!(!a.is_null());
    pagent_agent_free(a);
    let cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_shared_rate_limiter(cfg, ptr::null()),
        PAGENT_OK
    );
    pagent_config_free(cfg);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn handle_out_pointers_are_checked_and_set_to_null_first() {
    // try_out_handle!
    fails(
        pagent_agent_mock(ptr::null(), ptr::null_mut()),
        PAGENT_ERR_NULL,
        "pagent_agent_mock",
        "out is NULL",
    );
    let agent = mock();
    let exec = executor(agent);
    fails(
        pagent_execute(exec, [c"q".as_ptr()].as_ptr(), 1, ptr::null_mut()),
        PAGENT_ERR_NULL,
        "pagent_execute",
        "results is NULL",
    );
    // A failing call leaves the host's variable NULL, not stale.
    let mut e: *mut pagent_executor = stale();
    fails(
        pagent_executor_new(ptr::null(), ptr::null(), &mut e),
        PAGENT_ERR_NULL,
        "pagent_executor_new",
        "agent is NULL",
    );
    assert!(e.is_null());
    let mut b: *mut pagent_batch = stale();
    fails(
        pagent_submit(ptr::null(), [c"q".as_ptr()].as_ptr(), 1, &mut b),
        PAGENT_ERR_NULL,
        "pagent_submit",
        "executor is NULL",
    );
    assert!(b.is_null());
    // A `const` handle out-pointer too.
    let mut results = ptr::null_mut();
    assert_eq!(
        pagent_execute(exec, [c"q".as_ptr()].as_ptr(), 1, &mut results),
        PAGENT_OK
    );
    let mut r: *const pagent_result = stale();
    fails(
        pagent_results_get(results, 1, &mut r),
        PAGENT_ERR_INVALID_ARG,
        "pagent_results_get",
        "index 1 out of range (len 1)",
    );
    assert!(r.is_null());
    pagent_results_free(results);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn plain_out_pointers_are_checked() {
    // try_out!
    let agent = mock();
    let exec = executor(agent);
    fails(
        pagent_executor_metrics(exec, ptr::null_mut()),
        PAGENT_ERR_NULL,
        "pagent_executor_metrics",
        "out is NULL",
    );
    let mut b = ptr::null_mut();
    assert_eq!(
        pagent_submit(exec, [c"q".as_ptr()].as_ptr(), 1, &mut b),
        PAGENT_OK
    );
    let mut total = 0;
    fails(
        pagent_batch_progress(b, ptr::null_mut(), &mut total),
        PAGENT_ERR_NULL,
        "pagent_batch_progress",
        "done is NULL",
    );
    let mut done = 0;
    fails(
        pagent_batch_progress(b, &mut done, ptr::null_mut()),
        PAGENT_ERR_NULL,
        "pagent_batch_progress",
        "total is NULL",
    );
    // No status to return: NULL only sets the last error.
    pagent_mock_options_init(ptr::null_mut());
    assert_eq!(last_error(), "pagent_mock_options_init: options is NULL");
    pagent_batch_free(b);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn strings_are_checked_for_null_and_utf8() {
    // try_str!
    let agent = mock();
    let exec = executor(agent);
    let mut c = stale();
    fails(
        pagent_run_consensus(exec, ptr::null(), 3, &mut c),
        PAGENT_ERR_NULL,
        "pagent_run_consensus",
        "question is NULL",
    );
    assert!(c.is_null());
    fails(
        pagent_run_consensus(exec, BAD_UTF8.as_ptr(), 3, &mut c),
        PAGENT_ERR_UTF8,
        "pagent_run_consensus",
        "question is not valid UTF-8 (byte 3)",
    );
    let mut m = pagent_metrics::default();
    fails(
        pagent_metrics_get(exec, BAD_UTF8.as_ptr(), &mut m),
        PAGENT_ERR_UTF8,
        "pagent_metrics_get",
        "key is not valid UTF-8 (byte 3)",
    );
    fails(
        pagent_metrics_store(exec, c"k".as_ptr(), ptr::null()),
        PAGENT_ERR_NULL,
        "pagent_metrics_store",
        "metrics is NULL",
    );
    let mut a = stale();
    fails(
        pagent_agent_python(ptr::null(), &mut a),
        PAGENT_ERR_NULL,
        "pagent_agent_python",
        "target is NULL",
    );
    assert!(a.is_null());
    let o = pagent_openai_options_new();
    fails(
        pagent_openai_options_add_header(o, c"X-Team".as_ptr(), BAD_UTF8.as_ptr()),
        PAGENT_ERR_UTF8,
        "pagent_openai_options_add_header",
        "value is not valid UTF-8 (byte 3)",
    );
    // try_opt_str!: NULL means none, bad UTF-8 still fails.
    assert_eq!(
        pagent_openai_options_set_system_prompt(o, ptr::null()),
        PAGENT_OK
    );
    fails(
        pagent_openai_options_set_system_prompt(o, BAD_UTF8.as_ptr()),
        PAGENT_ERR_UTF8,
        "pagent_openai_options_set_system_prompt",
        "system_prompt is not valid UTF-8 (byte 3)",
    );
    fails(
        pagent_agent_python_with(c"m:f".as_ptr(), BAD_UTF8.as_ptr(), false, &mut a),
        PAGENT_ERR_UTF8,
        "pagent_agent_python_with",
        "answer_field is not valid UTF-8 (byte 3)",
    );
    pagent_openai_options_free(o);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn question_arrays_reject_null_zero_and_absurd_counts_and_bad_elements() {
    // try_strings!, through both entry points that take questions.
    let agent = mock();
    let exec = executor(agent);
    let qs = [c"a".as_ptr(), c"b".as_ptr()];
    let max = PAGENT_MAX_BATCH;
    let too_many = format!(
        "n = {} is not in [1, {max}] (the length of questions)",
        max + 1
    );
    let cases: [(*const *const c_char, usize, pagent_status, String); 5] = [
        (ptr::null(), 2, PAGENT_ERR_NULL, "questions is NULL".into()),
        (ptr::null(), 0, PAGENT_ERR_NULL, "questions is NULL".into()),
        (
            qs.as_ptr(),
            0,
            PAGENT_ERR_INVALID_ARG,
            format!("n = 0 is not in [1, {max}] (the length of questions)"),
        ),
        (qs.as_ptr(), max + 1, PAGENT_ERR_INVALID_ARG, too_many),
        (
            qs.as_ptr(),
            usize::MAX,
            PAGENT_ERR_INVALID_ARG,
            format!(
                "n = {} is not in [1, {max}] (the length of questions)",
                usize::MAX
            ),
        ),
    ];
    for (p, n, status, message) in &cases {
        let mut results = stale();
        fails(
            pagent_execute(exec, *p, *n, &mut results),
            *status,
            "pagent_execute",
            message,
        );
        assert!(results.is_null());
        let mut batch = stale();
        fails(
            pagent_submit(exec, *p, *n, &mut batch),
            *status,
            "pagent_submit",
            message,
        );
        assert!(batch.is_null());
    }
    let mut results = ptr::null_mut();
    fails(
        pagent_execute(exec, [qs[0], ptr::null()].as_ptr(), 2, &mut results),
        PAGENT_ERR_NULL,
        "pagent_execute",
        "questions[1] is NULL",
    );
    fails(
        pagent_execute(
            exec,
            [qs[0], qs[1], BAD_UTF8.as_ptr()].as_ptr(),
            3,
            &mut results,
        ),
        PAGENT_ERR_UTF8,
        "pagent_execute",
        "questions[2] is not valid UTF-8 (byte 3)",
    );
    assert!(results.is_null());
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn agent_arrays_reject_null_zero_and_absurd_counts_and_null_elements() {
    // try_slice!, then try_ref! on each element.
    let agent = mock();
    let agents = [agent as *const pagent_agent, agent];
    let mut e = stale();
    fails(
        pagent_executor_new_pool(ptr::null(), ptr::null(), 2, &mut e),
        PAGENT_ERR_NULL,
        "pagent_executor_new_pool",
        "agents is NULL",
    );
    assert!(e.is_null());
    for n in [0, 1_000_001, usize::MAX] {
        fails(
            pagent_executor_new_pool(ptr::null(), agents.as_ptr(), n, &mut e),
            PAGENT_ERR_INVALID_ARG,
            "pagent_executor_new_pool",
            &format!("n_agents = {n} is not in [1, 1000000] (the length of agents)"),
        );
        assert!(e.is_null());
    }
    fails(
        pagent_executor_new_pool(ptr::null(), [agent, ptr::null()].as_ptr(), 2, &mut e),
        PAGENT_ERR_NULL,
        "pagent_executor_new_pool",
        "agents[1] is NULL",
    );
    assert_eq!(
        pagent_executor_new_pool(ptr::null(), agents.as_ptr(), 2, &mut e),
        PAGENT_OK
    );
    pagent_executor_free(e);
    pagent_agent_free(agent);
}

#[test]
fn mock_vote_arrays_are_checked_with_their_field_names() {
    // try_strings! and try_opt_slice! with explicit names.
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let base = unsafe { o.assume_init() };
    let answers = [c"Paris".as_ptr(), BAD_UTF8.as_ptr()];
    let weights = [1.0, 2.0];
    let try_mock = |o: pagent_mock_options| {
        let mut a = stale();
        let s = pagent_agent_mock(&o, &mut a);
        let made = !a.is_null();
        pagent_agent_free(a);
        assert_eq!(made, s == PAGENT_OK);
        s
    };
    let with = |answers: *const *const c_char, n, weights: *const f64| pagent_mock_options {
        vote_answers: answers,
        n_vote_answers: n,
        vote_weights: weights,
        ..base
    };
    fails(
        try_mock(with(ptr::null(), 2, ptr::null())),
        PAGENT_ERR_NULL,
        "pagent_agent_mock",
        "options->vote_answers is NULL",
    );
    fails(
        try_mock(with(answers.as_ptr(), 0, ptr::null())),
        PAGENT_ERR_INVALID_ARG,
        "pagent_agent_mock",
        "options->n_vote_answers = 0 is not in [1, 1000000] (the length of options->vote_answers)",
    );
    fails(
        try_mock(with(answers.as_ptr(), usize::MAX, weights.as_ptr())),
        PAGENT_ERR_INVALID_ARG,
        "pagent_agent_mock",
        &format!(
            "options->n_vote_answers = {} is not in [1, 1000000] (the length of options->vote_answers)",
            usize::MAX
        ),
    );
    fails(
        try_mock(with(answers.as_ptr(), 2, weights.as_ptr())),
        PAGENT_ERR_UTF8,
        "pagent_agent_mock",
        "options->vote_answers[1] is not valid UTF-8 (byte 3)",
    );
    // No array and no count: template answers; NULL weights: equal weights.
    assert_eq!(try_mock(with(ptr::null(), 0, ptr::null())), PAGENT_OK);
    assert_eq!(try_mock(with(answers.as_ptr(), 1, ptr::null())), PAGENT_OK);
    assert_eq!(
        try_mock(with(answers.as_ptr(), 1, weights.as_ptr())),
        PAGENT_OK
    );
}

#[test]
fn null_callbacks_are_named() {
    // try_callback!
    let mut a = stale();
    fails(
        pagent_agent_callback(None, ptr::null_mut::<c_void>(), None, &mut a),
        PAGENT_ERR_NULL,
        "pagent_agent_callback",
        "answer_fn is NULL",
    );
    assert!(a.is_null());
    fails(
        pagent_agent_callback_async(None, ptr::null_mut(), None, &mut a),
        PAGENT_ERR_NULL,
        "pagent_agent_callback_async",
        "start_fn is NULL",
    );
    assert!(a.is_null());
}

#[test]
fn timeouts_out_of_range_are_named() {
    // try_timeout!
    let agent = mock();
    let exec = executor(agent);
    let mut b = ptr::null_mut();
    assert_eq!(
        pagent_submit(exec, [c"q".as_ptr()].as_ptr(), 1, &mut b),
        PAGENT_OK
    );
    let max = parallel_agents_ffi::PAGENT_MAX_TIMEOUT_MS;
    for ms in [-2, i64::MIN, max + 1, i64::MAX] {
        let mut r = stale();
        fails(
            pagent_batch_next(b, ms, &mut r),
            PAGENT_ERR_INVALID_ARG,
            "pagent_batch_next",
            &format!("timeout_ms = {ms}: use -1 (forever), 0 (poll) or up to {max}"),
        );
        assert!(r.is_null());
        let mut rs = stale();
        fails(
            pagent_batch_wait(b, ms, &mut rs),
            PAGENT_ERR_INVALID_ARG,
            "pagent_batch_wait",
            &format!("timeout_ms = {ms}: use -1 (forever), 0 (poll) or up to {max}"),
        );
        assert!(rs.is_null());
    }
    let mut rs = ptr::null_mut();
    assert_eq!(pagent_batch_wait(b, -1, &mut rs), PAGENT_OK);
    assert_eq!(pagent_results_len(rs), 1);
    pagent_results_free(rs);
    pagent_batch_free(b);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}
