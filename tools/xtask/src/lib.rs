//! Project chores, as a library so that tests and tools share them with the `xtask`
//! binary: generating the C header ([`header`]) and installing the library the way a C
//! library installs ([`install`]).

pub mod header;
pub mod install;

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).map(PathBuf::from).unwrap_or(here)
}

/// The ffi crate: its sources, `cbindgen.toml` and `include/`.
pub fn ffi_dir() -> PathBuf {
    workspace_root().join("crates/parallel-agents-ffi")
}
