//! The benchmark runner: `cargo run --release --bin bench [-- --quick] [-- --only NAMES]`.
//!
//! Measures the executor against its ideal and against the raw tokio primitive it is
//! built on, through the Rust API and (with a small C host) through the C ABI, and runs
//! Python peers (asyncio, a thread pool, DSPy) on the same work. Every figure is printed
//! beside its ideal with their ratio; every measurement is also written as one
//! `key=value ...` line to `results.txt` in the output directory, and the latency runs are
//! plotted to `throughput.svg` there. See BENCHMARKS.md for the method and the figures.
//!
//! Numbers are not asserted (a shared 2-core machine is noisy), but every result is
//! checked: a lost, duplicated or wrong answer, a wrong count, or a failure where none
//! was injected makes the run exit 1.
//!
//! Parts (for `--only`, comma-separated): `latency`, `overhead`, `memory`, `consensus`,
//! `peers`, `journal`. A full run (no `--quick`, no `--only`) writes to `bench/`; any other run to
//! `target/bench/`, unless `--out-dir` says otherwise.

mod api;
mod chost;
mod peers;
mod raw;
mod report;
mod svg;
mod sys;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use parallel_agents::MockAnswers;
use report::{thousands, Line, Report, Row};

/// The runner's parts, in the order they run.
const PARTS: [&str; 6] = [
    "latency",
    "overhead",
    "memory",
    "consensus",
    "peers",
    "journal",
];

/// Target efficiency (ideal / measured time) of latency-bound runs.
const LATENCY_TARGET: f64 = 0.97;
/// Target zero-latency throughput, calls per second.
const OVERHEAD_TARGET: f64 = 1_000_000.0;
/// Target memory per in-flight call, bytes.
const MEMORY_TARGET: f64 = 1024.0;
/// Target median consensus round, microseconds.
const CONSENSUS_TARGET_US: f64 = 20.0;
/// Voters per consensus round.
const CONSENSUS_AGENTS: usize = 5;

/// Sizes of every part; [`Plan::full`] for the real figures, [`Plan::quick`] for CI.
struct Plan {
    quick: bool,
    /// Repetitions of each timed run (the median is reported).
    reps: usize,
    /// Agent latency of the latency-bound runs.
    latency: Duration,
    /// Latency-bound runs (N, C).
    latency_runs: Vec<(usize, usize)>,
    /// Zero-latency run (N, C).
    overhead: (usize, usize),
    /// In-flight memory probe: N calls (C = N) and their latency.
    memory: (usize, Duration),
    /// Consensus rounds timed.
    consensus_rounds: usize,
    /// The peers' share.
    peers: peers::PeerPlan,
}

impl Plan {
    fn full() -> Self {
        let sweep = vec![(32, 2), (32, 4), (32, 8), (32, 16)];
        let mut latency_runs = sweep.clone();
        latency_runs.extend([(10_000, 1_000), (100_000, 10_000)]);
        Plan {
            quick: false,
            reps: 3,
            latency: Duration::from_millis(100),
            latency_runs,
            overhead: (1_000_000, 1_000),
            memory: (100_000, Duration::from_secs(2)),
            consensus_rounds: 20_000,
            peers: peers::PeerPlan {
                latency_ms: 100,
                reps: 3,
                asyncio_sweep: [sweep.as_slice(), &[(10_000, 1_000), (100_000, 10_000)]].concat(),
                asyncio_overhead: vec![(100_000, 1_000)],
                asyncio_memory: Some((100_000, 6_000)),
                threads_sweep: sweep.clone(),
                threads_overhead: vec![(100_000, 16)],
                dspy_sweep: sweep,
                dspy_overhead: vec![(1_000, 16), (5_000, 16)],
                limit: Duration::from_secs(600),
            },
        }
    }

    fn quick() -> Self {
        let sweep = vec![(32, 4), (32, 16)];
        let mut latency_runs = sweep.clone();
        latency_runs.push((2_000, 500));
        Plan {
            quick: true,
            reps: 1,
            latency: Duration::from_millis(20),
            latency_runs,
            overhead: (20_000, 1_000),
            memory: (2_000, Duration::from_secs(2)),
            consensus_rounds: 300,
            peers: peers::PeerPlan {
                latency_ms: 20,
                reps: 1,
                asyncio_sweep: [sweep.as_slice(), &[(2_000, 500)]].concat(),
                asyncio_overhead: vec![(5_000, 1_000)],
                asyncio_memory: Some((2_000, 3_000)),
                threads_sweep: sweep.clone(),
                threads_overhead: vec![(2_000, 16)],
                dspy_sweep: vec![(32, 16)],
                dspy_overhead: vec![(200, 16)],
                limit: Duration::from_secs(60),
            },
        }
    }
}

