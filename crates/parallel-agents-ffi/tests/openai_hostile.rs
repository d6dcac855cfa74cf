//! The OpenAI agent, driven through the C entry points as a C host would, against a test
//! server that plays hostile and unusual servers: it echoes secrets into every kind of
//! reply, redirects, sends absurd numbers, null usage, broken text, tool calls, cut
//! answers, and closes connections under the client.
#![cfg(feature = "openai")]

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::openai::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status, pagent_status::*};

mod support;
use support::Mock;

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn ok(status: pagent_status) {
    assert_eq!(status, PAGENT_OK, "{}", last_error());
}

/// One result as a C host reads it.
#[derive(Debug)]
struct Got {
    outcome: pagent_outcome,
    answer: Option<String>,
    error: Option<String>,
    attempts: u32,
    prompt_tokens: u64,
    completion_tokens: u64,
}

fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Options for `mock`, no key, built by the C setters; `more` changes them.
fn options(
    mock: &Mock,
    more: impl FnOnce(*mut pagent_openai_options),
) -> *mut pagent_openai_options {
    let o = pagent_openai_options_new();
    ok(pagent_openai_options_set_base_url(
        o,
        c(&mock.url()).as_ptr(),
    ));
    ok(pagent_openai_options_set_model(o, c("mock-1").as_ptr()));
    ok(pagent_openai_options_set_api_key_env(o, c("").as_ptr()));
    more(o);
    o
}

/// Runs `questions` with an agent made from `o` (freed here) and a config `setup` changes;
/// returns every result and the metrics JSON.
fn run(
    o: *mut pagent_openai_options,
    setup: impl FnOnce(*mut pagent_config),
    questions: &[&str],
) -> (Vec<Got>, String) {
    let mut agent: *mut pagent_agent = ptr::null_mut();
    ok(pagent_agent_openai(o, &mut agent));
    pagent_openai_options_free(o);
    let config = pagent_config_new();
    ok(pagent_config_set_max_concurrency(config, 8));
    setup(config);
    let mut exec: *mut pagent_executor = ptr::null_mut();
    ok(pagent_executor_new(config, agent, &mut exec));
    pagent_config_free(config);
    pagent_agent_free(agent);
    let qs: Vec<CString> = questions.iter().map(|q| c(q)).collect();
    let ptrs: Vec<*const c_char> = qs.iter().map(|q| q.as_ptr()).collect();
    let mut results: *mut pagent_results = ptr::null_mut();
    ok(pagent_execute(
        exec,
        ptrs.as_ptr(),
        ptrs.len(),
        &mut results,
    ));
    let got = (0..pagent_results_len(results))
        .map(|i| {
            let mut r: *const pagent_result = ptr::null();
            ok(pagent_results_get(results, i, &mut r));
            Got {
                outcome: pagent_result_outcome(r),
                answer: text(pagent_result_answer(r)),
                error: text(pagent_result_error(r)),
                attempts: pagent_result_attempts(r),
                prompt_tokens: pagent_result_prompt_tokens(r),
                completion_tokens: pagent_result_completion_tokens(r),
            }
        })
        .collect();
    pagent_results_free(results);
    let json = pagent_executor_metrics_json(exec);
    let metrics = text(json).expect("metrics JSON");
    parallel_agents_ffi::executor::pagent_string_free(json);
    pagent_executor_free(exec);
    (got, metrics)
}

/// Fails if `output` holds a piece of `secret` six characters long (or the whole of a
/// shorter one).
fn assert_no_piece(secret: &str, output: &str, what: &str) {
    let n = secret.len().min(6);
    for piece in secret.as_bytes().windows(n) {
        assert!(
            !output.as_bytes().windows(n).any(|w| w == piece),
            "{what} carries a piece of a secret ({:?}): {output}",
            String::from_utf8_lossy(piece)
        );
    }
}

