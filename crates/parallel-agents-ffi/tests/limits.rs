//! Limits and bounds as a C host meets them through the ABI: rate limits a timer cannot
//! hold, the consensus voter bound, empty answers, the bounded metrics cache, saturating
//! token sums, and C/C++ tests that use every constant of the header.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::time::{Duration, Instant};

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A zero-latency mock whose every voter answers differently ("Agent {id} answer ...").
fn distinct_mock() -> *mut pagent_agent {
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    let mut a = ptr::null_mut();
    assert_eq!(pagent_agent_mock(&o, &mut a), pagent_status::PAGENT_OK);
    a
}

fn executor(agent: *mut pagent_agent, config: *const pagent_config) -> *mut pagent_executor {
    let mut e = ptr::null_mut();
    assert_eq!(
        pagent_executor_new(config, agent, &mut e),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    e
}

#[test]
fn consensus_over_twenty_thousand_distinct_answers_is_linear() {
    let agent = distinct_mock();
    let cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_max_concurrency(cfg, 64),
        pagent_status::PAGENT_OK
    );
    let exec = executor(agent, cfg);
    let n = 20_000;
    let t = Instant::now();
    let mut c = ptr::null_mut();
    assert_eq!(
        pagent_run_consensus(exec, c"q".as_ptr(), n, &mut c),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let took = t.elapsed();
    eprintln!("20,000 distinct voters: {took:?}");
    assert_eq!(pagent_consensus_counted(c), n);
    assert_eq!(pagent_consensus_votes(c), 1);
    assert!(!pagent_consensus_reached(c));
    assert_eq!(pagent_results_len(pagent_consensus_results(c)), n);
    // Quadratic tallying took 11.7 s (release) here; linear takes a fraction of a second
    // even in a debug build on a busy machine.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    pagent_consensus_free(c);
    pagent_executor_free(exec);
    pagent_config_free(cfg);
    pagent_agent_free(agent);
}

#[test]
fn rate_limits_a_timer_cannot_hold_are_refused_by_the_setters_naming_the_field() {
    // Each of these was accepted, then panicked at executor creation or in a worker.
    for (rate, burst) in [
        (1e-13, 1),
        (1e-12, u32::MAX),
        (1e-20, 1),
        (5e-324, 1),
        (f64::MIN_POSITIVE, u32::MAX),
        (1e-7, 2),
        (-1.0, 1),
        (f64::NAN, 1),
        (f64::INFINITY, 1),
    ] {
        let cfg = pagent_config_new();
        assert_eq!(
            pagent_config_set_rate_limit(cfg, rate, burst),
            pagent_status::PAGENT_ERR_CONFIG,
            "{rate:e}/s burst {burst}"
        );
        let e = last_error();
        assert!(e.contains("rate_limit") && e.contains("per_second"), "{e}");
        pagent_config_free(cfg);
        let mut l = ptr::null_mut();
        assert_eq!(
            pagent_rate_limiter_new(rate, burst, &mut l),
            pagent_status::PAGENT_ERR_CONFIG
        );
        assert!(l.is_null());
        assert!(last_error().contains("per_second"), "{}", last_error());
    }
    // The slowest accepted rate with the largest burst: a full bucket, so calls start
    // at once, through a config's own limiter and through a shared one.
    let slowest = 1.0 / 2_592_000.0;
    let agent = distinct_mock();
    let cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_rate_limit(cfg, slowest, u32::MAX),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let mut l = ptr::null_mut();
    assert_eq!(
        pagent_rate_limiter_new(slowest, u32::MAX, &mut l),
        pagent_status::PAGENT_OK
    );
    let shared_cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_shared_rate_limiter(shared_cfg, l),
        pagent_status::PAGENT_OK
    );
    for c in [cfg, shared_cfg] {
        let exec = executor(agent, c);
        let qs = [c"a".as_ptr(), c"b".as_ptr(), c"c".as_ptr()];
        let mut rs = ptr::null_mut();
        assert_eq!(
            pagent_execute(exec, qs.as_ptr(), 3, &mut rs),
            pagent_status::PAGENT_OK
        );
        for i in 0..3 {
            let mut r = ptr::null();
            assert_eq!(pagent_results_get(rs, i, &mut r), pagent_status::PAGENT_OK);
            assert_eq!(pagent_result_outcome(r), pagent_outcome::PAGENT_OUTCOME_OK);
        }
        pagent_results_free(rs);
        pagent_executor_free(exec);
    }
    pagent_rate_limiter_free(l);
    pagent_config_free(shared_cfg);
    pagent_config_free(cfg);
    pagent_agent_free(agent);
}

