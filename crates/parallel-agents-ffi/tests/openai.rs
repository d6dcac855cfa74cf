//! The OpenAI-compatible HTTP agent against the local test server (`mock-llm`, started
//! in-process per test on 127.0.0.1 with a port the system picks, stopped when the test
//! ends). What
//! the server saw (request counts, start times, statuses) comes from its `/stats`.
#![cfg(feature = "openai")]

use std::ffi::{c_char, CStr, CString};
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_agents::agent::{OpenAiAgent, OpenAiOptions};
use parallel_agents::runtime::block_on;
use parallel_agents::{
    Agent, AgentResult, Outcome, ParallelAgentExecutor, ParallelConfig, RateLimit, RetryPolicy,
};
use serde_json::Value;

mod support;
use support::Mock;

fn agent(options: OpenAiOptions) -> Arc<dyn Agent> {
    Arc::new(OpenAiAgent::new(options).expect("agent"))
}

fn options(mock: &Mock) -> OpenAiOptions {
    OpenAiOptions {
        base_url: mock.url(),
        model: "mock-1".into(),
        api_key_env: String::new(),
        request_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

fn retries(n: u32, base_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_retries: n,
        backoff_base: Duration::from_millis(base_ms),
        backoff_cap: Duration::from_millis(base_ms * 10),
        retry_timeouts: false,
    }
}

fn run(exec: &ParallelAgentExecutor, questions: Vec<String>) -> Vec<AgentResult> {
    block_on("test", exec.execute_parallel(questions))
        .unwrap()
        .unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

#[test]
fn ten_thousand_questions_at_c1000_each_once_and_no_extra_requests() {
    let mock = Mock::start(&["--latency-ms", "10"]);
    let config = ParallelConfig {
        max_concurrency: 1000,
        retry: retries(3, 2),
        ..Default::default()
    };
    let exec = ParallelAgentExecutor::new(config, agent(options(&mock))).unwrap();
    let n = 10_000;
    // Some questions fail once (500, or 429 with a short retry-after) and are retried.
    let questions: Vec<String> = (0..n)
        .map(|i| match i {
            i if i % 97 == 0 => format!("[fail-first=1][status=500] q{i}"),
            i if i % 89 == 0 => format!("[fail-first=1][status=429][retry-after-ms=20] q{i}"),
            i => format!("q{i}"),
        })
        .collect();
    let n500 = (0..n).filter(|i| i % 97 == 0).count() as u64;
    let n429 = (0..n).filter(|i| i % 97 != 0 && i % 89 == 0).count() as u64;
    let t = Instant::now();
    let mut batch = exec.submit(questions.clone()).unwrap();
    let mut seen = vec![false; n];
    let mut attempts = 0u64;
    let mut tokens = (0u64, 0u64);
    block_on("test", async {
        while let Some(r) = batch.next().await {
            assert!(!seen[r.question_index], "index {} twice", r.question_index);
            seen[r.question_index] = true;
            assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
            let want = format!("mock answer to: {}", questions[r.question_index]);
            assert_eq!(r.answer.as_deref(), Some(want.as_str()));
            attempts += u64::from(r.attempts);
            let usage = r.usage.expect("usage on every answer");
            tokens.0 += usage.prompt_tokens;
            tokens.1 += usage.completion_tokens;
        }
    })
    .unwrap();
    let wall = t.elapsed();
    assert!(seen.iter().all(|s| *s), "every question index exactly once");
    let metrics = batch.metrics().unwrap();
    let stats = mock.stats();
    println!(
        "10,000 calls at C=1000 (10 ms server latency): {wall:?}, server max in flight {}, \
         {} requests = {n} calls + {} retries",
        stats["max_in_flight"],
        stats["requests"],
        attempts - n as u64
    );
    assert_eq!(attempts, n as u64 + n500 + n429);
    assert_eq!(
        u(&stats["requests"]),
        attempts,
        "server saw calls + retries, no more"
    );
    assert_eq!(u(&stats["by_status"]["500"]), n500);
    assert_eq!(u(&stats["by_status"]["429"]), n429);
    assert_eq!(u(&stats["by_status"]["200"]), n as u64);
    assert!(u(&stats["max_in_flight"]) <= 1000);
    // Token usage: per result, summed in the metrics, equal to what the server reported.
    assert_eq!(metrics.prompt_tokens, tokens.0);
    assert_eq!(metrics.completion_tokens, tokens.1);
    assert_eq!(metrics.prompt_tokens, u(&stats["prompt_tokens"]));
    assert_eq!(metrics.completion_tokens, u(&stats["completion_tokens"]));
    assert_eq!(metrics.successful_count, n as u64);
}

#[test]
fn retry_after_is_a_floor_under_the_retry() {
    let mock = Mock::start(&[]);
    let config = ParallelConfig {
        max_concurrency: 8,
        // The cap must exceed the hints: a longer hint fails the call instead.
        retry: RetryPolicy {
            backoff_cap: Duration::from_secs(5),
            ..retries(2, 1)
        },
        ..Default::default()
    };
    let exec = ParallelAgentExecutor::new(config, agent(options(&mock))).unwrap();
    let results = run(
        &exec,
        vec![
            "[tag=s][fail-first=1][status=429][retry-after=1] a".into(),
            "[tag=ms][fail-first=1][status=503][retry-after-ms=300] b".into(),
            "[tag=date][fail-first=1][status=429][retry-after-date=2] c".into(),
        ],
    );
    for r in &results {
        assert_eq!(r.outcome, Outcome::Ok, "{:?}", r.error);
        assert_eq!(r.attempts, 2);
    }
    let stats = mock.stats();
    for (tag, floor_ms) in [("s", 1000), ("ms", 300), ("date", 1000)] {
        let t = Mock::starts(&stats, tag);
        assert_eq!(t.len(), 2, "{tag}: one refusal and one retry");
        let gap = Duration::from_micros(t[1] - t[0]);
        println!("{tag}: retried {gap:?} after the refusal (floor {floor_ms} ms)");
        assert!(gap >= Duration::from_millis(floor_ms), "{tag}: {gap:?}");
        assert!(gap < Duration::from_secs(10), "{tag}: {gap:?}");
    }
}

#[test]
fn request_rate_limit_holds_at_the_server() {
    let mock = Mock::start(&[]);
    let per_second = 100.0;
    let config = ParallelConfig {
        max_concurrency: 100,
        rate_limit: Some(RateLimit {
            per_second,
            burst: 1,
        }),
        ..Default::default()
    };
    let exec = ParallelAgentExecutor::new(config, agent(options(&mock))).unwrap();
    let n = 120;
    let qs = (0..n).map(|i| format!("[tag=r] q{i}")).collect();
    assert!(run(&exec, qs).iter().all(|r| r.success));
    let t = Mock::starts(&mock.stats(), "r");
    assert_eq!(t.len(), n);
    let span = Duration::from_micros(t[n - 1] - t[0]).as_secs_f64();
    let rate = (n - 1) as f64 / span;
    println!("server-side start rate {rate:.1}/s (limit {per_second}/s)");
    assert!(rate <= per_second * 1.05, "{rate}/s");
    // No window of 250 ms holds more than its share plus the burst and a little jitter.
    let window = 250_000;
    let most = (0..n)
        .map(|i| t[i..].iter().take_while(|&&x| x - t[i] < window).count())
        .max()
        .unwrap();
    assert!(most <= 25 + 1 + 4, "{most} starts in 250 ms");
}

#[test]
fn client_errors_fail_once_fast_with_the_servers_message() {
    let mock = Mock::start(&["--require-key", "sk-right-key-0123456789"]);
    std::env::set_var("PAGENT_TEST_WRONG_KEY", "sk-wrong-key-9876543210");
    let config = ParallelConfig {
        max_concurrency: 8,
        retry: retries(3, 200),
        ..Default::default()
    };
    let wrong = OpenAiOptions {
        api_key_env: "PAGENT_TEST_WRONG_KEY".into(),
        ..options(&mock)
    };
    let exec = ParallelAgentExecutor::new(config.clone(), agent(wrong)).unwrap();
    let t = Instant::now();
    let r = &run(&exec, vec!["hello".into()])[0];
    let took = t.elapsed();
    assert_eq!(r.outcome, Outcome::Failed);
    assert_eq!(r.attempts, 1, "a 401 is not retried");
    let e = r.error.as_deref().unwrap();
    println!("401 after {took:?}: {e}");
    assert!(
        e.contains("401") && e.contains("Incorrect API key provided"),
        "{e}"
    );
    assert!(!e.contains("sk-wrong-key-9876543210"), "{e}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(u(&mock.stats()["requests"]), 1);

    // 400, 403 and 404 fail at once too (with the right key).
    std::env::set_var("PAGENT_TEST_RIGHT_KEY", "sk-right-key-0123456789");
    let right = OpenAiOptions {
        api_key_env: "PAGENT_TEST_RIGHT_KEY".into(),
        ..options(&mock)
    };
    let exec = ParallelAgentExecutor::new(config, agent(right)).unwrap();
    let rs = run(
        &exec,
        ["400", "403", "404"]
            .iter()
            .map(|s| format!("[status={s}] x"))
            .collect(),
    );
    for (r, code) in rs.iter().zip(["400", "403", "404"]) {
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.attempts, 1);
        let e = r.error.as_deref().unwrap();
        assert!(e.contains(code) && e.contains("mock: status"), "{e}");
    }
    assert_eq!(u(&mock.stats()["requests"]), 4);
}

#[test]
fn the_api_key_is_in_no_output() {
    const KEY: &str = "sk-test-SECRET-5f2a9c1e77d04b3a";
    let mock = Mock::start(&["--require-key", KEY]);
    std::env::set_var("PAGENT_TEST_SECRET_KEY", KEY);
    let config = ParallelConfig {
        max_concurrency: 8,
        retry: retries(1, 1),
        ..Default::default()
    };
    let opts = OpenAiOptions {
        api_key_env: "PAGENT_TEST_SECRET_KEY".into(),
        ..options(&mock)
    };
    let a = OpenAiAgent::new(opts).unwrap();
    assert!(!format!("{a:?}").contains(KEY));
    let exec = ParallelAgentExecutor::new(config, Arc::new(a)).unwrap();
    let rs = run(
        &exec,
        vec![
            "plain".into(),
            "[echo-key] the server repeats the key in a 401".into(),
            "[echo-key][status=500] and in a retried 500".into(),
            "[echo-request] what did you get?".into(),
        ],
    );
    // The server requires the key: the plain question proves it was sent.
    assert!(rs[0].success, "{:?}", rs[0].error);
    assert!(
        rs[3].success
            && rs[3]
                .answer
                .as_deref()
                .unwrap()
                .contains("\"has_authorization\":true")
    );
    assert_eq!(rs[2].attempts, 2);
    for r in &rs[1..3] {
        let e = r.error.as_deref().unwrap();
        assert!(e.contains("Bearer [redacted]"), "{e}");
    }
    let everything = format!("{rs:?}\n{}", exec.metrics_json());
    assert!(!everything.contains(KEY), "the key leaked:\n{everything}");
    assert!(!everything.contains("5f2a9c1e77d04b3a"));
}

#[test]
fn a_pool_of_five_models_reaches_consensus_and_early_stop_saves_calls() {
    let mock = Mock::start(&["--latency-ms", "20"]);
    let vote = "[vote=Paris:0.75|Lyon:0.15|Nice:0.10]";
    // The mock's draws are a stable hash of (model, prompt): for this prompt voters 0-3
    // say Paris and voter 4 says Lyon; for the second, two say Paris and two Nice.
    let agreed = format!("{vote} What city is France's capital?");
    let split = format!("{vote} Name the capital of France.");
    let pool = |early_stop: bool, max_concurrency: usize| {
        let agents = (0..5)
            .map(|i| {
                agent(OpenAiOptions {
                    model: format!("voter-{i}"),
                    ..options(&mock)
                })
            })
            .collect();
        let config = ParallelConfig {
            max_concurrency,
            consensus_threshold: 0.6,
            consensus_early_stop: early_stop,
            ..Default::default()
        };
        ParallelAgentExecutor::new_pool(config, agents).unwrap()
    };
    let requests = || u(&mock.stats()["requests"]);

    let full = block_on(
        "test",
        pool(false, 5).execute_with_consensus(agreed.clone(), 5),
    )
    .unwrap()
    .unwrap();
    println!(
        "all five: {:?} {}/{} reached {} tally {:?}",
        full.answer, full.votes, full.counted, full.reached, full.tally
    );
    assert_eq!(requests(), 5);
    assert_eq!((full.votes, full.counted), (4, 5));
    assert!(full.reached);
    assert_eq!(full.answer.as_deref(), Some("Paris"));
    // Five models, five agent ids.
    let mut ids: Vec<usize> = full.results.iter().map(|r| r.agent_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);

    let split = block_on("test", pool(false, 5).execute_with_consensus(split, 5))
        .unwrap()
        .unwrap();
    println!("split: {:?} tally {:?}", split.answer, split.tally);
    assert!(!split.reached, "a 2-2-1 split is no consensus");
    assert!((split.confidence - 0.4).abs() < 1e-9);
    assert_eq!(requests(), 10);

    // One call at a time: three votes for Paris settle it (3/5 >= 0.6 whatever the rest
    // say), so the round stops before every voter has asked.
    let early = block_on("test", pool(true, 1).execute_with_consensus(agreed, 5))
        .unwrap()
        .unwrap();
    let more = requests() - 10;
    println!(
        "early stop: {:?} {}/{} reached {} after {more} requests",
        early.answer, early.votes, early.counted, early.reached
    );
    assert!(early.early_stopped);
    assert!(early.reached);
    assert_eq!(early.answer.as_deref(), Some("Paris"));
    assert!(more < 5, "early stop sent {more} requests for 5 voters");
}

#[test]
fn bad_bodies_timeouts_and_refused_connections() {
    let mock = Mock::start(&[]);
    let config = ParallelConfig {
        max_concurrency: 8,
        retry: retries(1, 1),
        ..Default::default()
    };
    let opts = OpenAiOptions {
        request_timeout: Duration::from_millis(1000),
        ..options(&mock)
    };
    let exec = ParallelAgentExecutor::new(config.clone(), agent(opts)).unwrap();
    let rs = run(
        &exec,
        vec![
            "[malformed] a".into(),
            "[huge=5000000] b".into(),
            "[slow-body=5000] c".into(),
            "[slow-body=100] d".into(),
        ],
    );
    let err = |r: &AgentResult| r.error.clone().unwrap_or_default();
    assert_eq!(rs[0].outcome, Outcome::Failed);
    assert_eq!(rs[0].attempts, 1, "a malformed body is not retried");
    assert!(
        err(&rs[0]).contains("malformed response body"),
        "{}",
        err(&rs[0])
    );
    assert_eq!(rs[1].attempts, 1);
    assert!(err(&rs[1]).contains("too large"), "{}", err(&rs[1]));
    assert_eq!(rs[2].attempts, 2, "a timeout is retried");
    assert!(err(&rs[2]).contains("timed out"), "{}", err(&rs[2]));
    assert!(rs[3].success, "a slow but timely body is read whole");
    let attempts: u32 = rs.iter().map(|r| r.attempts).sum();
    assert_eq!(u(&mock.stats()["requests"]), u64::from(attempts));

    // Nobody listens: retryable, "cannot connect".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = OpenAiOptions {
        base_url: format!("http://127.0.0.1:{port}/v1"),
        ..options(&mock)
    };
    let exec = ParallelAgentExecutor::new(config, agent(closed)).unwrap();
    let r = &run(&exec, vec!["x".into()])[0];
    assert_eq!(r.attempts, 2);
    assert!(err(r).contains("cannot connect"), "{}", err(r));
}

#[test]
fn the_request_carries_template_system_prompt_and_headers() {
    let mock = Mock::start(&[]);
    let opts = OpenAiOptions {
        system_prompt: Some("Be brief.".into()),
        user_template: "Q: {question} (again: {question})".into(),
        temperature: Some(0.5),
        max_tokens: Some(33),
        headers: vec![("x-team".into(), "agents".into())],
        ..options(&mock)
    };
    let exec = ParallelAgentExecutor::new(ParallelConfig::default(), agent(opts)).unwrap();
    let r = &run(&exec, vec!["[echo-request] hi".into()])[0];
    let seen: Value = serde_json::from_str(r.answer.as_deref().unwrap()).unwrap();
    assert_eq!(seen["model"], "mock-1");
    assert_eq!(seen["messages"][0]["role"], "system");
    assert_eq!(seen["messages"][0]["content"], "Be brief.");
    assert_eq!(seen["messages"][1]["role"], "user");
    assert_eq!(
        seen["messages"][1]["content"],
        "Q: [echo-request] hi (again: [echo-request] hi)"
    );
    assert_eq!(seen["temperature"], 0.5);
    assert_eq!(seen["max_tokens"], 33);
    assert_eq!(seen["headers"]["x-team"], "agents");
    assert_eq!(seen["has_authorization"], false);
    let usage = r.usage.unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
}

#[test]
fn tokens_per_minute_budget_delays_what_does_not_fit() {
    let mock = Mock::start(&[]);
    // 6,000 tokens a minute = 100 a second. Each call reserves ~3,003 (max_tokens + the
    // prompt / 4): the first fits in the full bucket, the second is ~6 tokens short...
    // plus 3,000 short of the rest of the first: it waits about 1 s.
    let opts = OpenAiOptions {
        max_tokens: Some(3_050),
        tokens_per_minute: Some(6_000),
        ..options(&mock)
    };
    let config = ParallelConfig {
        max_concurrency: 2,
        ..Default::default()
    };
    let exec = ParallelAgentExecutor::new(config, agent(opts)).unwrap();
    // Slow answers, so the first call cannot settle (and hand back the tokens it did
    // not use) before the second reserves, however the two tasks get scheduled.
    let rs = run(
        &exec,
        vec![
            "[tag=t][latency=2000] a".into(),
            "[tag=t][latency=2000] b".into(),
        ],
    );
    assert!(rs.iter().all(|r| r.success));
    let t = Mock::starts(&mock.stats(), "t");
    let gap = Duration::from_micros(t[1] - t[0]);
    println!("second call waited {gap:?} for its token budget");
    assert!(gap >= Duration::from_millis(900), "{gap:?}");
    assert!(gap < Duration::from_secs(5), "{gap:?}");
}

// ---------------------------------------------------------------------------------------
// The same agent through the C ABI, as a host drives it.

mod c_abi {
    use super::*;
    use parallel_agents_ffi::agent::*;
    use parallel_agents_ffi::config::*;
    use parallel_agents_ffi::executor::*;
    use parallel_agents_ffi::openai::*;
    use parallel_agents_ffi::results::*;
    use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

    fn last_error() -> String {
        unsafe { CStr::from_ptr(pagent_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    #[test]
    fn options_reject_bad_values_with_a_status_and_a_message() {
        use pagent_status::*;
        let o = pagent_openai_options_new();
        let bad_url = c("ftp://example.com");
        assert_eq!(
            pagent_openai_options_set_base_url(o, bad_url.as_ptr()),
            PAGENT_ERR_INVALID_ARG
        );
        assert!(last_error().contains("base_url"), "{}", last_error());
        let no_host = c("http:///v1");
        assert_eq!(
            pagent_openai_options_set_base_url(o, no_host.as_ptr()),
            PAGENT_ERR_INVALID_ARG
        );
        let t = c("Answer this");
        assert_eq!(
            pagent_openai_options_set_user_template(o, t.as_ptr()),
            PAGENT_ERR_INVALID_ARG
        );
        assert!(last_error().contains("{question}"), "{}", last_error());
        assert_eq!(
            pagent_openai_options_set_base_url(o, ptr::null()),
            PAGENT_ERR_NULL
        );
        assert_eq!(
            pagent_openai_options_set_temperature(o, f64::NAN),
            PAGENT_ERR_INVALID_ARG
        );
        assert_eq!(
            pagent_openai_options_set_max_tokens(o, 0),
            PAGENT_ERR_INVALID_ARG
        );
        let (name, value) = (c("bad name"), c("v"));
        assert_eq!(
            pagent_openai_options_add_header(o, name.as_ptr(), value.as_ptr()),
            PAGENT_ERR_INVALID_ARG
        );
        assert_eq!(
            pagent_openai_options_set_request_timeout_ms(o, 0),
            PAGENT_ERR_INVALID_ARG
        );
        assert_eq!(
            pagent_openai_options_set_model(ptr::null_mut(), c("m").as_ptr()),
            PAGENT_ERR_NULL
        );
        let mut a: *mut pagent_agent = 1usize as *mut pagent_agent;
        assert_eq!(pagent_agent_openai(o, ptr::null_mut()), PAGENT_ERR_NULL);
        // The defaults are valid: this makes an agent (it would call api.openai.com).
        assert_eq!(pagent_agent_openai(o, &mut a), PAGENT_OK);
        assert!(!a.is_null());
        pagent_agent_free(a);
        pagent_openai_options_free(o);
        pagent_openai_options_free(ptr::null_mut());
    }

    #[test]
    fn a_batch_through_the_c_entry_points_reports_tokens() {
        use pagent_status::*;
        let mock = Mock::start(&["--latency-ms", "5"]);
        let o = pagent_openai_options_new();
        let url = c(&mock.url());
        assert_eq!(
            pagent_openai_options_set_base_url(o, url.as_ptr()),
            PAGENT_OK
        );
        assert_eq!(
            pagent_openai_options_set_model(o, c("mock-c").as_ptr()),
            PAGENT_OK
        );
        assert_eq!(
            pagent_openai_options_set_api_key_env(o, c("").as_ptr()),
            PAGENT_OK
        );
        let t = c("In one word: {question}");
        assert_eq!(
            pagent_openai_options_set_user_template(o, t.as_ptr()),
            PAGENT_OK
        );
        assert_eq!(
            pagent_openai_options_set_system_prompt(o, c("Be brief.").as_ptr()),
            PAGENT_OK
        );
        assert_eq!(pagent_openai_options_set_max_tokens(o, 16), PAGENT_OK);
        let (n, v) = (c("x-host"), c("rust-test"));
        assert_eq!(
            pagent_openai_options_add_header(o, n.as_ptr(), v.as_ptr()),
            PAGENT_OK
        );
        let mut agent: *mut pagent_agent = ptr::null_mut();
        assert_eq!(
            pagent_agent_openai(o, &mut agent),
            PAGENT_OK,
            "{}",
            last_error()
        );
        pagent_openai_options_free(o);

        let config = pagent_config_new();
        assert_eq!(pagent_config_set_max_concurrency(config, 32), PAGENT_OK);
        let mut exec: *mut pagent_executor = ptr::null_mut();
        assert_eq!(pagent_executor_new(config, agent, &mut exec), PAGENT_OK);
        pagent_config_free(config);
        pagent_agent_free(agent);

        let qs: Vec<CString> = (0..100).map(|i| c(&format!("question {i}"))).collect();
        let ptrs: Vec<*const c_char> = qs.iter().map(|q| q.as_ptr()).collect();
        let mut results: *mut pagent_results = ptr::null_mut();
        assert_eq!(
            pagent_execute(exec, ptrs.as_ptr(), ptrs.len(), &mut results),
            PAGENT_OK,
            "{}",
            last_error()
        );
        assert_eq!(pagent_results_len(results), 100);
        let (mut prompt, mut completion) = (0, 0);
        for i in 0..100 {
            let mut r: *const pagent_result = ptr::null();
            assert_eq!(pagent_results_get(results, i, &mut r), PAGENT_OK);
            let answer = unsafe { CStr::from_ptr(pagent_result_answer(r)) };
            assert_eq!(
                answer.to_str().unwrap(),
                format!("mock answer to: In one word: question {i}")
            );
            assert!(pagent_result_prompt_tokens(r) > 0);
            assert!(pagent_result_completion_tokens(r) > 0);
            prompt += pagent_result_prompt_tokens(r);
            completion += pagent_result_completion_tokens(r);
        }
        pagent_results_free(results);
        let mut m = std::mem::MaybeUninit::uninit();
        assert_eq!(pagent_executor_metrics(exec, m.as_mut_ptr()), PAGENT_OK);
        let m = unsafe { m.assume_init() };
        assert_eq!((m.prompt_tokens, m.completion_tokens), (prompt, completion));
        let stats = mock.stats();
        assert_eq!(u(&stats["prompt_tokens"]), prompt);
        assert_eq!(u(&stats["requests"]), 100);
        pagent_executor_free(exec);
    }
}