#[test]
fn every_kind_of_secret_stays_out_of_every_output() {
    const KEY_VAR: &str = "PAGENT_HOSTILE_TEST_KEY";
    let key = "sk-proj-Q7vK2mZx9LwT4bNc8RdY1hJf6GsPa3Ue0";
    let header = "gw-7f3a9c1e5b2d8064af1c93e7";
    std::env::set_var(KEY_VAR, key);
    let mock = Mock::start(&[]);

    // URL credentials: refused, and the message does not repeat them.
    let o = pagent_openai_options_new();
    let port = mock.port;
    for url in [
        format!("http://admin:pa55w0rdSecret@127.0.0.1:{port}/v1"),
        format!("http://pa55w0rdSecret@127.0.0.1:{port}/v1"),
    ] {
        assert_eq!(
            pagent_openai_options_set_base_url(o, c(&url).as_ptr()),
            PAGENT_ERR_INVALID_ARG
        );
        assert!(last_error().contains("credentials"), "{}", last_error());
        assert_no_piece("pa55w0rdSecret", &last_error(), "the error for a URL");
    }
    pagent_openai_options_free(o);

    let o = options(&mock, |o| {
        ok(pagent_openai_options_set_api_key_env(
            o,
            c(KEY_VAR).as_ptr(),
        ));
        ok(pagent_openai_options_add_header(
            o,
            c("x-gateway-key").as_ptr(),
            c(header).as_ptr(),
        ));
    });
    // Every kind of reply, each echoing every request header; the padding puts the
    // secrets across the point where a message is cut.
    let questions = [
        "[echo-headers][status=400] json error",
        "[echo-headers][status=401][pad=250] json error, cut",
        "[echo-headers][status=502][text-error][pad=270] text error",
        "[echo-headers][status=503][text-error][pad=300] text error, cut",
        "[echo-headers][malformed] truncated body",
        "[echo-headers] answer",
        "[echo-headers][redirect=307] redirect",
        "[echo-headers][redirect=302][pad=200] redirect",
        "[echo-key] key",
    ];
    let (got, metrics) = run(o, |_| {}, &questions);
    assert_eq!(got.len(), questions.len());
    for (q, g) in questions.iter().zip(&got) {
        assert_eq!(
            g.outcome,
            pagent_outcome::PAGENT_OUTCOME_FAILED,
            "{q}: {g:?}"
        );
        let error = g.error.as_deref().unwrap_or("");
        assert!(!error.is_empty(), "{q}");
        for s in [key, header] {
            assert_no_piece(s, error, q);
            assert_no_piece(s, g.answer.as_deref().unwrap_or(""), q);
        }
        println!("{q}: {error}");
    }
    assert!(got[5].error.as_deref().unwrap().contains("withheld"));
    assert!(got[6].error.as_deref().unwrap().contains("not followed"));
    for s in [key, header] {
        assert_no_piece(s, &metrics, "the metrics JSON");
        assert_no_piece(s, &last_error(), "the last error");
    }
    // The server did get both secrets: it echoed them, the library kept them in.
    assert_eq!(mock.stats()["requests"], questions.len());
}

#[test]
fn a_short_key_leaves_answers_and_ordinary_words_alone() {
    const KEY_VAR: &str = "PAGENT_SHORT_TEST_KEY";
    std::env::set_var(KEY_VAR, "e");
    let mock = Mock::start(&[]);
    let o = options(&mock, |o| {
        ok(pagent_openai_options_set_api_key_env(
            o,
            c(KEY_VAR).as_ptr(),
        ));
    });
    let (got, _) = run(
        o,
        |_| {},
        &["fine, thank you", "[echo-key] were you there?"],
    );
    assert_eq!(
        got[0].answer.as_deref(),
        Some("mock answer to: fine, thank you")
    );
    let e = got[1].error.as_deref().unwrap();
    assert!(e.contains("Bearer [redacted]"), "{e}");
    assert!(e.contains("Authorization"), "ordinary words stay: {e}");
}

#[test]
fn framing_headers_are_refused() {
    let o = pagent_openai_options_new();
    for name in [
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "Upgrade",
    ] {
        assert_eq!(
            pagent_openai_options_add_header(o, c(name).as_ptr(), c("1").as_ptr()),
            PAGENT_ERR_INVALID_ARG,
            "{name}"
        );
        assert!(last_error().contains(name), "{}", last_error());
    }
    ok(pagent_openai_options_add_header(
        o,
        c("x-title").as_ptr(),
        c("tests").as_ptr(),
    ));
    pagent_openai_options_free(o);
}

