//! The committed header is exactly what cbindgen (the pinned version) makes of the
//! sources: a change to the C ABI that was not followed by `cargo run -p xtask -- header`
//! fails here, and so in CI.

#[test]
fn the_committed_header_is_current() {
    let want = xtask::header::generate().expect("cbindgen runs");
    let path = xtask::header::path();
    let have = std::fs::read_to_string(&path).expect("the header is readable");
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or(have.lines().count().min(want.lines().count()), |i| i);
        panic!(
            "{} is stale (first difference at line {}): run `cargo run -p xtask -- header`",
            path.display(),
            line + 1
        );
    }
}

#[test]
fn the_version_in_the_header_is_the_crate_version() {
    use parallel_agents_ffi::{PAGENT_VERSION_MAJOR, PAGENT_VERSION_MINOR, PAGENT_VERSION_PATCH};
    let v = format!("{PAGENT_VERSION_MAJOR}.{PAGENT_VERSION_MINOR}.{PAGENT_VERSION_PATCH}");
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let s = unsafe { std::ffi::CStr::from_ptr(parallel_agents_ffi::status::pagent_version()) };
    assert_eq!(s.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
