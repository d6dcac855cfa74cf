//! Builds and runs the native hosts in `examples-c/` (C examples, the C++ host, the C
//! boundary tests, and the Go host) against the library this `cargo test` built:
//! `make -C examples-c test LIBDIR=<target>/<profile>`, every C/C++ program under
//! valgrind. Needs make, a C and a C++ compiler, valgrind and (unless it is missing, then
//! that part is skipped with a message, except under CI, which must have it) go.
//!
//! `cargo test` compiles the library's staticlib and cdylib into `<profile>/deps/` but
//! copies them up to `<profile>/` only on `cargo build`, so this test first runs
//! `cargo build --lib` with the same profile, target and features. That reuses what the
//! test build compiled (it only links the files into place) and leaves the hosts linking
//! exactly the library under test, in the directory documented for hosts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `<target-dir>/[<triple>/]<profile>`: where cargo put this test binary's library.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    // <profile>/deps/c_hosts-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <profile>/deps/")
        .to_path_buf()
}

/// Runs `cargo build --lib` for the profile, target and features of this test build.
fn build_library(profile_dir: &Path) {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // CARGO_TARGET_TMPDIR is <target-dir>/tmp, whatever --target-dir or --target say.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target-dir>/tmp");
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("profile directory name");
    let mut args: Vec<String> = vec!["build".into(), "--lib".into()];
    args.push("--manifest-path".into());
    args.push(manifest_dir.join("Cargo.toml").display().to_string());
    args.push("--target-dir".into());
    args.push(target_dir.display().to_string());
    args.push("--profile".into());
    // The directory of the `dev` profile is called `debug`.
    args.push(if profile == "debug" { "dev" } else { profile }.into());
    // A `--target` build puts its profiles under <target-dir>/<triple>/.
    let parent = profile_dir.parent().expect("profile dir has a parent");
    if parent != target_dir {
        let triple = parent.file_name().and_then(|n| n.to_str()).expect("triple");
        args.push("--target".into());
        args.push(triple.into());
    }
    // The same features as this test build, so cargo reuses its library.
    args.push("--no-default-features".into());
    // Keep this list in step with [features] in Cargo.toml ("default" counts too).
    let mut features = Vec::new();
    if cfg!(feature = "default") {
        features.push("default");
    }
    if cfg!(feature = "python") {
        features.push("python");
    }
    if cfg!(feature = "openai") {
        features.push("openai");
    }
    if !features.is_empty() {
        args.push("--features".into());
        args.push(features.join(","));
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo}: {e}"));
    assert!(
        out.status.success(),
        "{cargo} {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fails unless `<profile>/<name>` exists and is the file this test build made in
/// `<profile>/deps/<name>` (cargo hard-links it up, or copies it).
fn assert_fresh(profile_dir: &Path, name: &str) {
    let lib = profile_dir.join(name);
    let built = profile_dir.join("deps").join(name);
    let (a, b) = match (std::fs::metadata(&lib), std::fs::metadata(&built)) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!(
            "missing library: {} ({:?}) / {} ({:?})",
            lib.display(),
            a.err(),
            built.display(),
            b.err()
        ),
    };
    use std::os::unix::fs::MetadataExt;
    let same = (a.dev(), a.ino()) == (b.dev(), b.ino())
        || (a.len() == b.len() && std::fs::read(&lib).ok() == std::fs::read(&built).ok());
    assert!(
        same,
        "{} is not the library this test build made ({}); features or profile differ?",
        lib.display(),
        built.display()
    );
}

fn have(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn c_cpp_and_go_hosts_pass_under_valgrind() {
    let dir = profile_dir();
    build_library(&dir);
    assert_fresh(&dir, "libparallel_agents.a");
    assert_fresh(&dir, "libparallel_agents.so");

    for tool in ["make", "valgrind"] {
        assert!(
            have(tool, "--version"),
            "`{tool}` is not installed; the C hosts need it (apt-get install {tool})"
        );
    }
    let skip_go = !have("go", "version");
    // CI installs go, so a skip there would hide a broken install step.
    assert!(
        !(skip_go && std::env::var_os("CI").is_some()),
        "`go` is not installed under CI (apt-get install golang-go)"
    );
    if skip_go {
        eprintln!("SKIPPING the Go host: `go` is not installed (apt-get install golang-go)");
    }

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples-c");
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    // One stream, so valgrind's reports stay next to the program they are about.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec make \"$@\" 2>&1")
        .arg("make")
        .arg("-C")
        .arg(&examples)
        .arg(format!("-j{jobs}"))
        .arg("--output-sync=target")
        .arg("test")
        .arg(format!("LIBDIR={}", dir.display()));
    if skip_go {
        cmd.arg("SKIP_GO=1");
    }
    // Do not inherit a parent make's jobserver or flags.
    for var in ["MAKEFLAGS", "MFLAGS", "MAKELEVEL"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("cannot run make");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "make -C examples-c test failed ({}):\n{log}",
        out.status
    );
    let summary = log
        .lines()
        .filter(|l| l.starts_with("make test:") || l.starts_with("=== SKIP"))
        .collect::<Vec<_>>()
        .join("\n");
    println!("{summary}");
    assert!(
        summary.contains(" 0 failed"),
        "no summary from make test:\n{log}"
    );
}
