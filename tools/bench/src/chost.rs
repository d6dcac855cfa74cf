//! The C bench host, `bench/c_overhead.c`: compiled with `cc` against the library's
//! shared object next to this binary (`target/<profile>/libparallel_agents.so`) and
//! run as a child process that prints `key=value` lines.

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
    /// Compiles `bench/c_overhead.c` from `repo` against the library in `lib_dir`, into
    /// `out_dir`. Tries a plain link first; if that fails, adds libpython's flags from
    /// `python3-config --embed --ldflags` (for a library built with the `python` feature
    /// whose libpython the linker cannot find on its own).
    ///
    /// With `may_build` (a full run started by cargo), first asks cargo to build the
    /// library's artifacts: `cargo run --bin bench` builds the Rust library only, not the
    /// shared object. In any case a shared object older than the Rust library beside it
    /// is stale (built from older sources) and not used.
    pub fn build(
        repo: &Path,
        lib_dir: &Path,
        out_dir: &Path,
        may_build: bool,
    ) -> Result<CHost, Unavailable> {
        if may_build {
            build_library(repo)?;
        }
        let lib = lib_dir.join("libparallel_agents.so");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(so_time) = modified(&lib) else {
            return Err(Unavailable::Skipped(format!(
                "{} not found (run `cargo build --release` first)",
                lib.display()
            )));
        };
        if let Some(rlib_time) = modified(&lib_dir.join("libparallel_agents.rlib")) {
            if so_time + Duration::from_secs(5) < rlib_time {
                return Err(Unavailable::Skipped(format!(
                    "{} is older than the Rust library (run `cargo build --release` first)",
                    lib.display()
                )));
            }
        }
        if Command::new("cc").arg("--version").output().is_err() {
            return Err(Unavailable::Skipped("no C compiler (`cc`) on PATH".into()));
        }
        std::fs::create_dir_all(out_dir)
            .map_err(|e| Unavailable::Broken(format!("{}: {e}", out_dir.display())))?;
        let exe = out_dir.join("c_overhead");
        let compile = |extra: &[String]| {
            let mut cmd = Command::new("cc");
            cmd.args(["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror"])
                .arg("-I")
                .arg(repo.join("include"))
                .arg(repo.join("bench/c_overhead.c"))
                .arg("-o")
                .arg(&exe)
                .arg("-L")
                .arg(lib_dir)
                .arg("-lparallel_agents")
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
                .args(extra);
            sys::run_with_limit(&mut cmd, Duration::from_secs(120))
        };
        let first = compile(&[]).map_err(|e| Unavailable::Broken(format!("cc: {e}")))?;
        if first.ok() {
            return Ok(CHost { exe });
        }
        let python = python_ldflags();
        if !python.is_empty() {
            if let Ok(second) = compile(&python) {
                if second.ok() {
                    return Ok(CHost { exe });
                }
            }
        }
        Err(Unavailable::Broken(format!(
            "bench/c_overhead.c does not build: {}",
            first.stderr.trim()
        )))
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

/// `cargo build --lib` in this binary's profile, when this binary was started by cargo
/// (which says where it is in `CARGO`); a no-op when the library is up to date.
fn build_library(repo: &Path) -> Result<(), Unavailable> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--lib", "--quiet", "--manifest-path"])
        .arg(repo.join("Cargo.toml"));
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let done = sys::run_with_limit(&mut cmd, Duration::from_secs(900))
        .map_err(|e| Unavailable::Broken(format!("cargo build --lib: {e}")))?;
    if !done.ok() {
        return Err(Unavailable::Broken(format!(
            "cargo build --lib: {}",
            done.describe()
        )));
    }
    Ok(())
}

/// Time limit of one C host run.
const LIMIT: Duration = Duration::from_secs(600);

fn python_ldflags() -> Vec<String> {
    Command::new("python3-config")
        .args(["--embed", "--ldflags"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
