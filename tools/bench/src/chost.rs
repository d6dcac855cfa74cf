//! The C bench host, `bench/c_overhead.c`: compiled with `cc` the way a user's program
//! is, against the library installed (by `xtask install`) under `<profile>/bench-c/stage`
//! and found with pkg-config, then run as a child process that prints `key=value` lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::report::Line;
use crate::sys;

/// A compiled C host, ready to run.
pub struct CHost {
    exe: PathBuf,
}

/// Why the C host is not available: skipped (no compiler, no library) or broken.
pub enum Unavailable {
    /// Not a failure: this machine cannot build it (reason given).
    Skipped(String),
    /// A failure: the source no longer compiles or links against the header/library.
    Broken(String),
}

impl CHost {
    /// Installs the library of `profile_dir` (`target/<profile>`) under
    /// `out_dir/stage` and compiles `bench/c_overhead.c` from `repo` against it, into
    /// `out_dir`. With `may_build` (a full run started by cargo), the install builds the
    /// library first (`cargo run -p bench` builds only what the bench links, not the
    /// shared object); otherwise it takes what `profile_dir` holds.
    pub fn build(
        repo: &Path,
        profile_dir: &Path,
        out_dir: &Path,
        may_build: bool,
    ) -> Result<CHost, Unavailable> {
        if Command::new("cc").arg("--version").output().is_err() {
            return Err(Unavailable::Skipped("no C compiler (`cc`) on PATH".into()));
        }
        let stage = out_dir.join("stage");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(p) => p.to_owned(),
        };
        let build = may_build && std::env::var_os("CARGO").is_some();
        xtask::install::install(&xtask::install::Options {
            prefix: stage.clone(),
            profile: profile.clone(),
            features: None,
            build,
        })
        .map_err(|e| {
            if build {
                Unavailable::Broken(format!("xtask install: {e}"))
            } else {
                Unavailable::Skipped(format!(
                    "{e} (run `cargo build --profile {profile} -p parallel-agents-ffi` first)"
                ))
            }
        })?;
        let pkg = Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", stage.join("lib/pkgconfig"))
            .args(["--cflags", "--libs", "parallel_agents"])
            .output()
            .map_err(|e| Unavailable::Skipped(format!("pkg-config: {e}")))?;
        if !pkg.status.success() {
            return Err(Unavailable::Broken(format!(
                "pkg-config parallel_agents: {}",
                String::from_utf8_lossy(&pkg.stderr).trim()
            )));
        }
        let flags: Vec<String> = String::from_utf8_lossy(&pkg.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let exe = out_dir.join("c_overhead");
        let mut cmd = Command::new("cc");
        cmd.args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"])
            .arg(repo.join("bench/c_overhead.c"))
            .arg("-o")
            .arg(&exe)
            .args(&flags)
            .arg(format!("-Wl,-rpath,{}", stage.join("lib").display()));
        let done = sys::run_with_limit(&mut cmd, Duration::from_secs(120))
            .map_err(|e| Unavailable::Broken(format!("cc: {e}")))?;
        if !done.ok() {
            return Err(Unavailable::Broken(format!(
                "bench/c_overhead.c does not build: {}",
                done.stderr.trim()
            )));
        }
        Ok(CHost { exe })
    }

    /// Zero-latency overhead: `n` calls at concurrency `c`, median of `reps`.
    pub fn overhead(&self, n: usize, c: usize, reps: usize) -> Result<Vec<Line>, String> {
        self.run(&[
            "overhead",
            &n.to_string(),
            &c.to_string(),
            &reps.to_string(),
        ])
    }

    /// `rounds` consensus rounds of 5 zero-latency agents.
    pub fn consensus(&self, rounds: usize) -> Result<Vec<Line>, String> {
        self.run(&["consensus", &rounds.to_string()])
    }

    fn run(&self, args: &[&str]) -> Result<Vec<Line>, String> {
        let done = sys::run_with_limit(Command::new(&self.exe).args(args), LIMIT)
            .map_err(|e| format!("{}: {e}", self.exe.display()))?;
        if !done.ok() {
            return Err(format!("C host {}: {}", args.join(" "), done.describe()));
        }
        let lines: Vec<Line> = done.stdout.lines().filter_map(Line::parse).collect();
        if lines.is_empty() {
            return Err(format!("C host {} printed no results", args.join(" ")));
        }
        Ok(lines)
    }
}

/// Time limit of one C host run.
const LIMIT: Duration = Duration::from_secs(600);
