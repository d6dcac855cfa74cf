//! Python callables and DSPy programs as in-process agents (feature `python`).
//!
//! The Python side is in `tests/python/`. DSPy tests need dspy installed in the
//! virtualenv named by `VIRTUAL_ENV` (default: `.venv` in the package, if it exists; see
//! `requirements-dev.txt`); without it they print a SKIP line and pass, except under CI (`CI` set), where they fail.
//!
//! Every test holds one lock: the interpreter, its GIL and the machine's two cores are
//! shared, and the throughput tests must not compete with the others.

#![cfg(feature = "python")]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use parallel_agents::agent::python::{PythonAgent, PythonOptions};
use parallel_agents::{Agent, AgentResult, Error, Outcome, ParallelAgentExecutor, ParallelConfig};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Points the interpreter at `tests/python` and the dev virtualenv, once, before any test
/// starts it; then serialises the tests.
fn setup() -> MutexGuard<'static, ()> {
    static ENV: Once = Once::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    ENV.call_once(|| {
        let venv = manifest_dir().join("../../.venv");
        if std::env::var_os("VIRTUAL_ENV").is_none() && venv.is_dir() {
            std::env::set_var("VIRTUAL_ENV", &venv);
        }
        std::env::set_var("PAGENT_PYTHONPATH", manifest_dir().join("tests/python"));
    });
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A target in `tests/python/agents.py`, by file path.
fn agents(callable: &str) -> String {
    format!(
        "{}:{callable}",
        manifest_dir().join("tests/python/agents.py").display()
    )
}

fn agent(callable: &str) -> Arc<PythonAgent> {
    agent_with(callable, PythonOptions::default())
}

fn agent_with(callable: &str, options: PythonOptions) -> Arc<PythonAgent> {
    Arc::new(PythonAgent::from_target(&agents(callable), options).expect("agent loads"))
}

fn config(max_concurrency: usize, timeout: Duration) -> ParallelConfig {
    ParallelConfig {
        max_concurrency,
        agent_timeout: timeout,
        ..Default::default()
    }
}

fn run(exec: &ParallelAgentExecutor, questions: Vec<String>) -> Vec<AgentResult> {
    parallel_agents::runtime::block_on("test", exec.execute_parallel(questions))
        .expect("runtime")
        .expect("batch")
}

fn ask(agent: Arc<PythonAgent>, questions: &[&str]) -> Vec<AgentResult> {
    let exec = ParallelAgentExecutor::new(config(8, Duration::from_secs(10)), agent).unwrap();
    run(&exec, questions.iter().map(|q| q.to_string()).collect())
}

fn answers(results: &[AgentResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
            r.answer.clone().unwrap()
        })
        .collect()
}

fn load_error(target: &str, options: PythonOptions) -> String {
    match PythonAgent::from_target(target, options) {
        Err(Error::Python(m)) => m,
        Err(e) => panic!("expected Error::Python for {target:?}, got {e:?}"),
        Ok(a) => panic!("expected {target:?} to fail, got {a:?}"),
    }
}

