//! The executor driven through its Rust API, as the seed uses it. Nothing here asserts
//! wall-clock times; behaviour is checked through counts, gauges and orderings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parallel_agents::runtime::block_on;
use parallel_agents::{
    Agent, AgentError, AgentPool, BoxFuture, Error, MockAgent, MockAnswers, MockOptions, Outcome,
    ParallelAgentExecutor, ParallelConfig, RateLimit, RetryPolicy,
};

/// Behaves as its question says: `sleep:MS`, `hang`, `fail`, `panic`, `flaky:K` (fails
/// the first K attempts), anything else answers at once. Tracks how many calls are live.
#[derive(Default)]
struct ScriptAgent {
    live: AtomicUsize,
    peak: AtomicUsize,
    started: AtomicUsize,
    attempts: Mutex<HashMap<String, usize>>,
    starts: Mutex<Vec<Instant>>,
}

struct Live<'a>(&'a AtomicUsize);
impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Agent for ScriptAgent {
    fn answer<'a>(&'a self, q: &'a str, id: usize) -> BoxFuture<'a, Result<String, AgentError>> {
        Box::pin(async move {
            let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
            let _live = Live(&self.live);
            self.peak.fetch_max(now, Ordering::SeqCst);
            self.started.fetch_add(1, Ordering::SeqCst);
            self.starts.lock().unwrap().push(Instant::now());
            let n = {
                let mut a = self.attempts.lock().unwrap();
                let e = a.entry(q.to_owned()).or_insert(0);
                *e += 1;
                *e
            };
            if let Some(ms) = q.strip_prefix("sleep:") {
                let ms: u64 = ms.split('#').next().unwrap().parse().unwrap();
                tokio::time::sleep(Duration::from_millis(ms)).await;
            } else if q == "hang" {
                std::future::pending::<()>().await;
            } else if q == "fail" {
                return Err(AgentError::fatal("scripted failure"));
            } else if q == "panic" {
                panic!("scripted panic");
            } else if let Some(k) = q.strip_prefix("flaky:") {
                let k: usize = k.split('#').next().unwrap().parse().unwrap();
                if n <= k {
                    return Err(AgentError::retryable(format!("flaky attempt {n}")));
                }
            }
            Ok(format!("{id}:{q}"))
        })
    }
}

fn config(c: usize) -> ParallelConfig {
    ParallelConfig {
        max_concurrency: c,
        agent_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

fn exec_with(cfg: ParallelConfig) -> (ParallelAgentExecutor, Arc<ScriptAgent>) {
    let agent = Arc::new(ScriptAgent::default());
    let exec = ParallelAgentExecutor::new(cfg, agent.clone()).unwrap();
    (exec, agent)
}

fn each_index_once(results: &[parallel_agents::AgentResult], n: usize) {
    let mut seen = vec![0u32; n];
    for r in results {
        seen[r.question_index] += 1;
    }
    assert!(
        seen.iter().all(|c| *c == 1),
        "indices not each exactly once: {seen:?}"
    );
    assert_eq!(results.len(), n);
}

#[test]
fn in_flight_calls_reach_but_never_exceed_max_concurrency() {
    let (exec, agent) = exec_with(config(8));
    let qs: Vec<String> = (0..64).map(|i| format!("sleep:20#{i}")).collect();
    let results = block_on("t", exec.execute_parallel(qs)).unwrap().unwrap();
    assert!(results.iter().all(|r| r.success));
    assert_eq!(agent.peak.load(Ordering::SeqCst), 8);
    // Results come back in question order.
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r.question_index, i);
        assert_eq!(
            r.answer.as_deref(),
            Some(format!("{i}:sleep:20#{i}").as_str())
        );
    }
}

#[test]
fn concurrent_batches_share_the_executor_limit() {
    let (exec, agent) = exec_with(config(5));
    let run = |k: usize| {
        let exec = exec.clone();
        std::thread::spawn(move || {
            let qs: Vec<String> = (0..20).map(|i| format!("sleep:10#{k}-{i}")).collect();
            block_on("t", exec.execute_parallel(qs)).unwrap().unwrap()
        })
    };
    let hs: Vec<_> = (0..4).map(run).collect();
    for h in hs {
        each_index_once(&h.join().unwrap(), 20);
    }
    assert_eq!(agent.peak.load(Ordering::SeqCst), 5);
}

