//! A host's signal dispositions survive a Python agent (issue 11): CPython's `signal`
//! module, which `asyncio` imports, puts its own SIGINT handler in place when SIGINT is
//! at its default, and a C host that never runs Python on its main thread then ignores
//! Ctrl-C.
//!
//! Each case is a host process of its own, this test binary run again with
//! `PAGENT_SIGNAL_CHILD` set (the interpreter starts once per process, and dispositions
//! are process-wide). The host sets up SIGINT, drives an agent whose module imports
//! asyncio through the C ABI (a sync and an async callable), checks with `sigaction` that
//! no disposition changed, then raises SIGINT.
#![cfg(all(feature = "python", unix))]

use std::ffi::{c_char, CStr, CString};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

const CHILD_ENV: &str = "PAGENT_SIGNAL_CHILD";
/// Printed by a child once every disposition checked out, before it raises SIGINT.
const CHECKED: &str = "signal dispositions unchanged";
/// Printed by a child whose own SIGINT handler ran.
const HANDLED_LINE: &str = "host handler ran";

static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Installs `handler` (`SIG_DFL`, `SIG_IGN` or a function) for `sig`.
fn set_disposition(sig: libc::c_int, handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with an empty mask and a valid handler.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(sig, &sa, ptr::null_mut()), 0);
    }
}

/// `(signal, handler, flags)` for every classic signal, as `sigaction` reports them.
fn dispositions() -> Vec<(libc::c_int, libc::sighandler_t, libc::c_int)> {
    (1..32)
        .filter_map(|sig| {
            // SAFETY: a query (no new action) into a zeroed struct.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                (libc::sigaction(sig, ptr::null(), &mut old) == 0).then_some((
                    sig,
                    old.sa_sigaction,
                    old.sa_flags,
                ))
            }
        })
        .collect()
}

fn last_error() -> String {
    // SAFETY: the library's thread-local message, valid until the next call on this thread.
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// Answers from `imports_asyncio.py:<callable>` for two questions, through the C ABI.
fn ask_through_the_c_abi(callable: &str) -> Vec<String> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../parallel-agents/tests/python/imports_asyncio.py");
    let target = CString::new(format!("{}:{callable}", file.display())).unwrap();
    let mut agent = ptr::null_mut();
    assert_eq!(
        pagent_agent_python(target.as_ptr(), &mut agent),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let mut exec = ptr::null_mut();
    assert_eq!(
        pagent_executor_new(ptr::null(), agent, &mut exec),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    pagent_agent_free(agent);
    let qs = [c"a", c"b"];
    let ptrs: Vec<*const c_char> = qs.iter().map(|q| q.as_ptr()).collect();
    let mut results = ptr::null_mut();
    assert_eq!(
        pagent_execute(exec, ptrs.as_ptr(), ptrs.len(), &mut results),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let answers = (0..qs.len())
        .map(|i| {
            let mut r = ptr::null();
            assert_eq!(
                pagent_results_get(results, i, &mut r),
                pagent_status::PAGENT_OK
            );
            let a = pagent_result_answer(r);
            assert!(!a.is_null(), "no answer: {:?}", unsafe {
                CStr::from_ptr(pagent_result_error(r))
            });
            // SAFETY: a NUL-terminated answer owned by `results`, copied before the free.
            unsafe { CStr::from_ptr(a) }.to_string_lossy().into_owned()
        })
        .collect();
    pagent_results_free(results);
    pagent_executor_free(exec);
    answers
}

/// The host process: runs only when started by one of the tests below.
#[test]
fn child_host() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "default" => set_disposition(libc::SIGINT, libc::SIG_DFL),
        "handler" => set_disposition(
            libc::SIGINT,
            on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t,
        ),
        other => panic!("unknown mode {other:?}"),
    }
    let before = dispositions();
    assert_eq!(ask_through_the_c_abi("answer"), ["sync 0: a", "sync 1: b"]);
    assert_eq!(
        ask_through_the_c_abi("aanswer"),
        ["async 0: a", "async 1: b"]
    );
    assert_eq!(dispositions(), before, "(signal, handler, flags) changed");
    println!("{CHECKED}");
    std::io::stdout().flush().unwrap();
    // SAFETY: raising a signal whose disposition this process chose above.
    unsafe { libc::raise(libc::SIGINT) };
    // With SIG_DFL, not reached.
    assert_eq!(
        HANDLED.load(Ordering::SeqCst),
        1,
        "the host's handler did not run"
    );
    println!("{HANDLED_LINE}");
}

/// Runs [`child_host`] in a fresh process with `mode`.
fn host(mode: &str) -> Output {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_host", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap();
    println!(
        "child ({mode}): {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sigint_at_its_default_still_kills_the_host() {
    let out = host("default");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(CHECKED),
        "the host failed before raising SIGINT"
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGINT),
        "SIGINT did not kill the host: {:?}",
        out.status
    );
}

#[test]
fn the_hosts_own_sigint_handler_stays_in_place() {
    let out = host("handler");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(CHECKED) && stdout.contains(HANDLED_LINE));
    assert!(out.status.success(), "{:?}", out.status);
}