/// Command-line options.
struct Args {
    quick: bool,
    replot: bool,
    only: Option<Vec<String>>,
    out_dir: Option<PathBuf>,
}

const USAGE: &str =
    "usage: bench [--quick] [--only latency,overhead,memory,consensus,peers] [--out-dir DIR]

  --quick       small sizes and 20 ms latency: a smoke run for CI (seconds, not minutes)
  --only NAMES  run only these parts (comma-separated)
  --out-dir DIR where results.txt and throughput.svg go (default: bench/ for a full run,
                target/bench/ otherwise)
  --replot      only redraw throughput.svg from the results.txt already in DIR";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        replot: false,
        only: None,
        out_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--replot" => args.replot = true,
            "--only" => {
                let names: Vec<String> = it
                    .next()
                    .ok_or("--only needs a value")?
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = names.iter().find(|n| !PARTS.contains(&n.as_str())) {
                    return Err(format!("unknown part {bad:?}; parts: {}", PARTS.join(", ")));
                }
                args.only = Some(names);
            }
            "--out-dir" => args.out_dir = Some(it.next().ok_or("--out-dir needs a value")?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// Where the repository is (for `bench/`, `.venv/`).
fn repo() -> PathBuf {
    xtask::workspace_root()
}

fn main() -> ExitCode {
    let mut raw_args = std::env::args().skip(1);
    if raw_args.next().as_deref() == Some("--child") {
        // A memory probe in a fresh process, so earlier runs' heap does not hide growth.
        let rest: Vec<String> = raw_args.collect();
        return memory_child(&rest);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let plan = if args.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    let selected = |part: &str| match &args.only {
        Some(only) => only.iter().any(|x| x == part),
        None => true,
    };
    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        if args.quick || args.only.is_some() {
            repo().join("target/bench")
        } else {
            repo().join("bench")
        }
    });

    if args.replot {
        return replot(&out_dir);
    }

    let mut report = Report::default();
    let started = Instant::now();
    let load = sys::loadavg();
    let workers = parallel_agents::runtime::handle()
        .map(|h| h.metrics().num_workers())
        .unwrap_or(0);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "parallel-agents bench ({} run, {profile} build): {} cores, {workers} runtime workers, \
         load average {:.2} {:.2} {:.2}",
        if plan.quick { "quick" } else { "full" },
        sys::cores(),
        load[0],
        load[1],
        load[2]
    );
    if profile == "debug" && !plan.quick {
        println!(
            "  warning: a debug build's figures mean little; use `cargo run --release --bin bench`"
        );
    }
    report.line(
        Line::new("env")
            .kv("run", if plan.quick { "quick" } else { "full" })
            .kv("profile", profile)
            .kv("cores", sys::cores())
            .kv("workers", workers)
            .kv("git", sys::git_rev(&repo()))
            .kv(
                "unix_time",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            )
            .f("loadavg_1m", load[0], 2)
            .f("loadavg_5m", load[1], 2),
    );

    if selected("latency") {
        section("Latency-bound scaling (mock agent, fixed latency, no jitter)");
        latency(&plan, &mut report);
    }
    if selected("overhead") {
        section("Pure overhead (zero-latency mock)");
        overhead(&plan, &mut report);
    }
    if selected("memory") {
        section("Memory per in-flight call");
        memory(&plan, &mut report);
    }
    if selected("consensus") {
        section("Consensus round of 5 zero-latency agents");
        consensus(&plan, &mut report);
    }
    if selected("journal") {
        section("The journal's cost per result (zero latency) and at 100 ms latency");
        journal(&plan, &mut report);
    }
    if selected("peers") {
        section("Peers (Python) on the same work");
        peers::run(&repo(), &plan.peers, &mut report);
        peers::compare(&mut report);
    }

    let load_end = sys::loadavg();
    report.line(Line::new("env_end").f("loadavg_1m", load_end[0], 2).f(
        "elapsed_s",
        started.elapsed().as_secs_f64(),
        1,
    ));
    finish(&report, &out_dir, load, load_end)
}

