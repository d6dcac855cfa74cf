//! The raw primitive the executor is built on — a tokio `JoinSet` bounded by a
//! `Semaphore` — measured on the same runtime, as the ideal our figures are held against.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Spawns `n` tasks, at most `c` at once, from one driver task (as the executor's
/// driver does), and joins them all. Each task sleeps `latency` (none at zero: a no-op)
/// and returns its index. Returns the wall time; fails unless every index came back
/// exactly once.
pub async fn run(n: usize, c: usize, latency: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let seen = tokio::spawn(async move {
        let sem = Arc::new(Semaphore::new(c));
        let mut set = JoinSet::new();
        let mut seen = vec![false; n];
        let mut mark = |i: usize| !std::mem::replace(&mut seen[i], true);
        let mut dup = false;
        for i in 0..n {
            let permit = Arc::clone(&sem)
                .acquire_owned()
                .await
                .expect("never closed");
            set.spawn(async move {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                drop(permit);
                i
            });
            while let Some(r) = set.try_join_next() {
                dup |= !mark(r.expect("raw tasks do not panic"));
            }
        }
        while let Some(r) = set.join_next().await {
            dup |= !mark(r.expect("raw tasks do not panic"));
        }
        (dup, seen.iter().filter(|s| **s).count())
    })
    .await
    .map_err(|e| e.to_string())?;
    let dt = t0.elapsed();
    match seen {
        (false, got) if got == n => Ok(dt),
        (dup, got) => Err(format!(
            "raw JoinSet: {got} of {n} indices came back (duplicates: {dup})"
        )),
    }
}

/// Latencies in µs of `rounds` raw "consensus rounds": `agents` no-op tasks in a
/// `JoinSet`, joined and counted, one `block_on` per round from the host thread.
pub fn consensus_rounds(
    handle: &tokio::runtime::Handle,
    agents: usize,
    rounds: usize,
) -> Result<Vec<f64>, String> {
    let warm = rounds / 10 + 1;
    let mut us = Vec::with_capacity(rounds);
    for k in 0..warm + rounds {
        let t0 = Instant::now();
        let votes = handle.block_on(async {
            let mut set = JoinSet::new();
            for _ in 0..agents {
                set.spawn(async { "Paris" });
            }
            let mut votes = 0;
            while let Some(r) = set.join_next().await {
                votes += usize::from(r.ok() == Some("Paris"));
            }
            votes
        });
        let dt = t0.elapsed();
        if votes != agents {
            return Err(format!("raw round {k}: {votes} of {agents} votes"));
        }
        if k >= warm {
            us.push(dt.as_secs_f64() * 1e6);
        }
    }
    Ok(us)
}

/// Latencies in µs of `rounds` inline rounds: `agents` zero-latency mock calls polled
/// together inside one `block_on` on the host thread (no task spawned, no thread hop),
/// answers counted. The floor for a consensus round that does not leave the caller's
/// thread.
pub fn consensus_inline(
    handle: &tokio::runtime::Handle,
    agent: &dyn parallel_agents::Agent,
    agents: usize,
    rounds: usize,
) -> Result<Vec<f64>, String> {
    let warm = rounds / 10 + 1;
    let mut us = Vec::with_capacity(rounds);
    for k in 0..warm + rounds {
        let t0 = Instant::now();
        let votes = handle.block_on(async {
            let calls = (0..agents).map(|i| agent.answer("What is the capital of France?", i));
            futures_util::future::join_all(calls)
                .await
                .into_iter()
                .filter(|a| a.as_deref() == Ok("Paris"))
                .count()
        });
        let dt = t0.elapsed();
        if votes != agents {
            return Err(format!("inline round {k}: {votes} of {agents} votes"));
        }
        if k >= warm {
            us.push(dt.as_secs_f64() * 1e6);
        }
    }
    Ok(us)
}

/// Starts `n` tasks that each hold a permit (of `n`) and sleep `latency`; returns the
/// join set and a counter of tasks that have started sleeping (for a memory probe).
pub fn sleepers(
    handle: &tokio::runtime::Handle,
    n: usize,
    latency: Duration,
) -> (JoinSet<usize>, Arc<AtomicUsize>) {
    let _guard = handle.enter();
    let sem = Arc::new(Semaphore::new(n));
    let started = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = Arc::clone(&sem).try_acquire_owned().expect("n permits");
        let started = Arc::clone(&started);
        set.spawn(async move {
            started.fetch_add(1, Ordering::Release);
            tokio::time::sleep(latency).await;
            drop(permit);
            i
        });
    }
    (set, started)
}
