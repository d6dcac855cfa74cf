//! Property test of the executor: random configurations (concurrency, timeout, retries,
//! hedging, rate limit, error budget, buffer, dedup) and random agent behaviour per
//! question (latency, failure, hang, panic while answering or before, empty answer), run
//! through every way of asking (collect, stream with a cancel point, consensus), and a
//! few runs with a shutdown at a random point (each in its own process: shutdown is
//! final). Always: every question index comes back exactly once, the metrics' counts
//! equal the results by outcome, and nothing panics out of the library.
//!
//! `PROPTEST_CASES` sets the number of cases (default 48); a failure prints a minimal
//! case.

use std::sync::Arc;
use std::time::Duration;

use parallel_agents::runtime::block_on;
use parallel_agents::{
    Agent, AgentError, AgentResult, BoxFuture, ExecutionMetrics, Outcome, ParallelAgentExecutor,
    ParallelConfig, RateLimit, RetryPolicy,
};
use proptest::prelude::*;

/// What the agent does for one question.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers after this many milliseconds.
    Answer(u8),
    /// Answers "" at once.
    Empty,
    /// Fails, retryably, after this many milliseconds.
    Fail(u8),
    /// Fails the first attempt, answers the next.
    Flaky,
    /// Never answers.
    Hang,
    /// Panics inside its future.
    Panic,
    /// Panics before returning its future.
    PanicEarly,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => (0u8..20).prop_map(Behaviour::Answer),
        1 => Just(Behaviour::Empty),
        1 => (0u8..10).prop_map(Behaviour::Fail),
        1 => Just(Behaviour::Flaky),
        1 => Just(Behaviour::Hang),
        1 => Just(Behaviour::Panic),
        1 => Just(Behaviour::PanicEarly),
    ]
}

/// Looks its behaviour up by question ("q{i}"); answers a few distinct texts so that
/// deduplication and votes have something to do.
struct Scripted {
    script: Vec<Behaviour>,
    flaky_seen: Vec<std::sync::atomic::AtomicBool>,
}

impl Scripted {
    fn new(script: Vec<Behaviour>) -> Self {
        let flaky_seen = script.iter().map(|_| Default::default()).collect();
        Self { script, flaky_seen }
    }
}

impl Agent for Scripted {
    fn answer<'a>(&'a self, q: &'a str, id: usize) -> BoxFuture<'a, Result<String, AgentError>> {
        let i: usize = q[1..].parse().unwrap_or(0) % self.script.len();
        let b = self.script[(i + id) % self.script.len()];
        if let Behaviour::PanicEarly = b {
            panic!("scripted panic before the future");
        }
        Box::pin(async move {
            match b {
                Behaviour::Answer(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms.into())).await;
                    Ok(format!("answer {}", i % 3))
                }
                Behaviour::Empty => Ok(String::new()),
                Behaviour::Fail(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms.into())).await;
                    Err(AgentError::retryable("scripted failure"))
                }
                Behaviour::Flaky => {
                    let seen = &self.flaky_seen[i];
                    if seen.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        Ok("recovered".into())
                    } else {
                        Err(AgentError::retryable("flaky"))
                    }
                }
                Behaviour::Hang => std::future::pending().await,
                Behaviour::Panic => panic!("scripted panic"),
                Behaviour::PanicEarly => unreachable!(),
            }
        })
    }
}

fn config() -> impl Strategy<Value = ParallelConfig> {
    (
        1usize..12,
        5u64..60,
        (0u32..3, 0u64..4, any::<bool>()),
        prop::option::of(1u64..15),
        prop::option::of((100.0f64..3000.0, 1u32..8)),
        prop::option::of(0usize..6),
        1usize..6,
        any::<bool>(),
    )
        .prop_map(
            |(
                conc,
                timeout,
                (retries, backoff, retry_timeouts),
                hedge,
                rate,
                budget,
                buf,
                dedup,
            )| {
                ParallelConfig {
                    max_concurrency: conc,
                    agent_timeout: Duration::from_millis(timeout),
                    retry: RetryPolicy {
                        max_retries: retries,
                        backoff_base: Duration::from_millis(backoff),
                        backoff_cap: Duration::from_millis(backoff * 2),
                        retry_timeouts,
                    },
                    hedge: parallel_agents::config::HedgePolicy {
                        after: hedge.map(Duration::from_millis),
                        after_p95: hedge.is_some_and(|h| h % 2 == 0),
                    },
                    rate_limit: rate.map(|(per_second, burst)| RateLimit { per_second, burst }),
                    max_errors: budget,
                    stream_buffer: buf,
                    deduplicate_results: dedup,
                    ..ParallelConfig::default()
                }
            },
        )
}

