//! `runtime::shutdown`: running batches get the deadline to drain, then what still runs
//! is cancelled — a host thread waiting on a batch still gets every index — and every
//! later call fails with `Error::Shutdown` instead of hanging. Its own test binary:
//! shutdown is process-wide and final.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parallel_agents::runtime::{block_on, shutdown};
use parallel_agents::{
    Error, MockAgent, MockOptions, Outcome, ParallelAgentExecutor, ParallelConfig,
};

fn exec(latency: Duration) -> ParallelAgentExecutor {
    let agent = MockAgent::new(MockOptions {
        latency,
        ..Default::default()
    })
    .unwrap();
    let cfg = ParallelConfig {
        max_concurrency: 4,
        ..Default::default()
    };
    ParallelAgentExecutor::new(cfg, Arc::new(agent)).unwrap()
}

#[test]
fn shutdown_drains_then_cancels_and_later_calls_fail_cleanly() {
    // Quick calls finish within the deadline (drained, all Ok); slow ones do not.
    let quick = exec(Duration::from_millis(30));
    let slow = exec(Duration::from_secs(60));
    let quick_batch = quick
        .submit((0..8).map(|i| format!("q{i}")).collect())
        .unwrap();
    let slow_batch = slow
        .submit((0..10).map(|i| format!("s{i}")).collect())
        .unwrap();
    let waiter = std::thread::spawn(move || block_on("waiter", slow_batch.finish()).unwrap());
    let quick_waiter = std::thread::spawn(move || block_on("quick", quick_batch.finish()).unwrap());

    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    shutdown(Duration::from_millis(500)).unwrap();
    // Bounded by the deadline plus the cancelled calls winding down, not by 60 s calls.
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t.elapsed()
    );

    let (quick_results, _) = quick_waiter.join().unwrap();
    assert_eq!(quick_results.len(), 8);
    assert!(
        quick_results.iter().all(|r| r.outcome == Outcome::Ok),
        "drain lost quick calls"
    );

    let (slow_results, _) = waiter.join().unwrap();
    let idx: Vec<_> = slow_results.iter().map(|r| r.question_index).collect();
    assert_eq!(idx, (0..10).collect::<Vec<_>>(), "every index exactly once");
    assert!(slow_results.iter().all(|r| r.outcome == Outcome::Cancelled));

    assert!(matches!(
        slow.submit(vec!["late".into()]),
        Err(Error::Shutdown)
    ));
    assert!(matches!(
        block_on("after", quick.execute_parallel(vec!["late".into()])),
        Err(Error::Shutdown)
    ));
    // Shutting down again is harmless.
    shutdown(Duration::ZERO).unwrap();
}
