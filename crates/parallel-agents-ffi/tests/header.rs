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

#[test]
fn the_header_enum_is_the_status_list_of_pagent_status_str() {
    use parallel_agents_ffi::status::pagent_status;
    let header = std::fs::read_to_string(xtask::header::path()).expect("the header is readable");
    let body = header
        .split_once("enum pagent_status\n")
        .and_then(|(_, rest)| rest.split_once("};"))
        .map(|(body, _)| body)
        .expect("the header declares enum pagent_status");
    let entries: Vec<(String, u32)> = body
        .lines()
        .filter_map(|l| l.trim().strip_suffix(','))
        .filter_map(|l| l.split_once(" = "))
        .map(|(name, n)| (name.to_owned(), n.parse().expect("a number")))
        .collect();
    let names: Vec<(String, u32)> = pagent_status::ALL
        .iter()
        .map(|s| {
            let name = unsafe {
                std::ffi::CStr::from_ptr(parallel_agents_ffi::status::pagent_status_str(*s as u32))
            };
            (name.to_str().unwrap().to_owned(), *s as u32)
        })
        .collect();
    assert_eq!(entries, names);
}