#[test]
fn consensus_refuses_more_voters_than_the_documented_bound() {
    use parallel_agents_ffi::PAGENT_MAX_CONSENSUS_AGENTS;
    let agent = distinct_mock();
    let exec = executor(agent, ptr::null());
    for n in [PAGENT_MAX_CONSENSUS_AGENTS + 1, 100_000_000, usize::MAX] {
        let mut c = ptr::null_mut();
        assert_eq!(
            pagent_run_consensus(exec, c"q".as_ptr(), n, &mut c),
            pagent_status::PAGENT_ERR_INVALID_ARG
        );
        assert!(c.is_null());
        let e = last_error();
        assert!(e.contains("n_agents"), "{e}");
        assert!(e.contains(&PAGENT_MAX_CONSENSUS_AGENTS.to_string()), "{e}");
    }
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

#[test]
fn consensus_at_the_bound_starts_voters_as_permits_free_and_reports_each() {
    use parallel_agents_ffi::PAGENT_MAX_CONSENSUS_AGENTS as N;
    // Unanimous voters, early stop on: the round settles after 60% of N and every
    // voter not yet started still comes back, cancelled.
    let paris = [c"Paris".as_ptr()];
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    o.vote_answers = paris.as_ptr();
    o.n_vote_answers = 1;
    let mut agent = ptr::null_mut();
    assert_eq!(pagent_agent_mock(&o, &mut agent), pagent_status::PAGENT_OK);
    let exec = executor(agent, ptr::null());
    let mut c = ptr::null_mut();
    assert_eq!(
        pagent_run_consensus(exec, c"capital?".as_ptr(), N, &mut c),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    assert!(pagent_consensus_reached(c) && pagent_consensus_early_stopped(c));
    let rs = pagent_consensus_results(c);
    assert_eq!(pagent_results_len(rs), N);
    let mut m = parallel_agents_ffi::results::pagent_metrics::default();
    assert_eq!(pagent_results_metrics(rs, &mut m), pagent_status::PAGENT_OK);
    assert_eq!(m.total_count as usize, N);
    assert_eq!(
        (m.successful_count + m.cancelled_count) as usize,
        N,
        "{m:?}"
    );
    assert_eq!(pagent_consensus_votes(c), m.successful_count as usize);
    // Settled once no outstanding voter can change the verdict, not at the end.
    assert!(m.cancelled_count as usize >= N / 4, "{m:?}");
    pagent_consensus_free(c);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

/// Answers whitespace for even voters and "Paris" for odd ones; `user_data` non-NULL
/// makes every answer empty.
unsafe extern "C" fn empty_or_paris(
    user_data: *mut c_void,
    _q: *const c_char,
    id: usize,
    reply: *mut pagent_reply,
) -> i32 {
    let a = if !user_data.is_null() || id % 2 == 0 {
        c" \t "
    } else {
        c"Paris"
    };
    pagent_reply_set_answer(reply, a.as_ptr());
    PAGENT_CALLBACK_OK
}

#[test]
fn empty_answers_are_not_votes() {
    for (all_empty, counted, reached) in [(true, 0, false), (false, 2, true)] {
        let user = if all_empty {
            ptr::NonNull::<c_void>::dangling().as_ptr()
        } else {
            ptr::null_mut()
        };
        let mut agent = ptr::null_mut();
        assert_eq!(
            pagent_agent_callback(Some(empty_or_paris), user, None, &mut agent),
            pagent_status::PAGENT_OK
        );
        let exec = executor(agent, ptr::null());
        let mut c = ptr::null_mut();
        assert_eq!(
            pagent_run_consensus(exec, c"q".as_ptr(), 5, &mut c),
            pagent_status::PAGENT_OK
        );
        // Five agents answering "" used to report consensus reached on "".
        assert_eq!(pagent_consensus_counted(c), counted);
        assert_eq!(pagent_consensus_votes(c), counted);
        assert_eq!(pagent_consensus_reached(c), reached);
        let a = pagent_consensus_answer(c);
        if all_empty {
            assert!(a.is_null());
            assert_eq!(pagent_consensus_confidence(c), 0.0);
        } else {
            assert_eq!(unsafe { CStr::from_ptr(a) }, c"Paris");
            assert_eq!(pagent_consensus_confidence(c), 1.0);
        }
        // The calls themselves succeeded; they just carry no vote (so all-empty never
        // settles early: every voter runs).
        let rs = pagent_consensus_results(c);
        let mut m = parallel_agents_ffi::results::pagent_metrics::default();
        assert_eq!(pagent_results_metrics(rs, &mut m), pagent_status::PAGENT_OK);
        assert_eq!(m.successful_count + m.cancelled_count, 5);
        if all_empty {
            assert_eq!(m.successful_count, 5);
        }
        pagent_consensus_free(c);
        pagent_executor_free(exec);
        pagent_agent_free(agent);
    }
}

#[test]
fn the_metrics_cache_is_bounded_and_long_keys_are_stored_compactly() {
    use parallel_agents_ffi::results::pagent_metrics;
    use parallel_agents_ffi::PAGENT_METRICS_CACHE_CAPACITY as CAP;
    let agent = distinct_mock();
    let exec = executor(agent, ptr::null());
    let get = |key: &CStr| {
        let mut m = pagent_metrics::default();
        (pagent_metrics_get(exec, key.as_ptr(), &mut m), m)
    };
    // 30 distinct 10 MiB keys: these were kept whole (310 MiB RSS, a 300 MB JSON).
    let mut big = vec![b'x'; 10 << 20];
    let mut keys = Vec::new();
    for i in 0..30u64 {
        big[..8].copy_from_slice(&i.to_le_bytes().map(|b| b'a' + b % 26));
        big[(10 << 20) - 1] = b'a' + (i % 26) as u8;
        let key = std::ffi::CString::new(big.clone()).unwrap();
        let m = pagent_metrics {
            successful_count: i + 1,
            ..Default::default()
        };
        assert_eq!(
            pagent_metrics_store(exec, key.as_ptr(), &m),
            pagent_status::PAGENT_OK
        );
        keys.push(key);
    }
    let last = keys.last().unwrap();
    assert_eq!(get(last).0, pagent_status::PAGENT_OK);
    assert_eq!(get(last).1.successful_count, 30);
    // Same length and preview, another ending: another key, not a match.
    let mut other = last.as_bytes().to_vec();
    *other.last_mut().unwrap() = b'#';
    let other = std::ffi::CString::new(other).unwrap();
    assert_eq!(get(&other).0, pagent_status::PAGENT_ERR_NOT_FOUND);
    let json = pagent_executor_metrics_json(exec);
    let len = unsafe { CStr::from_ptr(json) }.to_bytes().len();
    eprintln!("metrics JSON with 30 keys of 10 MiB: {len} bytes");
    assert!(len < 100_000, "{len} bytes");
    pagent_string_free(json);
    // Past the capacity the least recently used key goes; recent ones stay exact.
    for i in 0..CAP {
        let k = std::ffi::CString::new(format!("k{i}")).unwrap();
        let m = pagent_metrics {
            attempts: i as u64,
            ..Default::default()
        };
        assert_eq!(
            pagent_metrics_store(exec, k.as_ptr(), &m),
            pagent_status::PAGENT_OK
        );
    }
    assert_eq!(get(last).0, pagent_status::PAGENT_ERR_NOT_FOUND);
    assert_eq!(get(c"k0").0, pagent_status::PAGENT_OK);
    let newest = std::ffi::CString::new(format!("k{}", CAP - 1)).unwrap();
    assert_eq!(get(&newest).1.attempts, CAP as u64 - 1);
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}

/// Answers at once, reporting `tokens` prompt and completion tokens per call.
struct Greedy(u64);

impl parallel_agents::Agent for Greedy {
    fn answer<'a>(
        &'a self,
        _q: &'a str,
        _id: usize,
    ) -> parallel_agents::BoxFuture<'a, Result<String, parallel_agents::AgentError>> {
        Box::pin(async { Ok("ok".to_owned()) })
    }

    fn answer_with_usage<'a>(
        &'a self,
        _q: &'a str,
        _id: usize,
    ) -> parallel_agents::BoxFuture<'a, Result<parallel_agents::Answer, parallel_agents::AgentError>>
    {
        Box::pin(async move {
            Ok(parallel_agents::Answer {
                text: "ok".into(),
                usage: Some(parallel_agents::TokenUsage {
                    prompt_tokens: self.0,
                    completion_tokens: self.0,
                }),
            })
        })
    }
}