/// Polls a sync helper that reports a counter until it reaches `want` (or 5 s pass).
fn wait_for_count(helper: &str, want: usize) -> usize {
    let probe = agent(helper);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n: usize = ask(Arc::clone(&probe), &["?"])[0]
            .answer
            .as_deref()
            .unwrap()
            .parse()
            .unwrap();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plain_sync_function() {
    let _g = setup();
    let a = agent("echo");
    assert!(!a.is_async());
    assert_eq!(a.kind(), "python");
    let r = ask(a, &["hello", "world"]);
    assert_eq!(answers(&r), ["echo 0: hello", "echo 1: world"]);
}

#[test]
fn async_def_function() {
    let _g = setup();
    let a = agent("aecho");
    assert!(a.is_async());
    assert_eq!(a.threads_in_use(), 0);
    let r = ask(a, &["hello", "world"]);
    assert_eq!(answers(&r), ["aecho 0: hello", "aecho 1: world"]);
}

#[test]
fn module_target_from_pagent_pythonpath() {
    let _g = setup();
    // `agents` resolves through PAGENT_PYTHONPATH=tests/python, and is the same module
    // object the file targets load.
    let a = PythonAgent::from_target("agents:echo", PythonOptions::default()).unwrap();
    assert_eq!(answers(&ask(Arc::new(a), &["q"])), ["echo 0: q"]);
}

#[test]
fn results_with_an_answer_field() {
    let _g = setup();
    assert_eq!(
        answers(&ask(agent("with_answer"), &["hi"])),
        ["object says hi"]
    );
    assert_eq!(
        answers(&ask(agent("awith_answer"), &["hi"])),
        ["async object says hi"]
    );
    assert_eq!(answers(&ask(agent("as_dict"), &["hi"])), ["HI"]);
    let custom = PythonOptions {
        answer_field: "other".into(),
        ..Default::default()
    };
    assert_eq!(
        answers(&ask(agent_with("custom_field", custom), &["hi"])),
        ["custom hi"]
    );
    assert_eq!(answers(&ask(agent("number"), &["a", "b"])), ["0", "2"]);
    // A sync function returning a coroutine: awaited on the event loop.
    assert_eq!(
        answers(&ask(agent("returns_coroutine"), &["x"])),
        ["aecho 0: x"]
    );
    // An object whose __call__ is async.
    let a = agent("async_callable");
    assert!(a.is_async());
    assert_eq!(answers(&ask(a, &["x"])), ["async callable 0"]);
    // None is a failure, not the answer "None".
    let r = ask(agent("returns_none"), &["x"]);
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert!(r[0].error.as_deref().unwrap().contains("NoneType"), "{r:?}");
}

#[test]
fn factory_products_are_called_with_the_question_keyword() {
    let _g = setup();
    let a = agent_with(
        "make_echo",
        PythonOptions {
            factory: true,
            ..Default::default()
        },
    );
    assert!(!a.is_async());
    assert_eq!(answers(&ask(a, &["q1", "q2"])), ["made: q1", "made: q2"]);
}

#[test]
fn exceptions_become_failed_results_with_type_and_message() {
    let _g = setup();
    let r = ask(agent("boom"), &["why"]);
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert!(!r[0].success);
    let e = r[0].error.as_deref().unwrap();
    assert!(e.starts_with("ValueError: bad question 'why'"), "{e}");
    assert!(e.contains("agents.py:"), "location missing: {e}");
    assert!(e.contains("in boom"), "function missing: {e}");

    let r = ask(agent("aboom"), &["a", "b"]);
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.outcome, Outcome::Failed);
        let e = r.error.as_deref().unwrap();
        let want = format!("agents.AgentFailure: async failure for agent {i}");
        assert!(e.starts_with(&want), "{e}");
    }

    // ConnectionError is retryable: with retries, the call is attempted again.
    let mut cfg = config(2, Duration::from_secs(5));
    cfg.retry.max_retries = 2;
    cfg.retry.backoff_base = Duration::from_millis(1);
    cfg.retry.backoff_cap = Duration::from_millis(2);
    let exec = ParallelAgentExecutor::new(cfg, agent("flaky_connection")).unwrap();
    let r = run(&exec, vec!["x".into()]);
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert_eq!(r[0].attempts, 3, "{r:?}");
    assert!(r[0]
        .error
        .as_deref()
        .unwrap()
        .starts_with("ConnectionError: upstream reset"));
}