#[test]
fn hangs_time_out_failures_and_panics_do_not_stop_the_batch() {
    let cfg = ParallelConfig {
        agent_timeout: Duration::from_millis(200),
        ..config(4)
    };
    let (exec, _) = exec_with(cfg);
    let qs: Vec<String> = ["ok", "hang", "fail", "sleep:5", "panic", "hang", "ok2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let r = block_on("t", exec.execute_parallel(qs)).unwrap().unwrap();
    each_index_once(&r, 7);
    let outcomes: Vec<_> = r.iter().map(|r| r.outcome).collect();
    use Outcome::*;
    assert_eq!(
        outcomes,
        vec![Ok, TimedOut, Failed, Ok, Failed, TimedOut, Ok]
    );
    assert_eq!(r[2].error.as_deref(), Some("scripted failure"));
    assert!(
        r[4].error.as_deref().unwrap().contains("scripted panic"),
        "{:?}",
        r[4].error
    );
    assert!(r[1].error.as_deref().unwrap().contains("timed out"));
    assert!(r[1].duration >= Duration::from_millis(200));
}

#[test]
fn stream_yields_in_completion_order() {
    let (exec, _) = exec_with(config(8));
    let qs: Vec<String> = [300, 10, 200, 100]
        .iter()
        .map(|ms| format!("sleep:{ms}"))
        .collect();
    let mut batch = exec.stream(qs, 4).unwrap();
    let mut order = vec![];
    block_on("t", async {
        while let Some(r) = batch.next().await {
            order.push(r.question_index);
        }
    })
    .unwrap();
    assert_eq!(order, vec![1, 3, 2, 0]);
    assert!(batch.is_finished());
    assert_eq!(batch.progress(), (4, 4));
}

#[test]
fn a_slow_consumer_holds_the_stream_to_buffer_plus_concurrency() {
    let (buffer, conc) = (3, 4);
    let (exec, agent) = exec_with(config(conc));
    let qs: Vec<String> = (0..60).map(|i| format!("q{i}")).collect();
    let mut batch = exec.stream(qs, buffer).unwrap();
    let mut consumed = 0;
    let mut worst = 0;
    block_on("t", async {
        while let Some(_r) = batch.next().await {
            consumed += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
            let ahead = agent.started.load(Ordering::SeqCst) - consumed;
            worst = worst.max(ahead);
        }
    })
    .unwrap();
    assert_eq!(consumed, 60);
    assert!(worst <= buffer + conc, "ran {worst} ahead of the consumer");
    // And it does run ahead: the buffer is used.
    assert!(worst >= buffer, "only {worst} ahead");
}

#[test]
fn cancel_returns_every_index_once_with_the_rest_cancelled() {
    let (exec, _) = exec_with(config(2));
    let qs: Vec<String> = (0..20)
        .map(|i| {
            if i < 2 {
                "ok".into()
            } else {
                format!("sleep:5000#{i}")
            }
        })
        .collect();
    let mut batch = exec.submit(qs).unwrap();
    let mut got = vec![];
    block_on("t", async {
        got.push(batch.next().await.unwrap());
        got.push(batch.next().await.unwrap());
        batch.cancel();
        while let Some(r) = batch.next().await {
            got.push(r);
        }
    })
    .unwrap();
    each_index_once(&got, 20);
    let cancelled = got
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .count();
    assert_eq!(cancelled, 18);
    let m = batch.metrics().unwrap();
    assert_eq!(
        (m.successful_count, m.cancelled_count, m.total_count),
        (2, 18, 20)
    );
}

#[test]
fn consensus_over_different_answers_is_twenty_percent_not_reached() {
    let agent = Arc::new(
        MockAgent::new(MockOptions {
            latency: Duration::from_millis(1),
            ..Default::default()
        })
        .unwrap(),
    );
    let exec = ParallelAgentExecutor::new(config(5), agent).unwrap();
    let c = block_on(
        "t",
        exec.execute_with_consensus("What is the capital of France?".into(), 5),
    )
    .unwrap()
    .unwrap();
    assert_eq!((c.votes, c.counted), (1, 5));
    assert!((c.confidence - 0.2).abs() < 1e-12);
    assert!(!c.reached);
    assert_eq!(
        c.answer.as_deref(),
        Some("Agent 0 answer for 'What is the capital of France?'")
    );
    assert!(!c.early_stopped);
    // Metrics are cached under the question.
    let m = exec.get_metrics("What is the capital of France?").unwrap();
    assert_eq!(m.successful_count, 5);
}

/// Voters that all say "Paris" after `latency` ± `jitter`; threshold 0.6, early stop on.
fn unanimous_voters(latency: Duration, jitter: Duration, c: usize) -> ParallelAgentExecutor {
    let opts = MockOptions {
        latency,
        jitter,
        answers: MockAnswers::Vote(vec![("Paris".into(), 1.0)]),
        ..Default::default()
    };
    let agent = Arc::new(MockAgent::new(opts).unwrap());
    let cfg = ParallelConfig {
        consensus_threshold: 0.6,
        consensus_early_stop: true,
        ..config(c)
    };
    ParallelAgentExecutor::new(cfg, agent).unwrap()
}

#[test]
fn consensus_vote_mode_reaches_a_majority_and_stops_early() {
    let exec = unanimous_voters(Duration::from_millis(20), Duration::from_millis(15), 9);
    let c = block_on("t", exec.execute_with_consensus("capital?".into(), 9))
        .unwrap()
        .unwrap();
    assert_eq!(c.answer.as_deref(), Some("Paris"));
    assert!(c.reached);
    // Unanimous: settled once 5 of 9 agree (5 > 0 + 4 and 5/9 >= 0.6 fails, so 6 needed?
    // 6 votes with 3 outstanding: 6 > 3, worst 6/9 = 0.67 >= 0.6): 3 cancelled at most.
    assert!(c.early_stopped);
    let cancelled = c
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .count();
    assert_eq!(c.results.len(), 9);
    assert_eq!(c.votes + cancelled, 9);
    assert!(cancelled >= 1, "early stop cancelled nothing");
    assert_eq!(c.confidence, 1.0);
}

#[test]
fn consensus_early_stop_reports_every_voter_even_those_never_polled() {
    // Zero latency: the first voters answer on their first poll, so the round settles
    // before the last voters were ever polled; they must still come back, Cancelled.
    let exec = unanimous_voters(Duration::ZERO, Duration::ZERO, 16);
    for _ in 0..50 {
        let c = block_on("t", exec.execute_with_consensus("capital?".into(), 9))
            .unwrap()
            .unwrap();
        let idx: Vec<usize> = c.results.iter().map(|r| r.question_index).collect();
        assert_eq!(idx, (0..9).collect::<Vec<_>>());
        let cancelled = c
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Cancelled)
            .count();
        assert_eq!(c.votes + cancelled, 9, "{:?}", c.results);
        assert!(c.early_stopped && cancelled >= 1, "nothing was cut short");
        assert_eq!(c.metrics.total_count, 9);
        assert_eq!(c.metrics.cancelled_count as usize, cancelled);
        assert!(c.reached);
    }
}

