//! `cargo run -p xtask -- <command>`:
//!
//! - `header`: regenerates `crates/parallel-agents-ffi/include/parallel_agents.h`.
//! - `install --prefix DIR [--profile release|debug] [--features LIST]`: builds the ffi
//!   crate and installs it under DIR like a C library (see [`xtask::install`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("header") => xtask::header::write().map(|changed| {
            let what = if changed { "written" } else { "unchanged" };
            println!("{}: {what}", xtask::header::path().display());
        }),
        Some("install") => xtask::install::main(&args[1..]),
        _ => Err("usage: cargo run -p xtask -- header | install --prefix DIR [--profile release|debug] [--features LIST]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
