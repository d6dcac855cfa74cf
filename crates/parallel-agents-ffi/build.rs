//! Links what the optional features need (with `python`, an rpath to libpython). The
//! header is not written here: `cargo run -p xtask -- header` writes it and a test
//! checks it has not drifted, so building never touches the source tree.

include!("../parallel-agents/build/python_rpath.rs");

fn main() {
    python_rpath(true);
    soname();
}

/// The shared library's soname, as installed by `xtask install`: `libparallel_agents.so.0.MINOR`
/// while the major version is 0 (a minor release may break the ABI), else `.so.MAJOR`.
fn soname() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if !matches!(
        os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let version = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libparallel_agents.so.{version}");
}