#[test]
fn a_retry_hint_past_the_backoff_cap_fails_at_once_and_names_the_hint() {
    let mock = Mock::start(&[]);
    let o = options(&mock, |_| {});
    let questions = [
        "[tag=s][status=429][retry-after=1000000000] a",
        "[tag=ms][status=429][retry-after-ms=1e300] b",
        "[tag=llm][fail-first=1][status=429][llm-retry-after=0.3] c",
    ];
    let started = std::time::Instant::now();
    let (got, _) = run(
        o,
        |cfg| {
            ok(pagent_config_set_max_retries(cfg, 3));
            ok(pagent_config_set_retry_backoff_ms(cfg, 1, 2_000));
        },
        &questions,
    );
    // The batch returned instead of sleeping for weeks (the bound is generous: a
    // liveness check, not a timing one).
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    for g in &got[..2] {
        assert_eq!(g.outcome, pagent_outcome::PAGENT_OUTCOME_FAILED);
        assert_eq!(g.attempts, 1, "no retry was started: {g:?}");
        let e = g.error.as_deref().unwrap();
        assert!(
            e.contains("asked to wait") && e.contains("longest backoff"),
            "{e}"
        );
    }
    // LiteLLM's forwarded hint is honoured like Retry-After.
    assert_eq!(
        got[2].outcome,
        pagent_outcome::PAGENT_OUTCOME_OK,
        "{:?}",
        got[2]
    );
    let t = Mock::starts(&mock.stats(), "llm");
    assert_eq!(t.len(), 2);
    assert!(
        t[1] - t[0] >= 300_000,
        "retried {} µs after the refusal",
        t[1] - t[0]
    );
}

#[test]
fn absurd_usage_is_clamped_and_the_token_budget_lives_on() {
    let mock = Mock::start(&[]);
    let o = options(&mock, |o| {
        ok(pagent_openai_options_set_max_tokens(o, 50));
        ok(pagent_openai_options_set_tokens_per_minute(o, 1_000));
    });
    let absurd = "[usage=18446744073709551615,18446744073709551615] big";
    let questions = [
        absurd,
        "[usage=null,null] unknown",
        "after 1",
        "after 2",
        "after 3",
    ];
    let (got, metrics) = run(
        o,
        |cfg| {
            ok(pagent_config_set_max_concurrency(cfg, 1));
            ok(pagent_config_set_agent_timeout_ms(cfg, 20_000));
        },
        &questions,
    );
    for (q, g) in questions.iter().zip(&got) {
        assert_eq!(g.outcome, pagent_outcome::PAGENT_OUTCOME_OK, "{q}: {g:?}");
    }
    // No more prompt tokens than the prompt's bytes and the chat template's room, no
    // more completion tokens than max_tokens.
    assert!(
        got[0].prompt_tokens <= (absurd.len() as u64) + 1024,
        "{:?}",
        got[0]
    );
    assert_eq!(got[0].completion_tokens, 50);
    // Null usage is unknown, not a failure.
    assert_eq!((got[1].prompt_tokens, got[1].completion_tokens), (0, 0));
    assert!(!metrics.contains("18446744073709551615"), "{metrics}");
}

#[test]
fn broken_text_tool_calls_and_cut_answers_say_what_came_back() {
    let mock = Mock::start(&[]);
    let o = options(&mock, |_| {});
    let (got, _) = run(o, |_| {}, &["[surrogate] s", "[tool-call] t", "[cut] c"]);
    assert_eq!(
        got[0].outcome,
        pagent_outcome::PAGENT_OUTCOME_OK,
        "{:?}",
        got[0]
    );
    assert_eq!(got[0].answer.as_deref(), Some("broken \u{fffd} pair"));
    let e = got[1].error.as_deref().unwrap();
    assert!(e.contains("tool calls") && e.contains("get_weather"), "{e}");
    let e = got[2].error.as_deref().unwrap();
    assert!(e.contains("cut") && e.contains("length"), "{e}");
}