#[test]
fn bad_targets_fail_at_creation() {
    let _g = setup();
    let d = PythonOptions::default;
    let m = load_error("no_such_module_xyz:f", d());
    assert!(
        m.contains("ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        "{m}"
    );
    assert!(m.contains("no_such_module_xyz:f"), "target not named: {m}");

    let m = load_error(&agents("nope"), d());
    assert!(m.contains("AttributeError") && m.contains("'nope'"), "{m}");

    let m = load_error("tests/python/missing_file.py:f", d());
    assert!(m.contains("FileNotFoundError: no such file"), "{m}");

    let m = load_error("agents_without_a_colon", d());
    assert!(
        m.contains("ValueError") && m.contains("package.module:callable"),
        "{m}"
    );

    let m = load_error(&agents("NOT_CALLABLE"), d());
    assert!(m.contains("TypeError") && m.contains("not callable"), "{m}");

    let factory = PythonOptions {
        factory: true,
        ..d()
    };
    let m = load_error(&agents("broken_factory"), factory);
    assert!(m.contains("RuntimeError: factory cannot build"), "{m}");

    let bad = PythonOptions {
        max_threads: Some(0),
        ..d()
    };
    assert!(matches!(
        PythonAgent::from_target(&agents("echo"), bad),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn timed_out_sync_call_keeps_its_slot_until_python_returns() {
    let _g = setup();
    let before = wait_for_count("slow_sync_finished_count", 0);
    let a = agent("slow_sync");
    let exec = ParallelAgentExecutor::new(
        config(4, Duration::from_millis(200)),
        Arc::clone(&a) as Arc<_>,
    )
    .unwrap();
    let t = Instant::now();
    let r = run(&exec, vec!["1.0".into()]);
    assert_eq!(r[0].outcome, Outcome::TimedOut, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    // The Python function is still sleeping on its thread, which stays counted...
    assert_eq!(a.threads_in_use(), 1);
    // ...until it returns; then the thread is free again.
    assert_eq!(
        wait_for_count("slow_sync_finished_count", before + 1),
        before + 1
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while a.threads_in_use() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.threads_in_use(), 0);
}

#[test]
fn timed_out_async_call_is_cancelled_in_python() {
    let _g = setup();
    let before = wait_for_count("cancelled_count", 0);
    let exec =
        ParallelAgentExecutor::new(config(8, Duration::from_millis(200)), agent("slow_async"))
            .unwrap();
    let t = Instant::now();
    let r = run(&exec, vec!["30".into(); 3]);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    for r in &r {
        assert_eq!(r.outcome, Outcome::TimedOut, "{r:?}");
    }
    // The asyncio tasks saw CancelledError.
    assert_eq!(wait_for_count("cancelled_count", before + 3), before + 3);
}

/// The throughput floor: ideal / measured wall time, best of five runs.
///
/// At 1,000 calls in flight on one asyncio loop, every wave of 1,000 completions and
/// restarts is processed serially on that loop, so asyncio's own per-task cost (some
/// 10-20 µs on a 2-core machine) delays each wave: plain asyncio, even at its cheapest,
/// reaches only about 0.9-0.95 on the same workload here, less when the machine is busy;
/// so the async test also measures that baseline (see [`ASYNCIO_PARITY`]). An optimised
/// build is held to 0.9 (`cargo test --release`); an unoptimised one spends several more
/// µs per call in Rust and pyo3 on that loop, so debug builds are held to 0.7, still far
/// above what a lost wake-up or a GIL held while waiting would give.
const MIN_EFFICIENCY: f64 = if cfg!(debug_assertions) { 0.7 } else { 0.9 };

/// Runs `n` calls of `agent` (each waiting `latency`) at `in_flight` concurrency, after a
/// warm-up, five times; returns the best ideal / measured wall time (the best run is the
/// one least disturbed by other work on the machine).
fn efficiency(agent: Arc<PythonAgent>, n: usize, in_flight: usize, latency: Duration) -> f64 {
    let exec =
        ParallelAgentExecutor::new(config(in_flight, Duration::from_secs(30)), agent).unwrap();
    let warm = run(&exec, vec!["warm".into(); in_flight]);
    assert!(warm.iter().all(|r| r.success));
    let ideal = latency * n.div_ceil(in_flight) as u32;
    let mut best = 0.0f64;
    for trial in 0..5 {
        let t = Instant::now();
        let r = run(&exec, (0..n).map(|i| i.to_string()).collect());
        let measured = t.elapsed();
        assert!(r.iter().all(|r| r.success), "failures in the timed batch");
        assert_eq!(
            r[n - 1].answer.as_deref(),
            Some((n - 1).to_string().as_str())
        );
        let eff = ideal.as_secs_f64() / measured.as_secs_f64();
        println!(
            "python_io trial={trial} n={n} in_flight={in_flight} latency_ms={} ideal_s={:.3} \
             measured_s={:.3} efficiency={eff:.3} debug={}",
            latency.as_millis(),
            ideal.as_secs_f64(),
            measured.as_secs_f64(),
            cfg!(debug_assertions)
        );
        best = best.max(eff);
    }
    best
}

#[test]
fn io_bound_sync_agent_at_100_in_flight() {
    let _g = setup();
    let a = agent_with(
        "io_sync",
        PythonOptions {
            max_threads: Some(100),
            ..Default::default()
        },
    );
    let eff = efficiency(a, 500, 100, Duration::from_millis(100));
    assert!(
        eff >= MIN_EFFICIENCY,
        "efficiency {eff:.3} < {MIN_EFFICIENCY}"
    );
}

/// The most `io_sync_counted` calls Python saw running at once since the last look.
fn take_peak_running() -> usize {
    answers(&ask(agent("take_peak_running"), &["?"]))[0]
        .parse()
        .unwrap()
}

/// Sync callables get as many threads as the executor runs calls (issue 11: a fixed 64
/// held 100 in flight to 0.62 of ideal). Python itself counts the calls running at once,
/// so a low limit shows even when a busy machine spoils the timing.
#[test]
fn sync_threads_follow_the_executors_concurrency() {
    let _g = setup();
    let a = agent("io_sync_counted");
    assert_eq!(a.thread_limit(), 1, "before any executor");
    take_peak_running();
    let eff = efficiency(Arc::clone(&a), 500, 100, Duration::from_millis(100));
    assert_eq!(take_peak_running(), 100, "calls running at once in Python");
    assert!(eff >= 0.9, "efficiency {eff:.3} < 0.9");
    assert_eq!(a.thread_limit(), 100);

    // The largest concurrency asked for wins; the blocking pool's size caps it.
    let exec =
        |n| ParallelAgentExecutor::new(config(n, Duration::from_secs(5)), Arc::clone(&a) as _);
    let _small = exec(8).unwrap();
    assert_eq!(a.thread_limit(), 100);
    let _huge = exec(100_000).unwrap();
    assert_eq!(a.thread_limit(), 512, "the blocking pool's size");
}

#[test]
fn explicit_max_threads_is_the_thread_limit() {
    let _g = setup();
    let a = agent_with(
        "io_sync_counted",
        PythonOptions {
            max_threads: Some(10),
            ..Default::default()
        },
    );
    assert_eq!(a.thread_limit(), 10);
    let exec =
        ParallelAgentExecutor::new(config(100, Duration::from_secs(30)), Arc::clone(&a) as _)
            .unwrap();
    assert_eq!(a.thread_limit(), 10, "an executor does not change it");
    take_peak_running();
    let r = run(&exec, (0..30).map(|i| i.to_string()).collect());
    assert!(r.iter().all(|r| r.success), "{r:?}");
    assert_eq!(take_peak_running(), 10, "calls running at once in Python");
}

/// When the async agent misses [`MIN_EFFICIENCY`] in an optimised build, it must still
/// reach this fraction of plain asyncio's best on the same workload, measured in the same
/// test (a busy machine slows both alike; our bridge adds a task per call and a hand-off
/// to Tokio, which costs some 5-10% against asyncio's leanest pattern).
const ASYNCIO_PARITY: f64 = 0.85;

#[test]
fn io_bound_async_agent_at_1000_in_flight() {
    let _g = setup();
    let eff = efficiency(agent("io_async"), 4000, 1000, Duration::from_millis(100));
    // Plain asyncio at its cheapest on the same workload, best of five as well.
    let probe = agent("asyncio_baseline");
    let baseline = (0..5)
        .map(|_| {
            let e: f64 = answers(&ask(Arc::clone(&probe), &["4000 1000 0.1"]))[0]
                .parse()
                .unwrap();
            println!(
                "python_io asyncio_baseline n=4000 in_flight=1000 latency_ms=100 \
                 efficiency={e:.3}"
            );
            e
        })
        .fold(0.0f64, f64::max);
    if eff >= MIN_EFFICIENCY {
        return;
    }
    assert!(
        !cfg!(debug_assertions) && eff >= ASYNCIO_PARITY * baseline,
        "efficiency {eff:.3} < {MIN_EFFICIENCY}, and < {ASYNCIO_PARITY} of plain asyncio's \
         {baseline:.3} on this machine"
    );
    println!(
        "NOTE: efficiency {eff:.3} is below {MIN_EFFICIENCY} (plain asyncio reached \
         {baseline:.3} here); accepted as >= {ASYNCIO_PARITY} of plain asyncio"
    );
}

// --- DSPy ------------------------------------------------------------------------------

fn dspy_target(callable: &str) -> String {
    format!(
        "{}:{callable}",
        manifest_dir().join("tests/python/dspy_agents.py").display()
    )
}

/// The DSPy agent, or None (after printing SKIP) if dspy is not installed.
fn dspy_agent(callable: &str, options: PythonOptions) -> Option<Arc<PythonAgent>> {
    match PythonAgent::from_target(&dspy_target(callable), options) {
        Ok(a) => Some(Arc::new(a)),
        Err(Error::Python(m)) if m.contains("No module named 'dspy'") => {
            // CI installs requirements-dev.txt, so there the skip would hide a broken step.
            assert!(
                std::env::var_os("CI").is_none(),
                "dspy is not importable under CI: {m}"
            );
            println!(
                "SKIP: dspy is not importable (install requirements-dev.txt into .venv and \
                 set VIRTUAL_ENV): {}",
                m.lines().next().unwrap_or_default()
            );
            None
        }
        Err(e) => panic!("loading {callable}: {e}"),
    }
}

const CAPITALS: [(&str, &str); 4] = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Kenya?", "Nairobi"),
];

fn dspy_batch(agent: Arc<PythonAgent>) {
    let exec = ParallelAgentExecutor::new(config(8, Duration::from_secs(30)), agent).unwrap();
    let questions: Vec<String> = (0..40).map(|i| CAPITALS[i % 4].0.to_string()).collect();
    let r = run(&exec, questions);
    assert_eq!(r.len(), 40);
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        assert_eq!(r.answer.as_deref(), Some(CAPITALS[i % 4].1));
    }
}

#[test]
fn dspy_predict_answers_a_batch_through_acall() {
    let _g = setup();
    let options = PythonOptions {
        factory: true,
        ..Default::default()
    };
    let Some(a) = dspy_agent("make_predict", options) else {
        return;
    };
    assert!(a.is_async(), "a DSPy module should run through acall");
    dspy_batch(a);
}

#[test]
fn dspy_predict_answers_a_batch_on_threads() {
    let _g = setup();
    let options = PythonOptions {
        factory: true,
        prefer_async: false,
        ..Default::default()
    };
    let Some(a) = dspy_agent("make_predict", options) else {
        return;
    };
    assert!(!a.is_async());
    dspy_batch(a);
}

#[test]
fn dspy_module_subclass_is_instantiated() {
    let _g = setup();
    let Some(a) = dspy_agent("CapitalProgram", PythonOptions::default()) else {
        return;
    };
    dspy_batch(a);
}

#[test]
fn five_dspy_agents_reach_consensus() {
    let _g = setup();
    let options = PythonOptions {
        factory: true,
        ..Default::default()
    };
    let Some(a) = dspy_agent("make_voters", options) else {
        return;
    };
    // Every vote counted: no early stop once the winner is certain.
    let cfg = ParallelConfig {
        consensus_early_stop: false,
        ..config(5, Duration::from_secs(30))
    };
    let exec = ParallelAgentExecutor::new(cfg, a).unwrap();
    let c = parallel_agents::runtime::block_on(
        "test",
        exec.execute_with_consensus("What is the capital of France?".into(), 5),
    )
    .unwrap()
    .unwrap();
    assert_eq!(c.results.len(), 5);
    assert!(c.results.iter().all(|r| r.success), "{:?}", c.results);
    assert_eq!(c.counted, 5);
    assert_eq!(c.votes, 4, "{:?}", c.tally);
    assert!((c.confidence - 0.8).abs() < 1e-9);
    assert!(c.reached);
    let answer = c.answer.unwrap();
    assert_eq!(parallel_agents::normalize_answer(&answer), "paris");
}