#[test]
fn token_counts_that_overflow_the_sums_saturate_and_every_call_still_answers() {
    use parallel_agents::{runtime::block_on, ParallelAgentExecutor, ParallelConfig};
    let exec = ParallelAgentExecutor::new(
        ParallelConfig::default(),
        std::sync::Arc::new(Greedy(u64::MAX / 2 + 1)),
    )
    .unwrap();
    let qs: Vec<String> = (0..3).map(|i| format!("q{i}")).collect();
    let (rs, m) = block_on("t", exec.submit(qs).unwrap().finish()).unwrap();
    // The overflow panicked in debug builds and the answered calls came back not run.
    assert!(rs.iter().all(|r| r.success), "{rs:?}");
    assert_eq!((m.successful_count, m.total_count), (3, 3));
    assert_eq!((m.prompt_tokens, m.completion_tokens), (u64::MAX, u64::MAX));
    let life = exec.lifetime_metrics();
    assert_eq!((life.successful_count, life.prompt_tokens), (3, u64::MAX));
    // And again across batches, in the executor's lifetime sums.
    block_on("t", exec.execute_parallel(vec!["again".into()]))
        .unwrap()
        .unwrap();
    let life = exec.lifetime_metrics();
    assert_eq!(
        (life.successful_count, life.completion_tokens),
        (4, u64::MAX)
    );
}

#[test]
fn the_c_and_cxx_constant_tests_use_every_constant_of_the_header() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let header = read("include/parallel_agents.h");
    let mut names = Vec::new();
    for line in header.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#define ") {
            names.extend(
                rest.split_whitespace()
                    .next()
                    .filter(|n| n.starts_with("PAGENT_")),
            );
        } else if line.starts_with("PAGENT_") && line.contains(" = ") {
            names.extend(line.split_whitespace().next());
        }
    }
    names.sort_unstable();
    names.dedup();
    // 7 defines, 15 statuses, 4 outcomes at the time of writing.
    assert!(names.len() >= 26, "{names:?}");
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for file in [
        "../../examples-c/tests/constants.c",
        "../../examples-c/tests/constants.cpp",
    ] {
        let src = read(file);
        for n in &names {
            let used = src.match_indices(*n).any(|(i, _)| {
                !src[..i].ends_with(is_ident) && !src[i + n.len()..].starts_with(is_ident)
            });
            assert!(used, "{file} does not use {n}");
        }
    }
}