#[test]
fn consensus_all_failed_has_no_answer() {
    let opts = MockOptions {
        latency: Duration::ZERO,
        failure_rate: 1.0,
        ..Default::default()
    };
    let exec =
        ParallelAgentExecutor::new(config(4), Arc::new(MockAgent::new(opts).unwrap())).unwrap();
    let c = block_on("t", exec.execute_with_consensus("q".into(), 4))
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.answer, c.counted, c.reached, c.confidence),
        (None, 0, false, 0.0)
    );
    assert!(c.results.iter().all(|r| r.outcome == Outcome::Failed));
    assert!(matches!(
        block_on("t", exec.execute_with_consensus("q".into(), 0)).unwrap(),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn metrics_add_up_and_average_is_the_mean() {
    let cfg = ParallelConfig {
        agent_timeout: Duration::from_millis(100),
        ..config(8)
    };
    let (exec, _) = exec_with(cfg);
    let mut qs: Vec<String> = (0..30).map(|i| format!("sleep:{}", 1 + i % 7)).collect();
    qs.extend(["fail", "hang", "fail"].iter().map(|s| s.to_string()));
    let batch = exec.submit(qs).unwrap();
    let (results, m) = block_on("t", async {
        let mut b = batch;
        let mut out = vec![];
        while let Some(r) = b.next().await {
            out.push(r);
        }
        // Metrics appear once the driver has recorded the last result.
        let mut m = b.metrics();
        while m.is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            m = b.metrics();
        }
        (out, m.unwrap())
    })
    .unwrap();
    each_index_once(&results, 33);
    assert_eq!(
        (
            m.successful_count,
            m.failed_count,
            m.timed_out_count,
            m.cancelled_count
        ),
        (30, 2, 1, 0)
    );
    assert_eq!(m.total_count, 33);
    let mean = results.iter().map(|r| r.duration).sum::<Duration>() / 33;
    let diff = m.avg_duration.abs_diff(mean);
    assert!(
        diff < Duration::from_micros(2),
        "avg {:?} vs mean {:?}",
        m.avg_duration,
        mean
    );
    assert!(m.min_duration <= m.p50_duration && m.p50_duration <= m.p95_duration);
    assert!(m.p95_duration <= m.p99_duration && m.p99_duration <= m.max_duration);
    assert!(m.min_duration <= m.avg_duration && m.avg_duration <= m.max_duration);
    assert_eq!(
        m.min_duration,
        results.iter().map(|r| r.duration).min().unwrap()
    );
    assert_eq!(
        m.max_duration,
        results.iter().map(|r| r.duration).max().unwrap()
    );
    assert!(m.throughput > 0.0);
    let life = exec.lifetime_metrics();
    assert_eq!(life.total_count, 33);
}

#[test]
fn bad_configuration_is_rejected_naming_the_field() {
    for (cfg, field) in [
        (
            ParallelConfig {
                max_concurrency: 0,
                ..Default::default()
            },
            "max_concurrency",
        ),
        (
            ParallelConfig {
                agent_timeout: Duration::ZERO,
                ..Default::default()
            },
            "agent_timeout",
        ),
        (
            ParallelConfig {
                consensus_threshold: f64::NAN,
                ..Default::default()
            },
            "consensus_threshold",
        ),
        (
            ParallelConfig {
                consensus_threshold: 2.0,
                ..Default::default()
            },
            "consensus_threshold",
        ),
    ] {
        match ParallelAgentExecutor::new(cfg, Arc::new(ScriptAgent::default())) {
            Err(Error::Config(e)) => {
                assert_eq!(e.field, field);
                assert!(e.to_string().contains(field));
            }
            other => panic!("expected a config error for {field}, got {other:?}"),
        }
    }
    let (exec, _) = exec_with(config(1));
    assert!(matches!(
        exec.submit(vec![]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        exec.stream(vec!["q".into()], 0),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn sequential_runs_one_at_a_time_in_order() {
    let (exec, agent) = exec_with(config(8));
    let qs: Vec<String> = (0..6).map(|i| format!("sleep:{}#{i}", 6 - i)).collect();
    let r = block_on("t", exec.execute_sequential(qs)).unwrap().unwrap();
    each_index_once(&r, 6);
    assert_eq!(agent.peak.load(Ordering::SeqCst), 1);
}

#[test]
fn deduplication_drops_repeated_answers() {
    let opts = MockOptions {
        latency: Duration::ZERO,
        answers: MockAnswers::Vote(vec![("Paris".into(), 1.0), ("paris.".into(), 1.0)]),
        ..Default::default()
    };
    let cfg = ParallelConfig {
        deduplicate_results: true,
        ..config(4)
    };
    let exec = ParallelAgentExecutor::new(cfg, Arc::new(MockAgent::new(opts).unwrap())).unwrap();
    let r = block_on("t", exec.execute_parallel(vec!["q".into(); 10]))
        .unwrap()
        .unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].question_index, 0);
}

#[test]
fn pool_members_serve_one_call_at_a_time_and_consensus_asks_distinct_members() {
    let members: Vec<Arc<ScriptAgent>> = (0..3).map(|_| Arc::new(ScriptAgent::default())).collect();
    let agents: Vec<Arc<dyn Agent>> = members
        .iter()
        .map(|m| m.clone() as Arc<dyn Agent>)
        .collect();
    let pool = AgentPool::new(agents, config(16)).unwrap();
    assert_eq!(pool.size(), 3);
    let qs: Vec<String> = (0..12).map(|i| format!("sleep:15#{i}")).collect();
    let r = block_on("t", pool.execute_batch(qs)).unwrap().unwrap();
    each_index_once(&r, 12);
    for m in &members {
        assert_eq!(
            m.peak.load(Ordering::SeqCst),
            1,
            "a member served two calls at once"
        );
        assert!(
            m.started.load(Ordering::SeqCst) > 0,
            "a member never got work"
        );
    }
    assert!(r.iter().all(|x| x.agent_id < 3));
    let c = block_on("t", pool.executor().execute_with_consensus("q".into(), 3))
        .unwrap()
        .unwrap();
    let mut ids: Vec<_> = c.results.iter().map(|r| r.agent_id).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
}

#[test]
fn retries_count_attempts_and_stop_at_the_limit() {
    let cfg = ParallelConfig {
        retry: RetryPolicy {
            max_retries: 3,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(4),
            retry_timeouts: false,
        },
        ..config(4)
    };
    let (exec, _) = exec_with(cfg);
    let qs = vec![
        "flaky:2".to_string(),
        "flaky:5".into(),
        "fail".into(),
        "ok".into(),
    ];
    let r = block_on("t", exec.execute_parallel(qs)).unwrap().unwrap();
    assert_eq!((r[0].outcome, r[0].attempts), (Outcome::Ok, 3));
    assert_eq!((r[1].outcome, r[1].attempts), (Outcome::Failed, 4));
    // Not retryable: one attempt.
    assert_eq!((r[2].outcome, r[2].attempts), (Outcome::Failed, 1));
    assert_eq!(r[3].attempts, 1);
}

#[test]
fn rate_limit_bounds_starts_in_every_window() {
    let (rate, burst) = (200.0, 5u32);
    let cfg = ParallelConfig {
        rate_limit: Some(RateLimit {
            per_second: rate,
            burst,
        }),
        ..config(64)
    };
    let (exec, agent) = exec_with(cfg);
    let qs: Vec<String> = (0..60).map(|i| format!("q{i}")).collect();
    let r = block_on("t", exec.execute_parallel(qs)).unwrap().unwrap();
    each_index_once(&r, 60);
    let mut starts = agent.starts.lock().unwrap().clone();
    starts.sort();
    // In any window [s_i, s_j], starts <= burst + rate * width (+1 for the edge).
    for i in 0..starts.len() {
        for j in i..starts.len() {
            let width = starts[j].duration_since(starts[i]).as_secs_f64();
            let allowed = burst as f64 + rate * width + 1.0;
            assert!(
                ((j - i + 1) as f64) <= allowed,
                "{} starts in {width}s",
                j - i + 1
            );
        }
    }
}

/// Slow on the first call of each question, fast on any later one: a straggler that a
/// hedge fixes.
#[derive(Default)]
struct FirstCallSlow {
    seen: Mutex<HashMap<String, usize>>,
    cancelled_slow: AtomicUsize,
}

struct CountDrop<'a>(&'a AtomicUsize, bool);
impl Drop for CountDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Agent for FirstCallSlow {
    fn answer<'a>(&'a self, q: &'a str, _id: usize) -> BoxFuture<'a, Result<String, AgentError>> {
        Box::pin(async move {
            let n = {
                let mut s = self.seen.lock().unwrap();
                let e = s.entry(q.to_owned()).or_insert(0);
                *e += 1;
                *e
            };
            if n == 1 && q.starts_with("straggler") {
                let mut guard = CountDrop(&self.cancelled_slow, true);
                tokio::time::sleep(Duration::from_secs(5)).await;
                guard.1 = false;
                return Ok(format!("slow {q}"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(format!("fast {q}"))
        })
    }
}

#[test]
fn hedging_answers_stragglers_from_a_duplicate_and_cancels_the_original() {
    let agent = Arc::new(FirstCallSlow::default());
    let cfg = ParallelConfig {
        hedge: parallel_agents::config::HedgePolicy {
            after: Some(Duration::from_millis(50)),
            after_p95: false,
        },
        ..config(8)
    };
    let exec = ParallelAgentExecutor::new(cfg, agent.clone()).unwrap();
    let qs: Vec<String> = (0..8)
        .map(|i| {
            if i % 4 == 0 {
                format!("straggler{i}")
            } else {
                format!("q{i}")
            }
        })
        .collect();
    let batch = exec.submit(qs).unwrap();
    let (r, m) = block_on("t", batch.finish()).unwrap();
    each_index_once(&r, 8);
    assert!(r.iter().all(|x| x.success));
    assert_eq!(r[0].answer.as_deref(), Some("fast straggler0"));
    assert!(r[0].hedged && r[0].hedge_won);
    assert!(!r[1].hedged);
    assert_eq!((m.hedged_count, m.hedge_wins), (2, 2));
    // The slow originals were dropped, not left running.
    assert_eq!(agent.cancelled_slow.load(Ordering::SeqCst), 2);
}

#[test]
fn p95_hedging_kicks_in_after_enough_samples() {
    let agent = Arc::new(FirstCallSlow::default());
    let cfg = ParallelConfig {
        hedge: parallel_agents::config::HedgePolicy {
            after: None,
            after_p95: true,
        },
        ..config(4)
    };
    let exec = ParallelAgentExecutor::new(cfg, agent).unwrap();
    // 64 fast calls establish a p95 of ~5 ms; the stragglers behind them get hedged.
    let mut qs: Vec<String> = (0..64).map(|i| format!("q{i}")).collect();
    qs.extend((0..3).map(|i| format!("straggler{i}")));
    let (r, m) = block_on("t", exec.submit(qs).unwrap().finish()).unwrap();
    each_index_once(&r, 67);
    assert!(r[64..]
        .iter()
        .all(|x| x.hedged && x.answer.as_deref().unwrap().starts_with("fast")));
    assert!(m.hedge_wins >= 3);
}

#[test]
fn error_budget_cancels_the_rest_and_reports_it() {
    let cfg = ParallelConfig {
        max_errors: Some(2),
        ..config(1)
    };
    let (exec, _) = exec_with(cfg);
    let mut qs: Vec<String> = vec!["fail".into(); 3];
    qs.extend((0..20).map(|i| format!("sleep:1#{i}")));
    let mut batch = exec.submit(qs).unwrap();
    let mut got = vec![];
    block_on("t", async {
        while let Some(r) = batch.next().await {
            got.push(r);
        }
    })
    .unwrap();
    each_index_once(&got, 23);
    assert!(batch.budget_exceeded());
    let failed = got.iter().filter(|r| r.outcome == Outcome::Failed).count();
    let cancelled: Vec<_> = got
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .collect();
    assert_eq!(failed, 3);
    assert_eq!(cancelled.len(), 20, "concurrency 1: nothing else started");
    assert!(cancelled[0]
        .error
        .as_deref()
        .unwrap()
        .contains("error budget exceeded"));
}

#[test]
fn a_shared_rate_limiter_bounds_several_executors_together() {
    let limiter = Arc::new(parallel_agents::RateLimiter::new(RateLimit {
        per_second: 100.0,
        burst: 2,
    }));
    let agent = Arc::new(ScriptAgent::default());
    let execs: Vec<_> = (0..3)
        .map(|_| {
            ParallelAgentExecutor::with_rate_limiter(config(16), agent.clone(), limiter.clone())
                .unwrap()
        })
        .collect();
    let hs: Vec<_> = execs
        .into_iter()
        .enumerate()
        .map(|(k, e)| {
            std::thread::spawn(move || {
                let qs: Vec<String> = (0..15).map(|i| format!("e{k}q{i}")).collect();
                block_on("t", e.execute_parallel(qs)).unwrap().unwrap()
            })
        })
        .collect();
    for h in hs {
        each_index_once(&h.join().unwrap(), 15);
    }
    let mut starts = agent.starts.lock().unwrap().clone();
    starts.sort();
    assert_eq!(starts.len(), 45);
    for i in 0..starts.len() {
        for j in i..starts.len() {
            let width = starts[j].duration_since(starts[i]).as_secs_f64();
            assert!(
                ((j - i + 1) as f64) <= 2.0 + 100.0 * width + 1.0,
                "{} starts in {width}s",
                j - i + 1
            );
        }
    }
}

#[test]
fn a_small_pool_under_heavy_load_never_stalls() {
    let members: Vec<Arc<dyn Agent>> = (0..2)
        .map(|_| Arc::new(ScriptAgent::default()) as Arc<dyn Agent>)
        .collect();
    let cfg = ParallelConfig {
        agent_timeout: Duration::from_secs(20),
        ..config(64)
    };
    let exec = ParallelAgentExecutor::new_pool(cfg, members).unwrap();
    let hs: Vec<_> = (0..4)
        .map(|k| {
            let exec = exec.clone();
            std::thread::spawn(move || {
                let qs: Vec<String> = (0..150).map(|i| format!("sleep:1#{k}-{i}")).collect();
                block_on("t", exec.execute_parallel(qs)).unwrap().unwrap()
            })
        })
        .collect();
    for h in hs {
        let r = h.join().unwrap();
        each_index_once(&r, 150);
        assert!(
            r.iter().all(|x| x.outcome == Outcome::Ok),
            "a call waited out its timeout for a member"
        );
    }
}

/// Fails its first call with a retry-after hint, then answers with token usage.
#[derive(Default)]
struct Throttled {
    starts: Mutex<Vec<Instant>>,
}

impl Agent for Throttled {
    fn answer<'a>(&'a self, q: &'a str, id: usize) -> BoxFuture<'a, Result<String, AgentError>> {
        Box::pin(async move { self.answer_with_usage(q, id).await.map(|a| a.text) })
    }

    fn answer_with_usage<'a>(
        &'a self,
        q: &'a str,
        _id: usize,
    ) -> BoxFuture<'a, Result<parallel_agents::Answer, AgentError>> {
        Box::pin(async move {
            let n = {
                let mut s = self.starts.lock().unwrap();
                s.push(Instant::now());
                s.len()
            };
            if n == 1 {
                return Err(
                    AgentError::retryable("429").with_retry_after(Duration::from_millis(250))
                );
            }
            Ok(parallel_agents::Answer {
                text: q.to_uppercase(),
                usage: Some(parallel_agents::TokenUsage {
                    prompt_tokens: 10,
                    completion_tokens: 3,
                }),
            })
        })
    }
}

#[test]
fn retry_after_is_a_floor_under_the_backoff_and_usage_is_summed() {
    let agent = Arc::new(Throttled::default());
    let cfg = ParallelConfig {
        retry: RetryPolicy {
            max_retries: 2,
            backoff_base: Duration::from_millis(1),
            // Above the agent's 250 ms hint: a longer hint than the cap fails the call.
            backoff_cap: Duration::from_secs(1),
            retry_timeouts: false,
        },
        ..config(1)
    };
    let exec = ParallelAgentExecutor::new(cfg, agent.clone()).unwrap();
    let (r, m) = block_on(
        "t",
        exec.submit(vec!["a".into(), "b".into()]).unwrap().finish(),
    )
    .unwrap();
    assert_eq!((r[0].answer.as_deref(), r[0].attempts), (Some("A"), 2));
    let starts = agent.starts.lock().unwrap().clone();
    assert!(
        starts[1].duration_since(starts[0]) >= Duration::from_millis(250),
        "retried too soon"
    );
    assert_eq!(r[1].usage.unwrap().prompt_tokens, 10);
    assert_eq!((m.prompt_tokens, m.completion_tokens), (20, 6));
}

/// Panics while making its future (before any `.await`), for even agent ids.
struct PanicsBeforeItsFuture;

impl Agent for PanicsBeforeItsFuture {
    fn answer<'a>(&'a self, q: &'a str, id: usize) -> BoxFuture<'a, Result<String, AgentError>> {
        if id % 2 == 0 {
            panic!("boom before the future for {q}");
        }
        Box::pin(async move { Ok(format!("fine {q}")) })
    }
}

#[test]
fn an_agent_that_panics_before_returning_its_future_gives_failed_results() {
    let exec = ParallelAgentExecutor::new(config(4), Arc::new(PanicsBeforeItsFuture)).unwrap();
    let qs: Vec<String> = (0..10).map(|i| format!("q{i}")).collect();
    let rs = block_on("t", exec.execute_parallel(qs)).unwrap().unwrap();
    each_index_once(&rs, 10);
    for r in &rs {
        if r.question_index % 2 == 0 {
            assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
            let e = r.error.as_deref().unwrap();
            assert!(e.contains("agent panicked") && e.contains("boom"), "{e}");
        } else {
            assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
        }
    }
    // Consensus asks the same way.
    let c = block_on("t", exec.execute_with_consensus("q".into(), 3))
        .unwrap()
        .unwrap();
    assert_eq!(c.results.len(), 3);
    assert_eq!(c.counted, 1);
}

// ---------------------------------------------------------------------------------------
// Issue 11: limits and arithmetic on host input, driven through the C ABI as a host would.