/// How the host asks.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// `execute_with_metrics`: every result, in question order.
    Collect,
    /// `stream`, cancelling after this many results (or never, if past the end).
    Stream { cancel_after: usize },
    /// A consensus round over this many voters.
    Consensus { voters: usize },
}

fn ask() -> impl Strategy<Value = Ask> {
    prop_oneof![
        Just(Ask::Collect),
        (0usize..50).prop_map(|cancel_after| Ask::Stream { cancel_after }),
        (1usize..30).prop_map(|voters| Ask::Consensus { voters }),
    ]
}

/// Every index in `0..n` exactly once.
fn exactly_once(results: &[AgentResult], n: usize) -> Result<(), TestCaseError> {
    let mut seen = vec![0u8; n];
    for r in results {
        prop_assert!(r.question_index < n, "index {} of {n}", r.question_index);
        seen[r.question_index] += 1;
    }
    let wrong: Vec<_> = (0..n).filter(|&i| seen[i] != 1).collect();
    prop_assert!(wrong.is_empty(), "indices not seen exactly once: {wrong:?}");
    Ok(())
}

/// The metrics count exactly the results, by outcome.
fn counts_match(m: &ExecutionMetrics, results: &[AgentResult]) -> Result<(), TestCaseError> {
    let count = |o: Outcome| results.iter().filter(|r| r.outcome == o).count() as u64;
    prop_assert_eq!(m.total_count, results.len() as u64);
    prop_assert_eq!(m.successful_count, count(Outcome::Ok));
    prop_assert_eq!(m.failed_count, count(Outcome::Failed));
    prop_assert_eq!(m.timed_out_count, count(Outcome::TimedOut));
    prop_assert_eq!(m.cancelled_count, count(Outcome::Cancelled));
    prop_assert!(m.min_duration <= m.avg_duration && m.avg_duration <= m.max_duration);
    Ok(())
}

fn run_case(
    cfg: ParallelConfig,
    script: Vec<Behaviour>,
    n: usize,
    ask: Ask,
) -> Result<(), TestCaseError> {
    let exec = ParallelAgentExecutor::new(cfg.clone(), Arc::new(Scripted::new(script)))
        .map_err(|e| TestCaseError::fail(format!("config refused: {e}")))?;
    let questions: Vec<String> = (0..n).map(|i| format!("q{i}")).collect();
    match ask {
        Ask::Collect => {
            let exec = exec.clone();
            let (results, m) = block_on("props", async move {
                exec.execute_with_metrics(questions).await
            })
            .expect("block_on")
            .expect("execute");
            if cfg.deduplicate_results {
                prop_assert!(results.len() <= n);
                prop_assert!(results
                    .windows(2)
                    .all(|w| w[0].question_index < w[1].question_index));
            } else {
                exactly_once(&results, n)?;
                counts_match(&m, &results)?;
            }
            prop_assert_eq!(m.total_count, n as u64);
        }
        Ask::Stream { cancel_after } => {
            let mut batch = exec.stream(questions, cfg.stream_buffer).expect("stream");
            let results = block_on("props", async move {
                let mut out = Vec::new();
                while let Some(r) = batch.next().await {
                    out.push(r);
                    if out.len() == cancel_after {
                        batch.cancel();
                    }
                }
                (out, batch.metrics())
            })
            .expect("block_on");
            let (results, m) = results;
            exactly_once(&results, n)?;
            let m = m.ok_or_else(|| TestCaseError::fail("no metrics after the last result"))?;
            counts_match(&m, &results)?;
        }
        Ask::Consensus { voters } => {
            let c = block_on("props", exec.execute_with_consensus("q0".into(), voters))
                .expect("block_on")
                .expect("consensus");
            exactly_once(&c.results, voters)?;
            counts_match(&c.metrics, &c.results)?;
            let answered = c
                .results
                .iter()
                .filter(|r| {
                    r.outcome == Outcome::Ok
                        && r.answer.as_deref().is_some_and(|a| !a.trim().is_empty())
                })
                .count();
            prop_assert_eq!(c.counted, answered, "counted = non-empty answers");
            prop_assert!(c.votes <= c.counted);
            prop_assert!((0.0..=1.0).contains(&c.confidence));
            prop_assert_eq!(c.answer.is_some(), c.votes > 0);
        }
    }
    Ok(())
}

