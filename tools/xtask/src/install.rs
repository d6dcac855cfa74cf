//! `xtask install`: the library installed under a prefix the way a C library installs,
//! as cargo-c would lay it out:
//!
//! ```text
//! PREFIX/include/parallel_agents.h
//! PREFIX/lib/libparallel_agents.so.0.1.0      (soname libparallel_agents.so.0.1)
//! PREFIX/lib/libparallel_agents.so.0.1 -> libparallel_agents.so.0.1.0
//! PREFIX/lib/libparallel_agents.so     -> libparallel_agents.so.0.1
//! PREFIX/lib/libparallel_agents.a
//! PREFIX/lib/pkgconfig/parallel_agents.pc     (Libs.private for static links)
//! ```
//!
//! cargo-c itself is not used: built from crates.io it costs CI several minutes on two
//! cores, and Debian's is too old for this toolchain. The soname is set when the ffi
//! crate links (its build script); the version numbers come from the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What to install and where.
#[derive(Debug)]
pub struct Options {
    /// The installation prefix.
    pub prefix: PathBuf,
    /// Cargo profile: `release` (default) or `dev`/`debug`.
    pub profile: String,
    /// Cargo features of the ffi crate; `None`: its defaults (`python`, `openai`).
    pub features: Option<Vec<String>>,
    /// Build first (default); `false` installs what the profile's directory holds.
    pub build: bool,
}

/// The version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `libparallel_agents.so.MAJOR.MINOR` for 0.x (where a minor release may break the ABI),
/// else `libparallel_agents.so.MAJOR`.
pub fn soname() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    if major == "0" {
        format!("libparallel_agents.so.0.{minor}")
    } else {
        format!("libparallel_agents.so.{major}")
    }
}

/// `xtask install --prefix DIR [--profile P] [--features LIST] [--no-build]`.
pub fn main(args: &[String]) -> Result<(), String> {
    let mut o = Options {
        prefix: PathBuf::new(),
        profile: "release".into(),
        features: None,
        build: true,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--prefix" => o.prefix = PathBuf::from(value()?),
            "--profile" => o.profile = value()?,
            "--features" => {
                o.features = Some(
                    value()?
                        .split(',')
                        .filter(|f| !f.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "--no-build" => o.build = false,
            other => return Err(format!("install: unknown argument {other:?}")),
        }
    }
    if o.prefix.as_os_str().is_empty() {
        return Err("install: --prefix DIR is required".into());
    }
    install(&o)
}

/// Builds (unless told not to) and installs.
pub fn install(o: &Options) -> Result<(), String> {
    let root = crate::workspace_root();
    // Where cargo puts its output: CARGO_TARGET_DIR (relative to the root) or target/.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), |d| root.join(d));
    let profile_dir = target.join(match o.profile.as_str() {
        "dev" | "debug" => "debug",
        p => p,
    });
    if o.build {
        build(&root, o)?;
    }
    let prefix = absolute(&o.prefix)?;
    let (lib, include, pkgconfig) = (
        prefix.join("lib"),
        prefix.join("include"),
        prefix.join("lib/pkgconfig"),
    );
    for d in [&lib, &include, &pkgconfig] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let soname = soname();
    let real = format!("libparallel_agents.so.{VERSION}");
    copy(
        &profile_dir.join("libparallel_agents_ffi.so"),
        &lib.join(&real),
    )?;
    symlink(&real, &lib.join(&soname))?;
    symlink(&soname, &lib.join("libparallel_agents.so"))?;
    copy(
        &profile_dir.join("libparallel_agents_ffi.a"),
        &lib.join("libparallel_agents.a"),
    )?;
    copy(&crate::header::path(), &include.join("parallel_agents.h"))?;
    let python = o
        .features
        .as_ref()
        .map_or(true, |f| f.iter().any(|x| x == "python" || x == "default"));
    let pc = pkg_config(&prefix, python)?;
    std::fs::write(pkgconfig.join("parallel_agents.pc"), pc)
        .map_err(|e| format!("parallel_agents.pc: {e}"))?;
    println!(
        "installed parallel_agents {VERSION} under {}",
        prefix.display()
    );
    Ok(())
}

fn build(root: &Path, o: &Options) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--lib", "-p", "parallel-agents-ffi", "--profile"])
        .arg(&o.profile);
    if let Some(f) = &o.features {
        cmd.arg("--no-default-features");
        if !f.is_empty() {
            cmd.arg("--features").arg(f.join(","));
        }
    }
    let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    Ok(())
}

/// The pkg-config file. `Libs.private` lists what a static link needs besides the
/// archive: the system libraries, and libpython's flags when built with `python`.
pub fn pkg_config(prefix: &Path, python: bool) -> Result<String, String> {
    let mut private = vec!["-lpthread".to_owned(), "-ldl".into(), "-lm".into()];
    if python {
        let out = Command::new("python3-config")
            .args(["--embed", "--ldflags"])
            .output()
            .map_err(|e| format!("python3-config (for Libs.private): {e}"))?;
        if !out.status.success() {
            return Err("python3-config --embed --ldflags failed".into());
        }
        let flags = String::from_utf8_lossy(&out.stdout);
        private.splice(0..0, flags.split_whitespace().map(str::to_owned));
    }
    Ok(format!(
        "prefix={prefix}\n\
         libdir=${{prefix}}/lib\n\
         includedir=${{prefix}}/include\n\
         \n\
         Name: parallel_agents\n\
         Description: Run many AI-agent calls at once behind a small C ABI\n\
         Version: {VERSION}\n\
         Cflags: -I${{includedir}}\n\
         Libs: -L${{libdir}} -lparallel_agents\n\
         Libs.private: {private}\n",
        prefix = prefix.display(),
        private = private.join(" "),
    ))
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()))?;
    std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    // Replace, never write through: a running program may have the old file mapped.
    let _ = std::fs::remove_file(to);
    std::fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copy {} to {}: {e}", from.display(), to.display()))
}

fn symlink(target: &str, link: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| format!("symlink {} -> {target}: {e}", link.display()))
}