/// The journal's cost: zero-latency batches through `submit` + `next()` with and without
/// a journal (a fresh file each rep), a rerun that replays them all, and a latency-bound
/// batch with a journal beside its ideal.
fn journal(plan: &Plan, report: &mut Report) {
    let (n, c) = if plan.quick {
        (20_000, 1000)
    } else {
        (200_000, 1000)
    };
    let (ln, lat) = if plan.quick {
        (5_000, Duration::from_millis(20))
    } else {
        (10_000, Duration::from_millis(100))
    };
    let dir = std::env::temp_dir().join(format!("pagent-bench-journal-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let with_journal = |c: usize, latency: Duration, path: &Path| {
        let config = parallel_agents::ParallelConfig {
            max_concurrency: c,
            agent_timeout: Duration::from_secs(30),
            journal: parallel_agents::JournalConfig {
                path: Some(path.to_path_buf()),
                ..Default::default()
            },
            ..Default::default()
        };
        let agent = api::mock(latency, MockAnswers::Template)?;
        parallel_agents::ParallelAgentExecutor::new(config, std::sync::Arc::new(agent))
            .map_err(|e| e.to_string())
    };
    let result = (|| -> Result<_, String> {
        let plain = api::executor(c, Duration::ZERO)?;
        let (mut t_plain, mut t_journal, mut t_replay) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..plan.reps {
            let path = dir.join(format!("zero-{rep}.db"));
            let _ = std::fs::remove_file(&path);
            let q = api::questions(n);
            t_plain.push(api::block_on(api::submit_and_drain(&plain, q.clone()))??.as_secs_f64());
            let exec = with_journal(c, Duration::ZERO, &path)?;
            t_journal.push(api::block_on(api::submit_and_drain(&exec, q.clone()))??.as_secs_f64());
            // A rerun: every result is replayed, nothing runs.
            let t0 = Instant::now();
            let got = api::block_on(exec.execute_parallel(q))?.map_err(|e| e.to_string())?;
            t_replay.push(t0.elapsed().as_secs_f64());
            if got.len() != n || !got.iter().all(|r| r.replayed) {
                return Err("a rerun did not replay every result".into());
            }
        }
        let path = dir.join("latency.db");
        let _ = std::fs::remove_file(&path);
        let exec = with_journal(c, lat, &path)?;
        let t_lat = api::block_on(api::submit_and_drain(&exec, api::questions(ln)))??;
        let plain_lat = api::executor(c, lat)?;
        let t_lat_plain = api::block_on(api::submit_and_drain(&plain_lat, api::questions(ln)))??;
        Ok((t_plain, t_journal, t_replay, t_lat, t_lat_plain))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    let (t_plain, t_journal, t_replay, t_lat, t_lat_plain) = match result {
        Ok(t) => t,
        Err(e) => {
            report.fail(format!("journal: {e}"));
            return;
        }
    };
    let us = |t: &[f64]| median_min(t).0 / n as f64 * 1e6;
    let (plain_us, journal_us, replay_us) = (us(&t_plain), us(&t_journal), us(&t_replay));
    let ideal = (ln.div_ceil(c) as f64) * lat.as_secs_f64();
    println!(
        "N={n} C={c} zero latency, median of {}: no journal {plain_us:.2} us/result, journal \
         {journal_us:.2} us/result (+{:.2} us), replay {replay_us:.2} us/result",
        plan.reps,
        journal_us - plain_us
    );
    println!(
        "N={ln} C={c} latency {lat:?}: ideal {ideal:.3} s, journal {:.3} s (efficiency {:.3}), \
         no journal {:.3} s (efficiency {:.3})",
        t_lat.as_secs_f64(),
        ideal / t_lat.as_secs_f64(),
        t_lat_plain.as_secs_f64(),
        ideal / t_lat_plain.as_secs_f64()
    );
    report.line(
        Line::new("journal")
            .kv("n", n)
            .kv("c", c)
            .kv("reps", plan.reps)
            .f("no_journal_us_per_result", plain_us, 3)
            .f("journal_us_per_result", journal_us, 3)
            .f("journal_cost_us_per_result", journal_us - plain_us, 3)
            .f("replay_us_per_result", replay_us, 3),
    );
    report.line(
        Line::new("journal_latency")
            .kv("n", ln)
            .kv("c", c)
            .kv("latency_ms", lat.as_millis())
            .f("ideal_s", ideal, 4)
            .f("journal_s", t_lat.as_secs_f64(), 4)
            .f("no_journal_s", t_lat_plain.as_secs_f64(), 4)
            .f("journal_efficiency", ideal / t_lat.as_secs_f64(), 4)
            .f(
                "no_journal_efficiency",
                ideal / t_lat_plain.as_secs_f64(),
                4,
            ),
    );
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Median and minimum of a non-empty sample.
fn median_min(xs: &[f64]) -> (f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

/// The value at quantile `q` (nearest rank) of a non-empty sample.
fn quantile(xs: &[f64], q: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn latency(plan: &Plan, report: &mut Report) {
    let ms = plan.latency.as_millis();
    for &(n, c) in &plan.latency_runs {
        // Ours and the raw primitive, interleaved so a change in load hits both alike.
        let result = api::executor(c, plan.latency).and_then(|exec| {
            let qs = api::questions(n);
            api::block_on(async {
                let (mut ours, mut raw) = (Vec::new(), Vec::new());
                for _ in 0..plan.reps {
                    ours.push(
                        api::submit_and_drain(&exec, qs.clone())
                            .await?
                            .as_secs_f64(),
                    );
                    raw.push(raw::run(n, c, plan.latency).await?.as_secs_f64());
                }
                Ok::<_, String>((ours, raw))
            })?
        });
        let (ours, raw) = match result {
            Ok(t) => t,
            Err(e) => {
                report.fail(format!("latency N={n} C={c}: {e}"));
                continue;
            }
        };
        let rounds = n.div_ceil(c) as u32;
        let ideal = (plan.latency * rounds).as_secs_f64();
        for (imp, times) in [("ours", &ours), ("raw_tokio", &raw)] {
            let (med, min) = median_min(times);
            let ratio = ideal / med;
            report.line(
                Line::new("latency_sweep")
                    .kv("impl", imp)
                    .kv("n", n)
                    .kv("c", c)
                    .kv("latency_ms", ms)
                    .kv("reps", plan.reps)
                    .f("measured_s", med, 6)
                    .f("min_s", min, 6)
                    .f("ideal_s", ideal, 6)
                    .f("ratio", ratio, 4),
            );
            let what = format!(
                "latency N={} C={} ({ms} ms)",
                thousands(n as f64),
                thousands(c as f64)
            );
            report.row(if imp == "ours" {
                Row {
                    what,
                    measured: format!("{med:.3} s"),
                    ideal: format!("{ideal:.3} s"),
                    ratio: Some(ratio),
                    target: format!(">= {LATENCY_TARGET}"),
                    met: Some(ratio >= LATENCY_TARGET),
                }
            } else {
                Row {
                    what: format!("  raw tokio, same work: {what}"),
                    measured: format!("{med:.3} s"),
                    ideal: format!("{ideal:.3} s"),
                    ratio: Some(ratio),
                    target: "-".into(),
                    met: None,
                }
            });
        }
    }
}

fn overhead(plan: &Plan, report: &mut Report) {
    let (n, c) = plan.overhead;
    let result = api::executor(c, Duration::ZERO).and_then(|exec| {
        let qs = api::questions(n);
        let warm = api::questions(n.min(10_000));
        api::block_on(async {
            // Warm-up: the runtime's threads, the allocator's arenas.
            raw::run(warm.len(), c, Duration::ZERO).await?;
            api::submit_and_drain(&exec, warm.clone()).await?;
            api::execute_parallel(&exec, warm).await?;
            // (wall time, process usage) per rep. CPU time and context switches (all
            // threads) say where the time goes, and move less with other processes' load.
            let mut t = [Vec::new(), Vec::new(), Vec::new()];
            // Interleaved, so a change in machine load hits all three alike.
            for _ in 0..plan.reps {
                let u = sys::usage();
                let wall = raw::run(n, c, Duration::ZERO).await?;
                t[0].push((wall, sys::usage() - u));
                let q = qs.clone();
                let u = sys::usage();
                let wall = api::submit_and_drain(&exec, q).await?;
                t[1].push((wall, sys::usage() - u));
                let q = qs.clone();
                let u = sys::usage();
                let wall = api::execute_parallel(&exec, q).await?;
                t[2].push((wall, sys::usage() - u));
            }
            Ok::<_, String>(t)
        })?
    });
    let [raw_t, next_t, exec_t] = match result {
        Ok(t) => t,
        Err(e) => {
            report.fail(format!("overhead N={n} C={c}: {e}"));
            return;
        }
    };
    let timing = |samples: &[(Duration, sys::Usage)]| {
        let per_call = |f: &dyn Fn(&(Duration, sys::Usage)) -> f64| {
            let v: Vec<f64> = samples.iter().map(f).collect();
            median_min(&v).0 / n as f64
        };
        let wall: Vec<f64> = samples.iter().map(|s| s.0.as_secs_f64()).collect();
        let (med, min) = median_min(&wall);
        Timing {
            med,
            min,
            rate: n as f64 / med,
            cpu_ns: per_call(&|s| s.1.cpu.as_secs_f64() * 1e9),
            switches: per_call(&|s| s.1.switches as f64),
        }
    };
    let raw = timing(&raw_t);
    report.line(
        Line::new("overhead")
            .kv("impl", "raw_tokio")
            .kv("n", n)
            .kv("c", c)
            .kv("reps", plan.reps)
            .f("measured_s", raw.med, 6)
            .f("min_s", raw.min, 6)
            .f("calls_per_s", raw.rate, 0)
            .f("cpu_ns_per_call", raw.cpu_ns, 0)
            .f("switches_per_call", raw.switches, 4),
    );
    report.row(Row {
        what: format!(
            "raw tokio JoinSet+Semaphore, no-op tasks, N={} C={c}",
            thousands(n as f64)
        ),
        measured: format!("{}/s", thousands(raw.rate)),
        ideal: "-".into(),
        ratio: None,
        target: "-".into(),
        met: None,
    });
    let mut ours = vec![
        (
            "rust_next".to_owned(),
            "Rust submit + next",
            timing(&next_t),
        ),
        (
            "rust_execute".to_owned(),
            "Rust execute_parallel",
            timing(&exec_t),
        ),
    ];
    if let Some(host) = c_host(plan, report) {
        match host.overhead(n, c, plan.reps) {
            Ok(lines) => {
                for l in lines {
                    let fields = (
                        l.get("impl"),
                        l.num("measured_s"),
                        l.num("min_s"),
                        l.num("cpu_ns_per_call"),
                        l.num("switches_per_call"),
                    );
                    let (Some(imp), Some(med), Some(min), Some(cpu_ns), Some(switches)) = fields
                    else {
                        report.fail(format!("C host printed an incomplete line: {l}"));
                        continue;
                    };
                    let label = match imp {
                        "c_abi_next" => "C ABI submit + batch_next",
                        "c_abi_execute" => "C ABI pagent_execute",
                        _ => "C ABI",
                    };
                    let t = Timing {
                        med,
                        min,
                        rate: n as f64 / med,
                        cpu_ns,
                        switches,
                    };
                    ours.push((imp.to_owned(), label, t));
                }
            }
            Err(e) => report.fail(e),
        }
    }
    for (imp, label, t) in ours {
        let ratio = t.rate / raw.rate;
        report.line(
            Line::new("overhead")
                .kv("impl", &imp)
                .kv("n", n)
                .kv("c", c)
                .kv("reps", plan.reps)
                .f("measured_s", t.med, 6)
                .f("min_s", t.min, 6)
                .f("calls_per_s", t.rate, 0)
                .f("cpu_ns_per_call", t.cpu_ns, 0)
                .f("switches_per_call", t.switches, 4)
                .f("ideal_calls_per_s", raw.rate, 0)
                .f("ratio", ratio, 4)
                .f("cpu_ratio", raw.cpu_ns / t.cpu_ns, 4)
                .f("target_calls_per_s", OVERHEAD_TARGET, 0),
        );
        report.row(Row {
            what: format!("overhead {label}, N={} C={c}", thousands(n as f64)),
            measured: format!("{}/s", thousands(t.rate)),
            ideal: format!("{}/s (raw)", thousands(raw.rate)),
            ratio: Some(ratio),
            target: format!(">= {}/s", thousands(OVERHEAD_TARGET)),
            met: Some(t.rate >= OVERHEAD_TARGET),
        });
        report.row(Row {
            what: "  CPU time per call (all threads)".into(),
            measured: format!("{:.2} us", t.cpu_ns / 1e3),
            ideal: format!("{:.2} us (raw)", raw.cpu_ns / 1e3),
            ratio: Some(raw.cpu_ns / t.cpu_ns),
            target: "-".into(),
            met: None,
        });
        report.row(Row {
            what: "  context switches per call (all threads)".into(),
            measured: format!("{:.3}", t.switches),
            ideal: format!("{:.3} (raw)", raw.switches),
            ratio: None,
            target: "-".into(),
            met: None,
        });
    }
    match api::mock_cost_ns(n) {
        Ok(ns) => {
            report.line(Line::new("agent_cost").kv("impl", "mock").kv("n", n).f(
                "ns_per_call",
                ns,
                1,
            ));
            report.row(Row {
                what: "  the mock agent's own cost, inside each call above".into(),
                measured: format!("{ns:.0} ns/call"),
                ideal: "-".into(),
                ratio: None,
                target: "-".into(),
                met: None,
            });
        }
        Err(e) => report.fail(format!("mock agent cost: {e}")),
    }
}

/// Wall time (median, min) and its rate, and CPU time per call, of one variant.
struct Timing {
    med: f64,
    min: f64,
    rate: f64,
    cpu_ns: f64,
    switches: f64,
}

/// The C host, compiled on first use; `None` (with a note or a failure) if unavailable.
fn c_host(plan: &Plan, report: &mut Report) -> Option<chost::CHost> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.to_path_buf();
    // Quick runs come from `cargo test`, which must not start a nested cargo build.
    let may_build = !plan.quick;
    match chost::CHost::build(
        &repo(),
        &profile_dir,
        &profile_dir.join("bench-c"),
        may_build,
    ) {
        Ok(h) => Some(h),
        Err(chost::Unavailable::Skipped(why)) => {
            report.note(format!("C ABI figures skipped: {why}"));
            None
        }
        Err(chost::Unavailable::Broken(why)) => {
            report.fail(why);
            None
        }
    }
}

fn memory(plan: &Plan, report: &mut Report) {
    let (n, latency) = plan.memory;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            report.fail(format!("memory: cannot find this binary: {e}"));
            return;
        }
    };
    let mut per_call = [None, None];
    for (k, which) in ["raw", "ours"].into_iter().enumerate() {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--child",
            which,
            &n.to_string(),
            &latency.as_millis().to_string(),
        ]);
        let done = match sys::run_with_limit(&mut cmd, latency * 4 + Duration::from_secs(120)) {
            Ok(d) => d,
            Err(e) => {
                report.fail(format!("memory {which}: {e}"));
                continue;
            }
        };
        if !done.ok() {
            report.fail(format!("memory {which}: {}", done.describe()));
            continue;
        }
        match done.stdout.lines().find_map(Line::parse) {
            Some(l) => {
                per_call[k] = l.num("bytes_per_call");
                report.line(l);
            }
            None => report.fail(format!("memory {which}: no result line")),
        }
    }
    if let [Some(raw), Some(ours)] = per_call {
        let ratio = raw / ours;
        report.row(Row {
            what: format!("memory per in-flight call, N=C={}", thousands(n as f64)),
            measured: format!("{ours:.0} B"),
            ideal: format!("{raw:.0} B (raw)"),
            ratio: Some(ratio),
            target: format!("<= {MEMORY_TARGET:.0} B"),
            met: Some(ours <= MEMORY_TARGET),
        });
    }
}

/// `--child raw|ours N LATENCY_MS`: holds N calls in flight and prints the RSS growth.
fn memory_child(args: &[String]) -> ExitCode {
    let parsed = match args {
        [which, n, ms] => match (n.parse::<usize>(), ms.parse::<u64>()) {
            (Ok(n), Ok(ms)) if n > 0 => Some((which.as_str(), n, Duration::from_millis(ms))),
            _ => None,
        },
        _ => None,
    };
    let Some((which, n, latency)) = parsed else {
        eprintln!("usage: bench --child raw|ours N LATENCY_MS");
        return ExitCode::from(2);
    };
    let result = match which {
        "raw" => memory_raw(n, latency),
        "ours" => memory_ours(n, latency),
        _ => Err(format!("unknown memory probe {which:?}")),
    };
    match result {
        Ok((before, during)) => {
            let line = Line::new("memory")
                .kv("impl", if which == "raw" { "raw_tokio" } else { "ours" })
                .kv("n", n)
                .kv("c", n)
                .kv("latency_ms", latency.as_millis())
                .kv("rss_before_kb", before / 1024)
                .kv("rss_during_kb", during / 1024)
                .f(
                    "bytes_per_call",
                    (during as f64 - before as f64) / n as f64,
                    0,
                );
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("memory {which}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until `ready()` or `limit`.
fn wait_until(limit: Duration, ready: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !ready() {
        if Instant::now() > deadline {
            return Err("calls did not all start in time".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let the last polls finish (their timers registered) before reading.
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}

fn memory_ours(n: usize, latency: Duration) -> Result<(u64, u64), String> {
    let agent = std::sync::Arc::new(api::CountingMock::new(latency)?);
    let exec = api::executor_over(n, agent.clone())?;
    // Warm-up: start the runtime and its threads before the baseline.
    api::block_on(api::submit_and_drain(
        &api::executor(64, Duration::ZERO)?,
        api::questions(1000),
    ))??;
    let qs = api::questions(n);
    let before = sys::rss_bytes().ok_or("no VmRSS")?;
    let mut batch = exec.submit(qs).map_err(|e| e.to_string())?;
    let probe = batch.probe();
    wait_until(latency / 2, || {
        agent.started() == n && exec.in_flight() == n
    })?;
    let during = sys::rss_bytes().ok_or("no VmRSS")?;
    if probe.progress().0 != 0 || exec.in_flight() != n {
        return Err("calls finished before the reading; raise the latency".into());
    }
    let mut seen = api::Seen::new(n);
    api::block_on(async {
        while let Some(r) = batch.next().await {
            seen.check(&r)?;
        }
        seen.finish()
    })??;
    Ok((before, during))
}

fn memory_raw(n: usize, latency: Duration) -> Result<(u64, u64), String> {
    let handle = parallel_agents::runtime::handle().map_err(|e| e.to_string())?;
    handle.block_on(raw::run(1000, 64, Duration::ZERO))?;
    let before = sys::rss_bytes().ok_or("no VmRSS")?;
    let t0 = Instant::now();
    let (mut set, started) = raw::sleepers(&handle, n, latency);
    wait_until(latency / 2, || {
        started.load(std::sync::atomic::Ordering::Acquire) == n
    })?;
    let during = sys::rss_bytes().ok_or("no VmRSS")?;
    if t0.elapsed() >= latency {
        return Err("tasks finished before the reading; raise the latency".into());
    }
    let mut seen = vec![false; n];
    handle.block_on(async {
        while let Some(r) = set.join_next().await {
            let i = r.map_err(|e| e.to_string())?;
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("raw task {i} joined twice"));
            }
        }
        Ok(())
    })?;
    if seen.iter().any(|s| !s) {
        return Err("a raw task never joined".into());
    }
    Ok((before, during))
}

fn consensus(plan: &Plan, report: &mut Report) {
    let rounds = plan.consensus_rounds;
    let handle = match parallel_agents::runtime::handle() {
        Ok(h) => h,
        Err(e) => {
            report.fail(format!("consensus: {e}"));
            return;
        }
    };
    let raw_us = match raw::consensus_rounds(&handle, CONSENSUS_AGENTS, rounds) {
        Ok(us) => us,
        Err(e) => {
            report.fail(e);
            return;
        }
    };
    let stats = |us: &[f64]| {
        (
            quantile(us, 0.5),
            quantile(us, 0.99),
            us.iter().sum::<f64>() / us.len() as f64,
        )
    };
    let (raw50, raw99, raw_mean) = stats(&raw_us);
    report.line(
        Line::new("consensus")
            .kv("impl", "raw_tokio")
            .kv("agents", CONSENSUS_AGENTS)
            .kv("rounds", rounds)
            .f("p50_us", raw50, 2)
            .f("p99_us", raw99, 2)
            .f("mean_us", raw_mean, 2),
    );
    report.row(Row {
        what: "consensus p50, raw tokio: 5 no-op tasks in a JoinSet, block_on per round".into(),
        measured: format!("{raw50:.1} us"),
        ideal: "-".into(),
        ratio: None,
        target: "-".into(),
        met: None,
    });
    let inline = api::mock(
        Duration::ZERO,
        MockAnswers::Vote(vec![("Paris".into(), 1.0)]),
    )
    .and_then(|agent| raw::consensus_inline(&handle, &agent, CONSENSUS_AGENTS, rounds));
    match inline {
        Ok(us) => {
            let (p50, p99, mean) = stats(&us);
            report.line(
                Line::new("consensus")
                    .kv("impl", "inline_mock")
                    .kv("agents", CONSENSUS_AGENTS)
                    .kv("rounds", rounds)
                    .f("p50_us", p50, 2)
                    .f("p99_us", p99, 2)
                    .f("mean_us", mean, 2),
            );
            report.row(Row {
                what: "consensus p50, 5 mock calls polled inline in one block_on (no spawn)".into(),
                measured: format!("{p50:.1} us"),
                ideal: "-".into(),
                ratio: None,
                target: "-".into(),
                met: None,
            });
        }
        Err(e) => report.fail(e),
    }
    let mut ours: Vec<(String, f64, f64, f64)> = Vec::new();
    match api::consensus_rounds(CONSENSUS_AGENTS, rounds) {
        Ok(us) => {
            let (a, b, m) = stats(&us);
            ours.push(("rust_api".into(), a, b, m));
        }
        Err(e) => report.fail(e),
    }
    if let Some(host) = c_host(plan, report) {
        match host.consensus(rounds) {
            Ok(lines) => {
                for l in lines {
                    match (l.num("p50_us"), l.num("p99_us"), l.num("mean_us")) {
                        (Some(a), Some(b), Some(m)) => ours.push(("c_abi".into(), a, b, m)),
                        _ => report.fail(format!("C host printed an incomplete line: {l}")),
                    }
                }
            }
            Err(e) => report.fail(e),
        }
    }
    for (imp, p50, p99, mean) in ours {
        report.line(
            Line::new("consensus")
                .kv("impl", &imp)
                .kv("agents", CONSENSUS_AGENTS)
                .kv("rounds", rounds)
                .f("p50_us", p50, 2)
                .f("p99_us", p99, 2)
                .f("mean_us", mean, 2)
                .f("ideal_p50_us", raw50, 2)
                .f("ratio", raw50 / p50, 4)
                .f("target_p50_us", CONSENSUS_TARGET_US, 0),
        );
        let label = if imp == "c_abi" {
            "C ABI pagent_run_consensus"
        } else {
            "Rust block_on(execute_with_consensus)"
        };
        report.row(Row {
            what: format!("consensus p50, {label}"),
            measured: format!("{p50:.1} us"),
            ideal: format!("{raw50:.1} us (raw)"),
            ratio: Some(raw50 / p50),
            target: format!("<= {CONSENSUS_TARGET_US:.0} us"),
            met: Some(p50 <= CONSENSUS_TARGET_US),
        });
        report.row(Row {
            what: format!("consensus p99, {label}"),
            measured: format!("{p99:.1} us"),
            ideal: format!("{raw99:.1} us (raw)"),
            ratio: Some(raw99 / p99),
            target: "-".into(),
            met: None,
        });
    }
}

/// `--replot`: redraws `throughput.svg` from the `results.txt` beside it.
fn replot(out_dir: &Path) -> ExitCode {
    let path = out_dir.join("results.txt");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let report = Report {
        lines: text.lines().filter_map(Line::parse).collect(),
        ..Report::default()
    };
    let load = |bench: &str| {
        report
            .lines
            .iter()
            .find(|l| l.get("bench") == Some(bench))
            .and_then(|l| l.num("loadavg_1m"))
            .unwrap_or(0.0)
    };
    match write_plot(&report, out_dir, load("env").max(load("env_end"))) {
        Ok(p) => {
            println!("plot: {}", p.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `throughput.svg` into `out_dir` if the report has latency runs to plot.
fn write_plot(report: &Report, out_dir: &Path, load: f64) -> Result<PathBuf, String> {
    let subtitle = format!(
        "{}; {} ms latency; {} cores, load {load:.2}",
        svg::workload_summary(report),
        report
            .find("latency_sweep", "ours")
            .next()
            .and_then(|l| l.get("latency_ms"))
            .unwrap_or("?"),
        report
            .lines
            .iter()
            .find_map(|l| l.get("cores"))
            .map_or_else(|| sys::cores().to_string(), str::to_owned),
    );
    let plot = svg::throughput_plot(report, &subtitle).ok_or("no latency runs to plot")?;
    let path = out_dir.join("throughput.svg");
    std::fs::write(&path, plot).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Prints the tables, writes `results.txt` and `throughput.svg`, and picks the exit code.
fn finish(report: &Report, out_dir: &Path, load: [f64; 3], load_end: [f64; 3]) -> ExitCode {
    println!(
        "\n== Results (load average 1 min: {:.2} at start, {:.2} at end)",
        load[0], load_end[0]
    );
    print!("{}", report.table());
    if !report.peers.is_empty() {
        println!("\n== Peers (ours / peer: > 1 means we do better)");
        print!("{}", report.peer_table());
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    let mut failures = report.failures.clone();
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        failures.push(format!("cannot create {}: {e}", out_dir.display()));
    }
    let results = out_dir.join("results.txt");
    let text: String = report.lines.iter().map(|l| format!("{l}\n")).collect();
    match std::fs::write(&results, text) {
        Ok(()) => println!("\nkey=value lines: {}", results.display()),
        Err(e) => failures.push(format!("cannot write {}: {e}", results.display())),
    }
    if report.find("latency_sweep", "ours").next().is_some() {
        match write_plot(report, out_dir, load[0].max(load_end[0])) {
            Ok(p) => println!("plot: {}", p.display()),
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        println!("all results checked: none lost, duplicated or wrong");
        ExitCode::SUCCESS
    } else {
        println!("\nFAILED ({} wrong results):", failures.len());
        for f in &failures {
            println!("  {f}");
        }
        ExitCode::FAILURE
    }
}
