//! Replays the fuzz corpus on stable, so CI catches regressions without nightly or
//! libFuzzer: every file of `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (each
//! crash input ever found, kept forever) goes through its target in
//! `fuzz/src/targets.rs`, which asserts the library's rules.
//!
//! Crash inputs of bugs not yet fixed are listed in `fuzz/known_open.txt`. They are
//! replayed too, and must still fail: once a fix makes one pass, the test says so, and
//! its line comes out of the list, so it guards the fix like every other input.
//! `cargo test -p parallel-agents-ffi --test fuzz_corpus -- --ignored` runs them expecting a pass (the check
//! to run while fixing them).

#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const FUZZ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz");

/// `<target>/<file>` under `fuzz/artifacts/` of each crash input of an open bug.
fn known_open() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(FUZZ).join("known_open.txt"))
        .expect("fuzz/known_open.txt is readable");
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn target(name: &str) -> targets::Target {
    targets::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name:?}"))
        .1
}

/// Runs one input; `Err` holds the panic message.
fn run(f: targets::Target, path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).expect("readable input");
    catch_unwind(AssertUnwindSafe(|| f(&data))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".into())
    })
}

#[test]
fn corpus_and_fixed_crashes_replay_cleanly() {
    let open = known_open();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, f) in targets::TARGETS {
        let corpus = files(&Path::new(FUZZ).join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
        let artifacts = files(&Path::new(FUZZ).join("artifacts").join(name));
        for path in corpus.iter().chain(&artifacts) {
            let file = path.file_name().unwrap().to_string_lossy();
            if open.contains(&format!("{name}/{file}")) {
                continue;
            }
            ran += 1;
            if let Err(e) = run(*f, path) {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} fuzz inputs broke a rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn replay_known_open() -> Vec<(String, Result<(), String>)> {
    known_open()
        .into_iter()
        .map(|entry| {
            let (name, _) = entry.split_once('/').expect("<target>/<file>");
            let path = Path::new(FUZZ).join("artifacts").join(&entry);
            assert!(
                path.is_file(),
                "fuzz/known_open.txt lists {entry}, not a file"
            );
            let r = run(target(name), &path);
            (entry, r)
        })
        .collect()
}

#[test]
fn known_open_crashes_still_fail() {
    let fixed: Vec<String> = replay_known_open()
        .into_iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(e, _)| e)
        .collect();
    assert!(
        fixed.is_empty(),
        "fixed (take these out of fuzz/known_open.txt so they guard the fix):\n{}",
        fixed.join("\n")
    );
}

#[test]
#[ignore = "open bugs: fails until every input in fuzz/known_open.txt is fixed"]
fn known_open_crashes_are_fixed() {
    let open: Vec<String> = replay_known_open()
        .into_iter()
        .filter_map(|(e, r)| r.err().map(|m| format!("{e}: {m}")))
        .collect();
    assert!(open.is_empty(), "still failing:\n{}", open.join("\n"));
}