#[test]
fn only_fields_the_host_set_are_sent_and_extra_fields_are_merged() {
    let mock = Mock::start(&[]);
    let body = |o| {
        let (got, _) = run(o, |_| {}, &["[echo-request] q"]);
        let answer = got[0]
            .answer
            .clone()
            .unwrap_or_else(|| panic!("{:?}", got[0]));
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let plain = body(options(&mock, |_| {}));
    for field in ["temperature", "max_tokens", "max_completion_tokens"] {
        assert!(plain.get(field).is_none(), "{field} was sent: {plain}");
    }
    let set = body(options(&mock, |o| {
        ok(pagent_openai_options_set_max_completion_tokens(o, 64));
        ok(pagent_openai_options_set_extra_body_json(
            o,
            c(r#"{"seed": 7, "response_format": {"type": "json_object"}}"#).as_ptr(),
        ));
    }));
    assert_eq!(set["max_completion_tokens"], 64);
    assert_eq!(set["seed"], 7);
    assert_eq!(set["response_format"]["type"], "json_object");
    assert!(set.get("temperature").is_none());

    let o = pagent_openai_options_new();
    for bad in [
        r#"{"model": "x"}"#,
        r#"{"messages": []}"#,
        "[1, 2]",
        "{nope",
    ] {
        assert_eq!(
            pagent_openai_options_set_extra_body_json(o, c(bad).as_ptr()),
            PAGENT_ERR_INVALID_ARG,
            "{bad}"
        );
    }
    ok(pagent_openai_options_set_temperature(o, 0.5));
    ok(pagent_openai_options_set_extra_body_json(
        o,
        c(r#"{"temperature": 1}"#).as_ptr(),
    ));
    let mut agent: *mut pagent_agent = ptr::null_mut();
    assert_eq!(pagent_agent_openai(o, &mut agent), PAGENT_ERR_INVALID_ARG);
    assert!(last_error().contains("temperature"), "{}", last_error());
    pagent_openai_options_free(o);
}

#[test]
fn a_connection_closed_before_any_reply_is_resent_once_without_a_retry() {
    let mock = Mock::start(&[]);
    let o = options(&mock, |_| {});
    // One at a time, so the second request goes out on the first one's pooled connection,
    // which the server then closes without a reply.
    let (got, _) = run(
        o,
        |cfg| ok(pagent_config_set_max_concurrency(cfg, 1)),
        &["[tag=first] warm up", "[tag=r][close-if-reused] resent"],
    );
    for g in &got {
        assert_eq!(g.outcome, pagent_outcome::PAGENT_OUTCOME_OK, "{g:?}");
        assert_eq!(g.attempts, 1, "{g:?}");
    }
    let stats = mock.stats();
    assert_eq!(
        Mock::starts(&stats, "r").len(),
        2,
        "dropped once, then answered"
    );
}

#[test]
fn servers_that_close_idle_connections_do_not_fail_calls() {
    // The server closes a connection after 300 ms idle, as uvicorn does after 5 s.
    let mock = Mock::start(&["--idle-close-ms", "300"]);
    let o = options(&mock, |_| {});
    let mut agent: *mut pagent_agent = ptr::null_mut();
    ok(pagent_agent_openai(o, &mut agent));
    pagent_openai_options_free(o);
    let config = pagent_config_new();
    let mut exec: *mut pagent_executor = ptr::null_mut();
    ok(pagent_executor_new(config, agent, &mut exec));
    pagent_config_free(config);
    pagent_agent_free(agent);
    for round in 0..6 {
        let q = c(&format!("round {round}"));
        let ptrs = [q.as_ptr()];
        let mut results: *mut pagent_results = ptr::null_mut();
        ok(pagent_execute(exec, ptrs.as_ptr(), 1, &mut results));
        let mut r: *const pagent_result = ptr::null();
        ok(pagent_results_get(results, 0, &mut r));
        assert_eq!(
            pagent_result_outcome(r),
            pagent_outcome::PAGENT_OUTCOME_OK,
            "round {round}: {:?}",
            text(pagent_result_error(r))
        );
        pagent_results_free(results);
        // Around the server's idle limit, on both sides of it.
        std::thread::sleep(std::time::Duration::from_millis(200 + 60 * round));
    }
    pagent_executor_free(exec);
}

#[test]
fn a_redirect_fails_and_names_where_it_pointed() {
    let mock = Mock::start(&[]);
    let o = options(&mock, |_| {});
    let (got, _) = run(o, |_| {}, &["[redirect=308] r"]);
    let e = got[0].error.as_deref().unwrap();
    assert!(
        e.contains("308") && e.contains("Location: http://127.0.0.1:9/elsewhere"),
        "{e}"
    );
    assert_eq!(got[0].attempts, 1);
}
