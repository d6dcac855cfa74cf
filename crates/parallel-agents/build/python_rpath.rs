// Feature `python`: find libpython at run time without LD_LIBRARY_PATH. Shared by the
// build scripts of the core and the ffi crates (`include!`d), which both link libpython.

/// With the `python` feature (or, for a tool whose dependencies may enable it, always:
/// `gated = false`), every binary the package links (tests, the cdylib, a tool) gets an
/// rpath to the directory of the libpython that pyo3 linked against,
/// so it runs without `LD_LIBRARY_PATH` even when that Python lives outside the system
/// library path (pyenv, a custom prefix). The directory comes from pyo3-ffi's build
/// config (`DEP_PYTHON_PYO3_CONFIG`, hex-encoded `key=value` lines), so it is exactly the
/// interpreter pyo3 chose. The staticlib gets nothing: a C host links libpython itself.
fn python_rpath(gated: bool) {
    if gated && std::env::var_os("CARGO_FEATURE_PYTHON").is_none() {
        return;
    }
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "windows" || target_env == "msvc" {
        return;
    }
    let Ok(hex) = std::env::var("DEP_PYTHON_PYO3_CONFIG") else {
        return;
    };
    let Some(config) = decode_hex(&hex) else {
        println!("cargo:warning=cannot decode DEP_PYTHON_PYO3_CONFIG; no rpath to libpython");
        return;
    };
    let value = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
    };
    if value("shared") != Some("true") {
        return; // static libpython: nothing to find at run time
    }
    if let Some(dir) = value("lib_dir").filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

fn decode_hex(hex: &str) -> Option<String> {
    let digits = hex.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let bytes = digits
        .chunks_exact(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}
