//! A million-question stream read by a slow consumer: memory stays bounded and nothing
//! is lost. The question vector is built before the baseline, so what is measured is the
//! executor's own state, which must not grow with N past the buffer.

use std::sync::Arc;
use std::time::Duration;

use parallel_agents::runtime::block_on;
use parallel_agents::{MockAgent, MockOptions, Outcome, ParallelAgentExecutor, ParallelConfig};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_million_questions_stream_in_bounded_memory_and_none_is_lost() {
    const N: usize = 1_000_000;
    let agent = Arc::new(
        MockAgent::new(MockOptions {
            latency: Duration::ZERO,
            ..Default::default()
        })
        .unwrap(),
    );
    let cfg = ParallelConfig {
        max_concurrency: 256,
        ..Default::default()
    };
    let exec = ParallelAgentExecutor::new(cfg, agent).unwrap();
    let questions: Vec<String> = (0..N).map(|i| format!("q{i}")).collect();
    let mut batch = exec.stream(questions, 32).unwrap();
    let mut seen = vec![false; N];
    let (mut base, mut peak_growth) = (0u64, 0u64);
    block_on("stream_memory", async {
        let mut got = 0usize;
        while let Some(r) = batch.next().await {
            assert_eq!(r.outcome, Outcome::Ok);
            assert!(
                !std::mem::replace(&mut seen[r.question_index], true),
                "index twice"
            );
            got += 1;
            // A slow consumer: it pauses now and then, so the producer waits on it.
            if got % 20_000 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if got == 100_000 {
                base = rss_kib();
            } else if got > 100_000 && got % 50_000 == 0 {
                peak_growth = peak_growth.max(rss_kib().saturating_sub(base));
            }
        }
        assert_eq!(got, N);
    })
    .unwrap();
    assert!(seen.iter().all(|s| *s), "an index was lost");
    eprintln!("RSS growth over the last 900k results: {peak_growth} KiB");
    // Per-result state would be >= 50 MB for 900k results; bounded state stays flat.
    assert!(peak_growth < 16 * 1024, "RSS grew by {peak_growth} KiB");
    let m = exec.lifetime_metrics();
    assert_eq!(m.successful_count, N as u64);
}
