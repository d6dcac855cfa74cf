//! The peers: small Python scripts in `bench/` that run the same workloads with asyncio,
//! a thread pool and DSPy's `ParallelExecutor`, printing the same `key=value` lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::report::{thousands, Line, PeerRow, Report};
use crate::sys;

/// What each peer runs, as `N:C` pairs (see `bench/peer_common.py`).
pub struct PeerPlan {
    /// Agent latency of the latency-bound runs.
    pub latency_ms: u64,
    /// Repetitions (median reported).
    pub reps: usize,
    /// asyncio: latency-bound runs.
    pub asyncio_sweep: Vec<(usize, usize)>,
    /// asyncio: zero-latency runs.
    pub asyncio_overhead: Vec<(usize, usize)>,
    /// asyncio: in-flight memory probe (N, latency ms), or none.
    pub asyncio_memory: Option<(usize, u64)>,
    /// Thread pool: latency-bound runs.
    pub threads_sweep: Vec<(usize, usize)>,
    /// Thread pool: zero-latency runs.
    pub threads_overhead: Vec<(usize, usize)>,
    /// DSPy: latency-bound runs.
    pub dspy_sweep: Vec<(usize, usize)>,
    /// DSPy: zero-latency runs (its cost grows as N², so keep N small).
    pub dspy_overhead: Vec<(usize, usize)>,
    /// Time limit of each peer script.
    pub limit: Duration,
}

/// The Python to run the peers with: the project's `.venv` (where DSPy is installed)
/// if present, else `python3` from PATH.
pub fn find_python(repo: &Path) -> Option<PathBuf> {
    let venv = repo.join(".venv/bin/python");
    let candidates = [venv, PathBuf::from("python3")];
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("-c")
            .arg("import asyncio")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn arg(pairs: &[(usize, usize)]) -> String {
    pairs
        .iter()
        .map(|(a, b)| format!("{a}:{b}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs every peer and records its lines; a peer that gives wrong results (or crashes)
/// is a failure, a missing Python or DSPy only a note.
pub fn run(repo: &Path, plan: &PeerPlan, report: &mut Report) {
    let Some(python) = find_python(repo) else {
        report.note("peers skipped: no Python (.venv/bin/python or python3) found");
        return;
    };
    println!("  python: {}", python.display());
    let common = |sweep: &[(usize, usize)], overhead: &[(usize, usize)]| {
        vec![
            format!("--latency-ms={}", plan.latency_ms),
            format!("--reps={}", plan.reps),
            format!("--sweep={}", arg(sweep)),
            format!("--overhead={}", arg(overhead)),
        ]
    };
    let mut runs = vec![(
        "asyncio",
        "peer_asyncio.py",
        common(&plan.asyncio_sweep, &plan.asyncio_overhead),
    )];
    if let Some((n, ms)) = plan.asyncio_memory {
        // A process of its own, so the heap earlier runs left behind hides no growth.
        runs.push((
            "asyncio",
            "peer_asyncio.py",
            vec![format!("--memory={n}:{ms}")],
        ));
    }
    runs.extend([
        (
            "threads",
            "peer_threads.py",
            common(&plan.threads_sweep, &plan.threads_overhead),
        ),
        (
            "dspy",
            "peer_dspy.py",
            common(&plan.dspy_sweep, &plan.dspy_overhead),
        ),
    ]);
    for (name, script, args) in runs {
        println!("  peer {name}: {script} {}", args.join(" "));
        let mut cmd = Command::new(&python);
        cmd.arg(repo.join("bench").join(script))
            .args(&args)
            .current_dir(repo.join("bench"));
        let done = match sys::run_with_limit(&mut cmd, plan.limit) {
            Ok(d) => d,
            Err(e) => {
                report.fail(format!("peer {name}: cannot run {script}: {e}"));
                continue;
            }
        };
        if name == "dspy" && done.code == Some(3) {
            report.note(format!(
                "DSPy peer skipped: dspy is not importable by {}",
                python.display()
            ));
            continue;
        }
        if !done.ok() {
            report.fail(format!("peer {name}: {}", done.describe()));
            continue;
        }
        let lines: Vec<Line> = done.stdout.lines().filter_map(Line::parse).collect();
        if lines.is_empty() {
            report.fail(format!("peer {name} printed no results"));
        }
        for l in lines {
            report.line(l);
        }
    }
}

/// Puts each peer figure beside ours, where ours was measured in this run.
pub fn compare(report: &mut Report) {
    let mut rows = Vec::new();
    for peer in ["asyncio", "threads", "dspy"] {
        // Latency-bound: efficiency (ideal / measured) on the same N, C and latency.
        for theirs in report.find("latency_sweep", peer) {
            fn key(l: &Line) -> (Option<&str>, Option<&str>, Option<&str>) {
                (l.get("n"), l.get("c"), l.get("latency_ms"))
            }
            let Some(ours) = report
                .find("latency_sweep", "ours")
                .find(|o| key(o) == key(theirs))
            else {
                continue;
            };
            let (Some(a), Some(b)) = (ours.num("ratio"), theirs.num("ratio")) else {
                continue;
            };
            rows.push(PeerRow {
                what: format!(
                    "latency N={} C={}: efficiency",
                    thousands(theirs.num("n").unwrap_or(0.0)),
                    thousands(theirs.num("c").unwrap_or(0.0))
                ),
                ours: format!("{a:.3}"),
                peer: peer.into(),
                theirs: format!("{b:.3}"),
                advantage: a / b,
            });
        }
        // Zero-latency throughput: ours through the Rust API at our N and C.
        if let Some(ours) = report.find("overhead", "rust_next").next() {
            for theirs in report.find("overhead", peer) {
                let (Some(a), Some(b)) = (ours.num("calls_per_s"), theirs.num("calls_per_s"))
                else {
                    continue;
                };
                rows.push(PeerRow {
                    what: format!(
                        "zero-latency calls/s (peer N={} C={})",
                        thousands(theirs.num("n").unwrap_or(0.0)),
                        thousands(theirs.num("c").unwrap_or(0.0))
                    ),
                    ours: format!("{}/s", thousands(a)),
                    peer: peer.into(),
                    theirs: format!("{}/s", thousands(b)),
                    advantage: a / b,
                });
            }
        }
        // Memory per in-flight call: lower is better, so theirs / ours.
        if let Some(ours) = report.find("memory", "ours").next() {
            for theirs in report.find("memory", peer) {
                let (Some(a), Some(b)) = (ours.num("bytes_per_call"), theirs.num("bytes_per_call"))
                else {
                    continue;
                };
                if a <= 0.0 || b <= 0.0 {
                    continue; // too small a probe to see over the noise (a quick run)
                }
                rows.push(PeerRow {
                    what: format!(
                        "bytes per in-flight call (N={})",
                        thousands(theirs.num("n").unwrap_or(0.0))
                    ),
                    ours: format!("{a:.0} B"),
                    peer: peer.into(),
                    theirs: format!("{b:.0} B"),
                    advantage: b / a,
                });
            }
        }
    }
    for r in rows {
        report.peer(r);
    }
}
