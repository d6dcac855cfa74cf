//! Keeps the benchmark runner from rotting: `bench --quick` must exit 0 (every result
//! checked) and write `key=value` lines the way BENCHMARKS.md says.

use std::collections::HashMap;
use std::process::Command;

fn parse(line: &str) -> Option<HashMap<&str, &str>> {
    line.split_whitespace()
        .map(|kv| kv.split_once('=').filter(|(k, _)| !k.is_empty()))
        .collect()
}

#[test]
fn quick_run_succeeds_and_writes_parsable_lines() {
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke");
    let _ = std::fs::remove_dir_all(&out_dir);
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .arg("--quick")
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "bench --quick failed ({}):\n{stdout}\n{stderr}",
        run.status
    );

    let text = std::fs::read_to_string(out_dir.join("results.txt")).expect("results.txt");
    let lines: Vec<HashMap<&str, &str>> = text
        .lines()
        .map(|l| parse(l).unwrap_or_else(|| panic!("not key=value: {l:?}")))
        .collect();
    let find = |bench: &str, imp: &str| {
        lines
            .iter()
            .find(|l| l.get("bench") == Some(&bench) && l.get("impl") == Some(&imp))
            .unwrap_or_else(|| panic!("no bench={bench} impl={imp} line in:\n{text}"))
    };
    let num = |l: &HashMap<&str, &str>, k: &str| -> f64 {
        l.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} is missing or not a number in {l:?}"))
    };

    assert!(lines.iter().any(|l| l.get("bench") == Some(&"env")));
    let latency = find("latency_sweep", "ours");
    for k in ["n", "c", "latency_ms", "measured_s", "ideal_s", "ratio"] {
        assert!(num(latency, k) > 0.0, "{k} in {latency:?}");
    }
    let ratio = num(latency, "measured_s") / num(latency, "ideal_s");
    assert!((1.0 / ratio - num(latency, "ratio")).abs() < 1e-3);
    for imp in ["raw_tokio", "rust_next", "rust_execute"] {
        assert!(num(find("overhead", imp), "calls_per_s") > 0.0);
    }
    assert!(num(find("overhead", "rust_next"), "ratio") > 0.0);
    for imp in ["raw_tokio", "ours"] {
        num(find("memory", imp), "bytes_per_call");
    }
    assert!(num(find("consensus", "rust_api"), "p50_us") > 0.0);
    assert!(out_dir.join("throughput.svg").exists());
    // The same lines are echoed on stdout, and nothing failed.
    assert!(stdout.contains("all results checked"));
}