/// Scripted agent panics (which the library catches) print nothing; any other panic
/// prints as usual.
fn quiet_scripted_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let scripted = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.starts_with("scripted panic"));
            if !scripted {
                default(info);
            }
        }));
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_index_once_and_metrics_add_up(
        cfg in config(),
        script in prop::collection::vec(behaviour(), 1..12),
        n in 1usize..40,
        ask in ask(),
    ) {
        quiet_scripted_panics();
        run_case(cfg, script, n, ask)?;
    }
}

/// A child run: a random batch, read by a host thread, and a shutdown at a random point.
/// Prints nothing on success; panics (non-zero exit) on a broken rule.
fn shutdown_child(seed: u64) {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed as u8; 32]),
    );
    let (cfg, script, n, after_ms) = (
        config(),
        prop::collection::vec(behaviour(), 1..12),
        1usize..400,
        0u64..80,
    )
        .new_tree(&mut runner)
        .unwrap()
        .current();
    quiet_scripted_panics();
    let exec = ParallelAgentExecutor::new(cfg.clone(), Arc::new(Scripted::new(script))).unwrap();
    let questions: Vec<String> = (0..n).map(|i| format!("q{i}")).collect();
    let streamed = exec.submit(questions.clone()).unwrap();
    let started = Arc::new(std::sync::Barrier::new(2));
    let collected = {
        let (exec, started) = (exec.clone(), Arc::clone(&started));
        std::thread::spawn(move || {
            started.wait();
            parallel_agents::runtime::wait_forever("child", exec.execute_with_metrics(questions))
        })
    };
    started.wait();
    let reader = std::thread::spawn(move || {
        let shared = parallel_agents::shared_batch::SharedBatch::new(streamed);
        let mut out = Vec::new();
        loop {
            match shared
                .next("child", Some(Duration::from_millis(7)))
                .unwrap()
            {
                parallel_agents::shared_batch::Next::Result(r) => out.push(r),
                parallel_agents::shared_batch::Next::Done => break,
                parallel_agents::shared_batch::Next::TimedOut => {}
            }
        }
        out
    });
    // The collector's batch starts within microseconds of the barrier.
    std::thread::sleep(Duration::from_millis(after_ms.max(5)));
    parallel_agents::runtime::shutdown(Duration::from_millis(after_ms / 2)).unwrap();
    let streamed = reader.join().expect("reader");
    let mut seen = vec![0u8; n];
    streamed.iter().for_each(|r| seen[r.question_index] += 1);
    assert!(
        seen.iter().all(|&k| k == 1),
        "seed {seed}: streamed indices {seen:?}"
    );
    let (collected, m) = collected.join().expect("collector").unwrap().unwrap();
    if !cfg.deduplicate_results {
        let mut seen = vec![0u8; n];
        collected.iter().for_each(|r| seen[r.question_index] += 1);
        assert!(
            seen.iter().all(|&k| k == 1),
            "seed {seed}: collected indices {seen:?}"
        );
    }
    assert_eq!(
        m.total_count, n as u64,
        "seed {seed}: metrics count every call"
    );
}

#[test]
fn shutdown_at_a_random_point_loses_nothing() {
    if let Ok(seed) = std::env::var("PAGENT_PROPS_SHUTDOWN_CHILD") {
        shutdown_child(seed.parse().unwrap());
        return;
    }
    let me = std::env::current_exe().unwrap();
    for seed in 1..=8u64 {
        let out = std::process::Command::new(&me)
            .args([
                "--exact",
                "shutdown_at_a_random_point_loses_nothing",
                "--nocapture",
            ])
            .env("PAGENT_PROPS_SHUTDOWN_CHILD", seed.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
