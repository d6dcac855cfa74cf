//! What each fuzz target does, as plain functions of the input bytes.
//!
//! Nothing here depends on libFuzzer, so the same code runs under `cargo fuzz`
//! (`fuzz/fuzz_targets/<name>.rs` are one-liners that call these) and on stable, in
//! `tests/fuzz_corpus.rs`, which replays the committed corpus and every crash input.
//!
//! Each function decodes calls or values from the bytes, drives the library and asserts
//! its rules; a broken rule panics, which libFuzzer reports as a crash. The rules:
//! - C entry points: every call returns a known status, never `PAGENT_ERR_PANIC`; a
//!   failure sets a last-error message; a handle out-pointer is NULL exactly when the
//!   call failed; every handle handed out frees cleanly, and host data is released once.
//! - Pure rules: the invariants stated beside each target.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parallel_agents::aggregate::Tally;
use parallel_agents::{
    deduplicate, majority_vote, normalize_answer, AgentResult, ExecutionMetrics, MetricsRecorder,
    Outcome, TokenUsage,
};
use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::openai::*;
use parallel_agents_ffi::results::pagent_metrics;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status, pagent_status_str};

/// A target: bytes in; a broken rule panics.
pub type Target = fn(&[u8]);

/// Every target by name: the fuzz binaries and the replay test share this list, so a new
/// target cannot be fuzzed without being replayed.
pub const TARGETS: &[(&str, Target)] = &[
    ("ffi_config", ffi_config),
    ("ffi_agent", ffi_agent),
    ("ffi_openai", ffi_openai),
    ("ffi_metrics", ffi_metrics),
    ("openai_reply", openai_reply),
    ("retry_after", retry_after),
    ("header_checks", header_checks),
    ("normalize", normalize),
    ("voting", voting),
    ("metrics_json", metrics_json),
];

// ---------------------------------------------------------------------------------------
// Decoding

/// Reads values off the front of the input. Past the end every read is zero, so any input
/// decodes, and a short input is a short program.
pub struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self(data)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        let h = self.take(N);
        b[..h.len()].copy_from_slice(h);
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }

    /// A u64 biased to the edges where range checks go wrong.
    pub fn edge_u64(&mut self) -> u64 {
        match self.u8() % 10 {
            0 => 0,
            1 => 1,
            2 => u64::from(self.u8()),
            3 => u64::MAX,
            4 => u64::MAX - u64::from(self.u8()),
            5 => 1 << (self.u8() % 64),
            6 => (1 << (self.u8() % 64)) - 1,
            7 => u64::from(self.u16()),
            8 => u64::from(self.u32()),
            _ => self.u64(),
        }
    }

    pub fn edge_u32(&mut self) -> u32 {
        match self.u8() % 6 {
            0 => 0,
            1 => 1,
            2 => u32::from(self.u8()),
            3 => u32::MAX,
            4 => u32::from(self.u16()),
            _ => self.u32(),
        }
    }

    pub fn edge_usize(&mut self) -> usize {
        self.edge_u64() as usize
    }

    /// An f64 biased to NaN, infinities, signed zero, the tiniest and the plain.
    pub fn edge_f64(&mut self) -> f64 {
        match self.u8() % 12 {
            0 => 0.0,
            1 => -0.0,
            2 => f64::NAN,
            3 => f64::INFINITY,
            4 => f64::NEG_INFINITY,
            5 => f64::MIN_POSITIVE,
            6 => f64::from_bits(1), // the smallest subnormal
            7 => f64::MAX,
            8 => f64::from(self.u8()) / 255.0,
            9 => f64::from(self.u16()) / 1000.0,
            10 => -f64::from(self.u16()),
            _ => f64::from_bits(self.u64()),
        }
    }

    /// Up to 255 bytes, length first.
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    /// Up to 255 bytes with NULs dropped (C cannot pass them), as a C string.
    pub fn cstring(&mut self) -> CString {
        let b: Vec<u8> = self.bytes().iter().copied().filter(|b| *b != 0).collect();
        CString::new(b).expect("NULs were dropped")
    }

    /// Up to 255 bytes as text (invalid UTF-8 replaced).
    pub fn text(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------
// Rules of the boundary

/// Asserts the rules every status obeys; returns it.
pub fn check(s: pagent_status) -> pagent_status {
    let code = s as u32;
    // SAFETY: the library returns static NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(pagent_status_str(code)) };
    assert_ne!(name.to_bytes(), b"PAGENT_UNKNOWN_STATUS", "{s:?}");
    assert_ne!(
        s,
        pagent_status::PAGENT_ERR_PANIC,
        "a panic reached the boundary: {:?}",
        last_error()
    );
    if code >= 100 {
        assert!(!last_error().is_empty(), "failure {s:?} without a message");
    }
    s
}

fn last_error() -> String {
    // SAFETY: valid until the next fallible call on this thread; copied at once.
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// `check`, plus: a handle comes out exactly when the call succeeded.
fn check_out<T>(s: pagent_status, out: *mut T) -> pagent_status {
    check(s);
    assert_eq!(
        s == pagent_status::PAGENT_OK,
        !out.is_null(),
        "{s:?} with out-handle {out:?}"
    );
    s
}

const OK: pagent_status = pagent_status::PAGENT_OK;

/// A mock agent that answers at once.
fn quick_mock() -> *mut pagent_agent {
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    // SAFETY: initialised by the call above.
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    let mut a = ptr::null_mut();
    check_out(pagent_agent_mock(&o, &mut a), a);
    a
}

// ---------------------------------------------------------------------------------------
// C entry points

/// Config setters (any order, absurd values), shared rate limiters, NULL handles, status
/// names; then executors from the result. Rule beyond the boundary's: setters validate,
/// so whatever config they leave must make an executor.
pub fn ffi_config(data: &[u8]) {
    let mut inp = Input::new(data);
    let cfg = pagent_config_new();
    assert!(!cfg.is_null());
    let mut limiters: Vec<*mut pagent_rate_limiter> = Vec::new();
    for _ in 0..64 {
        if inp.is_empty() {
            break;
        }
        let s = match inp.u8() % 16 {
            0 => pagent_config_set_max_concurrency(cfg, inp.edge_usize()),
            1 => pagent_config_set_agent_timeout_ms(cfg, inp.edge_u64()),
            2 => pagent_config_set_deduplicate(cfg, inp.bool()),
            3 => pagent_config_set_consensus_threshold(cfg, inp.edge_f64()),
            4 => pagent_config_set_consensus_early_stop(cfg, inp.bool()),
            5 => pagent_config_set_max_retries(cfg, inp.edge_u32()),
            6 => pagent_config_set_retry_backoff_ms(cfg, inp.edge_u64(), inp.edge_u64()),
            7 => pagent_config_set_retry_timeouts(cfg, inp.bool()),
            8 => pagent_config_set_rate_limit(cfg, inp.edge_f64(), inp.edge_u32()),
            9 => pagent_config_set_stream_buffer(cfg, inp.edge_usize()),
            10 => pagent_config_set_hedge(cfg, inp.edge_u64(), inp.bool()),
            11 => pagent_config_set_max_errors(cfg, inp.edge_usize()),
            12 => {
                let mut l = ptr::null_mut();
                let s = check_out(
                    pagent_rate_limiter_new(inp.edge_f64(), inp.edge_u32(), &mut l),
                    l,
                );
                if !l.is_null() {
                    limiters.push(l);
                }
                s
            }
            13 => {
                // Attach one of the limiters, or detach with NULL.
                let i = usize::from(inp.u8());
                let l = limiters.get(i).map_or(ptr::null(), |l| *l as *const _);
                let s = check(pagent_config_set_shared_rate_limiter(cfg, l));
                assert_eq!(s, OK);
                // The config keeps its own reference: freeing the caller's is fine.
                if inp.bool() && i < limiters.len() {
                    pagent_rate_limiter_free(limiters.swap_remove(i));
                }
                s
            }
            14 => {
                // Every setter refuses a NULL config.
                let s = match inp.u8() % 4 {
                    0 => pagent_config_set_max_concurrency(ptr::null_mut(), 1),
                    1 => pagent_config_set_rate_limit(ptr::null_mut(), inp.edge_f64(), 1),
                    2 => pagent_config_set_shared_rate_limiter(ptr::null_mut(), ptr::null()),
                    _ => pagent_rate_limiter_new(1.0, 1, ptr::null_mut()),
                };
                assert_eq!(check(s), pagent_status::PAGENT_ERR_NULL);
                s
            }
            _ => {
                // Any integer has a name (unknown ones say so), never NULL.
                let p = pagent_status_str(inp.u32());
                assert!(!p.is_null());
                OK
            }
        };
        check(s);
    }
    let agent = quick_mock();
    let mut exec = ptr::null_mut();
    let s = check_out(pagent_executor_new(cfg, agent, &mut exec), exec);
    assert_eq!(
        s,
        OK,
        "a config the setters accepted made no executor: {}",
        last_error()
    );
    let pool = [agent as *const pagent_agent, agent];
    let mut exec2 = ptr::null_mut();
    let s = check_out(
        pagent_executor_new_pool(cfg, pool.as_ptr(), 2, &mut exec2),
        exec2,
    );
    assert_eq!(
        s,
        OK,
        "a config the setters accepted made no pool: {}",
        last_error()
    );
    // Free in an order the input picks; each handle keeps what it needs.
    if inp.bool() {
        pagent_config_free(cfg);
        pagent_agent_free(agent);
        for l in limiters.drain(..) {
            pagent_rate_limiter_free(l);
        }
        pagent_executor_free(exec);
        pagent_executor_free(exec2);
    } else {
        pagent_executor_free(exec);
        pagent_executor_free(exec2);
        for l in limiters.drain(..) {
            pagent_rate_limiter_free(l);
        }
        pagent_agent_free(agent);
        pagent_config_free(cfg);
    }
}

/// Counts calls of [`count_free`], per host-data pointer.
struct HostCounter {
    freed: AtomicUsize,
}

unsafe extern "C" fn count_free(user_data: *mut c_void) {
    // SAFETY: always a live `HostCounter` (see `ffi_agent`).
    let c = unsafe { &*(user_data as *const HostCounter) };
    c.freed.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn never_answer(
    _: *mut c_void,
    _: *const c_char,
    _: usize,
    _: *mut pagent_reply,
) -> i32 {
    PAGENT_CALLBACK_ERROR
}

unsafe extern "C" fn never_start(
    _: *mut c_void,
    _: *const c_char,
    _: usize,
    _: *mut pagent_pending,
) {
}

/// Agent creation (mock options with absurd rates and vote arrays, callbacks, completion
/// callbacks), stale pending tokens, executors and pools over them with NULL members.
/// Rules beyond the boundary's: a callback agent's `free_fn` runs exactly once, after
/// its agent and every executor using it are freed, and never for a failed creation.
pub fn ffi_agent(data: &[u8]) {
    let mut inp = Input::new(data);
    let host = HostCounter {
        freed: AtomicUsize::new(0),
    };
    let user_data = &host as *const HostCounter as *mut c_void;
    let mut owned_host = 0; // agents that own `host` (free_fn set, creation succeeded)
    let mut agents: Vec<*mut pagent_agent> = Vec::new();
    let mut execs: Vec<*mut pagent_executor> = Vec::new();
    for _ in 0..24 {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 7 {
            0 => {
                let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
                pagent_mock_options_init(o.as_mut_ptr());
                // SAFETY: initialised by the call above.
                let mut o = unsafe { o.assume_init() };
                o.latency_us = inp.edge_u64();
                o.jitter_us = inp.edge_u64();
                o.failure_rate = inp.edge_f64();
                o.hang_rate = inp.edge_f64();
                o.panic_rate = inp.edge_f64();
                o.seed = inp.u64();
                let n = usize::from(inp.u8() % 6);
                let texts: Vec<CString> = (0..n).map(|_| inp.cstring()).collect();
                let mut ptrs: Vec<*const c_char> = texts.iter().map(|c| c.as_ptr()).collect();
                if n > 0 && inp.u8() % 4 == 0 {
                    let k = usize::from(inp.u8()) % n;
                    ptrs[k] = ptr::null();
                }
                let weights: Vec<f64> = (0..n).map(|_| inp.edge_f64()).collect();
                match inp.u8() % 4 {
                    0 => {}
                    1 => {
                        // NULL array with a length: must be refused.
                        o.n_vote_answers = n;
                    }
                    _ => {
                        o.vote_answers = ptrs.as_ptr();
                        // Never past the array (that would be the host's bug), maybe short.
                        o.n_vote_answers = n.saturating_sub(usize::from(inp.u8() % 2));
                        if inp.bool() {
                            o.vote_weights = weights.as_ptr();
                        }
                    }
                }
                let mut a = ptr::null_mut();
                check_out(pagent_agent_mock(&o, &mut a), a);
                if !a.is_null() {
                    agents.push(a);
                }
            }
            1 => {
                let mut a = ptr::null_mut();
                let opts = if inp.bool() {
                    ptr::null()
                } else {
                    // Defaults through init, as a host would.
                    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
                    pagent_mock_options_init(o.as_mut_ptr());
                    // SAFETY: initialised by the call above.
                    &unsafe { o.assume_init() } as *const _
                };
                assert_eq!(check_out(pagent_agent_mock(opts, &mut a), a), OK);
                agents.push(a);
                assert_eq!(
                    check(pagent_agent_mock(ptr::null(), ptr::null_mut())),
                    pagent_status::PAGENT_ERR_NULL
                );
            }
            2 | 3 => {
                let sync = inp.u8() % 2 == 0;
                let with_fn = inp.u8() % 4 != 0;
                let with_free = inp.bool();
                let before = host.freed.load(Ordering::SeqCst);
                let free_fn = with_free.then_some(count_free as unsafe extern "C" fn(_));
                let mut a = ptr::null_mut();
                let s = if sync {
                    let f = with_fn.then_some(never_answer as _);
                    pagent_agent_callback(f, user_data, free_fn, &mut a)
                } else {
                    let f = with_fn.then_some(never_start as _);
                    pagent_agent_callback_async(f, user_data, free_fn, &mut a)
                };
                check_out(s, a);
                assert_eq!(s == OK, with_fn, "{s:?}");
                assert_eq!(
                    host.freed.load(Ordering::SeqCst),
                    before,
                    "free_fn ran at creation"
                );
                if !a.is_null() {
                    owned_host += usize::from(with_free);
                    agents.push(a);
                }
            }
            4 => {
                // A pool over picked agents; an index past the list is a NULL member.
                let n = usize::from(inp.u8() % 5);
                let members: Vec<*const pagent_agent> =
                    (0..n).map(|_| pick(&agents, inp.u8())).collect();
                let arr = if inp.u8() % 8 == 0 {
                    ptr::null()
                } else {
                    members.as_ptr()
                };
                let cfg = pagent_config_new();
                check(pagent_config_set_max_concurrency(cfg, inp.edge_usize()));
                let mut e = ptr::null_mut();
                let s = check_out(pagent_executor_new_pool(cfg, arr, n, &mut e), e);
                pagent_config_free(cfg);
                let valid = !arr.is_null() && n > 0 && members.iter().all(|m| !m.is_null());
                assert_eq!(s == OK, valid, "{s:?}: {}", last_error());
                if !e.is_null() {
                    execs.push(e);
                }
            }
            5 => {
                let a = pick(&agents, inp.u8());
                let mut e = ptr::null_mut();
                let s = check_out(pagent_executor_new(ptr::null(), a, &mut e), e);
                assert_eq!(s == OK, !a.is_null());
                if !e.is_null() {
                    execs.push(e);
                }
            }
            _ => {
                // Pending tokens are ids, never dereferenced: any value is safe, and with
                // no call outstanding every one is stale (or NULL).
                let p = inp.edge_usize() as *mut pagent_pending;
                let text = inp.cstring();
                let t = if inp.bool() {
                    text.as_ptr()
                } else {
                    ptr::null()
                };
                let s = if inp.bool() {
                    pagent_pending_complete(p, t)
                } else {
                    pagent_pending_fail(p, t, inp.bool())
                };
                check(s);
                assert_ne!(s, OK, "completed a call that does not exist");
            }
        }
    }
    // Free everything, agents and executors interleaved as the input says.
    while !agents.is_empty() || !execs.is_empty() {
        let from_agents = if agents.is_empty() {
            false
        } else if execs.is_empty() {
            true
        } else {
            inp.bool()
        };
        if from_agents {
            pagent_agent_free(agents.pop().expect("not empty"));
        } else {
            pagent_executor_free(execs.pop().expect("not empty"));
        }
    }
    assert_eq!(
        host.freed.load(Ordering::SeqCst),
        owned_host,
        "free_fn calls != callback agents that owned the host data"
    );
}

/// One of `agents`, or NULL (one choice in `len + 1`).
fn pick(agents: &[*mut pagent_agent], b: u8) -> *const pagent_agent {
    agents
        .get(usize::from(b) % (agents.len() + 1))
        .map_or(ptr::null(), |a| *a as *const _)
}

/// OpenAI options setters with arbitrary strings and numbers, then the agent. Rule
/// beyond the boundary's: every setter validates, so options that only went through
/// setters must make an agent (unless the API key found in the environment cannot be a
/// header, which the agent rightly refuses).
pub fn ffi_openai(data: &[u8]) {
    let mut inp = Input::new(data);
    let o = pagent_openai_options_new();
    assert!(!o.is_null());
    let mut key_env = Some("OPENAI_API_KEY".to_owned());
    for _ in 0..32 {
        if inp.is_empty() {
            break;
        }
        let op = inp.u8() % 15;
        let text = inp.cstring();
        let t = if inp.u8() % 16 == 0 {
            ptr::null()
        } else {
            text.as_ptr()
        };
        let s = match op {
            0 => pagent_openai_options_set_base_url(o, t),
            1 => pagent_openai_options_set_model(o, t),
            2 => {
                let s = pagent_openai_options_set_api_key_env(o, t);
                if s == OK {
                    key_env = Some(text.to_string_lossy().into_owned());
                }
                s
            }
            3 => pagent_openai_options_set_system_prompt(o, t),
            4 => pagent_openai_options_set_user_template(o, t),
            5 => pagent_openai_options_set_temperature(o, inp.edge_f64()),
            6 => pagent_openai_options_set_max_tokens(o, inp.edge_u32()),
            7 | 8 => {
                let value = inp.cstring();
                pagent_openai_options_add_header(o, t, value.as_ptr())
            }
            9 => pagent_openai_options_set_request_timeout_ms(o, inp.edge_u64()),
            10 => pagent_openai_options_set_tokens_per_minute(o, inp.edge_u64()),
            11 => pagent_openai_options_set_max_completion_tokens(o, inp.edge_u32()),
            12 => pagent_openai_options_set_extra_body_json(o, t),
            13 => pagent_openai_options_set_idle_timeout_ms(o, inp.edge_u64()),
            _ => {
                let s = pagent_openai_options_set_model(ptr::null_mut(), t);
                assert_eq!(s, pagent_status::PAGENT_ERR_NULL);
                s
            }
        };
        check(s);
        // Of the string setters, only the system prompt takes NULL (none).
        if t.is_null() && matches!(op, 0 | 1 | 2 | 4 | 7 | 8) {
            assert_ne!(s, OK, "setter {op} took NULL");
        }
    }
    // Building the HTTP client costs about a millisecond: not on every input.
    if inp.u8() % 2 == 0 {
        let mut a = ptr::null_mut();
        let s = check_out(pagent_agent_openai(o, &mut a), a);
        let key_is_bad = key_env
            .filter(|v| !v.is_empty())
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.trim().is_empty())
            .is_some_and(|k| {
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", k.trim())).is_err()
            });
        // extra_body may repeat a field a setter set: refused only here, by design.
        let extra_conflict = s == pagent_status::PAGENT_ERR_INVALID_ARG
            && last_error().contains("which its own option already sets");
        assert!(
            s == OK || (cfg!(not(feature = "openai"))) || key_is_bad || extra_conflict,
            "options the setters accepted made no agent: {s:?} {}",
            last_error()
        );
        pagent_agent_free(a);
    }
    pagent_openai_options_free(o);
}

/// Metrics store, lookup and JSON. Rules beyond the boundary's: what is stored under a
/// key comes back the same (durations are whole µs, so the round trip is exact), a
/// missing key is `PAGENT_ERR_NOT_FOUND` with `*out` untouched, and the JSON parses,
/// holding every stored key with its counts.
pub fn ffi_metrics(data: &[u8]) {
    let mut inp = Input::new(data);
    let agent = quick_mock();
    let mut exec = ptr::null_mut();
    assert_eq!(
        check_out(pagent_executor_new(ptr::null(), agent, &mut exec), exec),
        OK
    );
    pagent_agent_free(agent);
    let mut stored: Vec<(String, pagent_metrics)> = Vec::new();
    for _ in 0..16 {
        if inp.is_empty() {
            break;
        }
        let key = inp.cstring();
        let m = pagent_metrics {
            total_duration_us: inp.edge_u64(),
            successful_count: inp.edge_u64(),
            failed_count: inp.edge_u64(),
            timed_out_count: inp.edge_u64(),
            cancelled_count: inp.edge_u64(),
            total_count: inp.edge_u64(),
            attempts: inp.edge_u64(),
            hedged_count: inp.edge_u64(),
            hedge_wins: inp.edge_u64(),
            avg_duration_us: inp.edge_u64(),
            min_duration_us: inp.edge_u64(),
            max_duration_us: inp.edge_u64(),
            p50_duration_us: inp.edge_u64(),
            p95_duration_us: inp.edge_u64(),
            p99_duration_us: inp.edge_u64(),
            throughput: inp.edge_f64(),
            prompt_tokens: inp.edge_u64(),
            completion_tokens: inp.edge_u64(),
        };
        match inp.u8() % 4 {
            0 => {
                let mut got = m;
                got.attempts = 12345;
                let s = check(pagent_metrics_get(exec, key.as_ptr(), &mut got));
                let want = stored
                    .iter()
                    .rev()
                    .find(|(k, _)| k.as_bytes() == key.as_bytes());
                match (s, want) {
                    (OK, Some((_, w))) => assert_same(&got, w),
                    (pagent_status::PAGENT_ERR_NOT_FOUND, None) => assert_eq!(got.attempts, 12345),
                    (pagent_status::PAGENT_ERR_UTF8, None) => {
                        assert!(key.to_str().is_err())
                    }
                    (s, w) => panic!("get {key:?}: {s:?}, stored: {}", w.is_some()),
                }
            }
            1 => {
                // NULL anywhere is refused (with a valid key: a bad one may be reported first).
                let k = c"k".as_ptr();
                let mut out = m;
                for s in [
                    pagent_metrics_store(ptr::null(), k, &m),
                    pagent_metrics_store(exec, ptr::null(), &m),
                    pagent_metrics_store(exec, k, ptr::null()),
                    pagent_metrics_get(exec, ptr::null(), &mut out),
                    pagent_metrics_get(exec, k, ptr::null_mut()),
                    pagent_executor_metrics(ptr::null(), &mut out),
                ] {
                    assert_eq!(check(s), pagent_status::PAGENT_ERR_NULL);
                }
                assert!(pagent_executor_metrics_json(ptr::null()).is_null());
            }
            _ => {
                let s = check(pagent_metrics_store(exec, key.as_ptr(), &m));
                match key.to_str() {
                    Ok(k) => {
                        assert_eq!(s, OK);
                        stored.push((k.to_owned(), m));
                    }
                    Err(_) => assert_eq!(s, pagent_status::PAGENT_ERR_UTF8),
                }
            }
        }
    }
    let mut life = std::mem::MaybeUninit::<pagent_metrics>::uninit();
    assert_eq!(check(pagent_executor_metrics(exec, life.as_mut_ptr())), OK);
    // SAFETY: written on success.
    let life = unsafe { life.assume_init() };
    assert_eq!(life.total_count, 0, "no call ran");
    let json = pagent_executor_metrics_json(exec);
    assert!(!json.is_null(), "no JSON: {}", last_error());
    // SAFETY: a NUL-terminated string we own until pagent_string_free.
    let text = unsafe { CStr::from_ptr(json) }
        .to_str()
        .expect("JSON is UTF-8")
        .to_owned();
    pagent_string_free(json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("metrics JSON parses");
    assert!(v["lifetime"].is_object(), "{text}");
    let by_key = v["by_key"].as_object().expect("by_key is an object");
    for (k, _) in &stored {
        let e = &by_key[k.as_str()];
        let last = stored
            .iter()
            .rev()
            .find(|(k2, _)| k2 == k)
            .expect("stored")
            .1;
        assert_eq!(
            e["successful_count"].as_u64(),
            Some(last.successful_count),
            "{k:?}"
        );
        assert_eq!(
            e["p99_duration_us"].as_u64(),
            Some(last.p99_duration_us),
            "{k:?}"
        );
    }
    pagent_executor_free(exec);
}

fn assert_same(a: &pagent_metrics, b: &pagent_metrics) {
    let pairs = [
        (a.total_duration_us, b.total_duration_us),
        (a.successful_count, b.successful_count),
        (a.failed_count, b.failed_count),
        (a.timed_out_count, b.timed_out_count),
        (a.cancelled_count, b.cancelled_count),
        (a.total_count, b.total_count),
        (a.attempts, b.attempts),
        (a.hedged_count, b.hedged_count),
        (a.hedge_wins, b.hedge_wins),
        (a.avg_duration_us, b.avg_duration_us),
        (a.min_duration_us, b.min_duration_us),
        (a.max_duration_us, b.max_duration_us),
        (a.p50_duration_us, b.p50_duration_us),
        (a.p95_duration_us, b.p95_duration_us),
        (a.p99_duration_us, b.p99_duration_us),
        (a.prompt_tokens, b.prompt_tokens),
        (a.completion_tokens, b.completion_tokens),
    ];
    for (i, (x, y)) in pairs.iter().enumerate() {
        assert_eq!(x, y, "field {i} changed in the store");
    }
    assert_eq!(
        a.throughput.to_bits(),
        b.throughput.to_bits(),
        "throughput changed"
    );
}

// ---------------------------------------------------------------------------------------
// Pure parsers and rules

/// A chat-completions reply body and an error body, with a secret the agent would send
/// that the body echoes.
/// Rules: no panic; an accepted reply's answer is exactly `choices[0].message.content` of
/// the JSON (read lossily: invalid UTF-8 in a field the parser ignores is accepted; a lone
/// surrogate escape reads as U+FFFD); usage is bounded; once scrubbed as the agent
/// scrubs every message, no message holds a piece of the secret of
/// `secrets::FRAGMENT` characters.
pub fn openai_reply(data: &[u8]) {
    use parallel_agents::agent::openai::reply::{
        error_message, parse_completion, replace_lone_surrogates, MAX_USAGE_TOKENS,
    };
    use parallel_agents::agent::openai::secrets::{Secrets, FRAGMENT};
    // The secret is a token the body itself carries (its first run of at least six
    // letters, digits, '-' or '_'), as when a server echoes a key; the body is the input.
    let body = data;
    let secret: String = data
        .split(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'))
        .find(|run| run.len() >= FRAGMENT)
        .map(|run| String::from_utf8_lossy(&run[..run.len().min(64)]).into_owned())
        .unwrap_or_default();
    let secrets = Secrets::new([secret.as_str()]);
    // Fixed text the library adds could share a piece with a contrived secret.
    let fixed = "[redacted](empty body)";
    let checkable = secret.len() >= FRAGMENT
        && !secret
            .as_bytes()
            .windows(FRAGMENT)
            .any(|w| fixed.as_bytes().windows(FRAGMENT).any(|f| f == w));
    let no_secret = |msg: &str| {
        let msg = secrets.scrub(msg);
        if checkable {
            for w in secret.as_bytes().windows(FRAGMENT) {
                assert!(
                    !msg.as_bytes().windows(FRAGMENT).any(|m| m == w),
                    "a piece of the secret in {msg:?}"
                );
            }
        }
    };
    no_secret(&error_message(body, &secrets));
    match parse_completion(body, &secrets) {
        Err(msg) => no_secret(&msg),
        Ok(a) => {
            // serde skips ignored fields without checking their UTF-8 (fuzzer finding:
            // an invalid byte in `role`), so compare with a lossy reading of the body.
            let fixed = replace_lone_surrogates(body);
            let body = fixed.as_deref().unwrap_or(body);
            let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(body))
                .expect("an accepted body is JSON");
            assert_eq!(
                v["choices"][0]["message"]["content"].as_str(),
                Some(a.text.as_str())
            );
            if let Some(u) = a.usage {
                assert!(u.prompt_tokens <= MAX_USAGE_TOKENS);
                assert!(u.completion_tokens <= MAX_USAGE_TOKENS);
                if let Some(p) = v["usage"]["prompt_tokens"].as_u64() {
                    assert_eq!(p.min(MAX_USAGE_TOKENS), u.prompt_tokens);
                }
            }
        }
    }
}

/// `Retry-After` / `retry-after-ms` with arbitrary values and clocks. Rules: no panic; a
/// number of seconds or ms is honoured and capped at the 30-day limit (so the
/// executor's own cap never hides an absurd value); a date gives at most date - now.
pub fn retry_after(data: &[u8]) {
    #[cfg(feature = "openai")]
    {
        use parallel_agents::agent::openai::client::retry_after;
        use parallel_agents::config::MAX_DURATION;
        use reqwest::header::{HeaderMap, HeaderValue};
        use std::time::SystemTime;

        let mut inp = Input::new(data);
        let now = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(inp.u64() >> inp.u8().min(63)))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut h = HeaderMap::new();
        let mut ms_text = None;
        let mut secs_text = None;
        for _ in 0..2 {
            let name = if inp.bool() {
                "retry-after-ms"
            } else {
                "retry-after"
            };
            let raw = inp.bytes();
            if let Ok(v) = HeaderValue::from_bytes(raw) {
                let text = v.to_str().ok().map(|s| s.trim().to_owned());
                if name == "retry-after-ms" {
                    ms_text = text;
                } else {
                    secs_text = text;
                }
                h.insert(name, v);
            }
        }
        let got = retry_after(&h, now);
        let number = |s: &Option<String>| {
            s.as_deref()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        if let Some(ms) = number(&ms_text) {
            let d = got.expect("a retry-after-ms number is honoured");
            assert!(
                d <= MAX_DURATION / 1000 + Duration::from_millis(1),
                "{d:?} from {ms}"
            );
        } else if let Some(s) = number(&secs_text) {
            let d = got.expect("a Retry-After number is honoured");
            assert!(d <= MAX_DURATION, "{d:?} from {s}");
        } else if let Some(d) = got {
            let text = secs_text.expect("a hint needs a header");
            let at = httpdate_parse(&text).expect("only a date is left");
            assert!(
                d <= at.duration_since(now).unwrap_or_default(),
                "{d:?} from {text:?}"
            );
        }
    }
    #[cfg(not(feature = "openai"))]
    let _ = data;
}

/// An HTTP date, parsed by the crate the library uses.
#[cfg(feature = "openai")]
fn httpdate_parse(s: &str) -> Option<std::time::SystemTime> {
    httpdate::parse_http_date(s).ok()
}

/// The option checks that guard headers, URLs, variable names, templates and numbers.
/// Rules: no panic; whatever a check accepts, the HTTP layer accepts too (else the agent
/// fails to build, or worse, per call).
pub fn header_checks(data: &[u8]) {
    use parallel_agents::agent::openai::{
        check_base_url, check_env_name, check_header, check_max_tokens, check_request_timeout,
        check_temperature, check_template, parse_extra_body,
    };
    let mut inp = Input::new(data);
    let name = inp.text();
    let value = inp.text();
    if check_header(&name, &value).is_ok() {
        let framing = [
            "connection",
            "content-length",
            "content-type",
            "host",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "expect",
        ];
        assert!(
            !framing.iter().any(|f| f.eq_ignore_ascii_case(&name)),
            "accepted framing header {name:?}"
        );
        assert!(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            "accepted header name {name:?}"
        );
        assert!(
            reqwest::header::HeaderValue::from_str(&value).is_ok(),
            "accepted header value {value:?}"
        );
    } else {
        // The value may be a secret: a refusal's message must not depend on it (it
        // reads the same as for another value that is always refused).
        let msg = check_header(&name, &value).unwrap_err().to_string();
        let other = check_header(&name, "\u{7f}").unwrap_err().to_string();
        assert_eq!(msg, other, "the message depends on the value");
    }
    let url = inp.text();
    if check_base_url(&url).is_ok() {
        let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
        #[cfg(feature = "openai")]
        {
            let u = reqwest::Url::parse(&endpoint).expect("an accepted URL parses");
            assert!(
                u.username().is_empty() && u.password().is_none(),
                "accepted credentials in {url:?}"
            );
        }
        let _ = endpoint;
    }
    let var = inp.text();
    if check_env_name(&var).is_ok() {
        assert!(!var.contains(['=', '\0']));
    }
    let template = inp.text();
    assert_eq!(
        check_template(&template).is_ok(),
        template.contains("{question}")
    );
    let t = inp.edge_f64();
    assert_eq!(check_temperature(t).is_ok(), (0.0..=2.0).contains(&t));
    let n = inp.edge_u32();
    assert_eq!(
        check_max_tokens("max_tokens", n).is_ok(),
        (1..=10_000_000).contains(&n)
    );
    let extra = inp.text();
    if let Ok(m) = parse_extra_body(&extra) {
        assert!(["model", "messages", "stream"]
            .iter()
            .all(|k| !m.contains_key(*k)));
    }
    let d = Duration::from_millis(inp.edge_u64());
    assert_eq!(
        check_request_timeout(d).is_ok(),
        d >= Duration::from_millis(1) && d <= Duration::from_secs(3600)
    );
}

/// Normalisation and deduplication. Rules: normalising is idempotent, leaves no
/// surrounding whitespace, no runs of it and no trailing ASCII punctuation; dedup keeps
/// every failure, the first of each normalised answer, and the order.
pub fn normalize(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut results = Vec::new();
    while !inp.is_empty() && results.len() < 32 {
        let a = inp.text();
        let n = normalize_answer(&a);
        assert_eq!(normalize_answer(&n), n, "not idempotent on {a:?}");
        assert_eq!(n.trim(), n, "{a:?}");
        assert!(!n.ends_with(|c: char| c.is_ascii_punctuation()), "{a:?}");
        assert!(
            !n.split(' ').any(|w| w.is_empty() && !n.is_empty()),
            "a whitespace run in {n:?}"
        );
        let i = results.len();
        results.push(if inp.u8() % 4 == 0 {
            result(i, Outcome::Failed, None)
        } else {
            result(i, Outcome::Ok, Some(a))
        });
    }
    let kept = deduplicate(results.clone());
    let mut seen = std::collections::HashSet::new();
    let want: Vec<usize> = results
        .iter()
        .filter(|r| {
            r.answer
                .as_ref()
                .map_or(true, |a| seen.insert(normalize_answer(a)))
        })
        .map(|r| r.question_index)
        .collect();
    let got: Vec<usize> = kept.iter().map(|r| r.question_index).collect();
    assert_eq!(got, want);
}

fn result(index: usize, outcome: Outcome, answer: Option<String>) -> AgentResult {
    AgentResult {
        answer,
        success: outcome == Outcome::Ok,
        error: (outcome != Outcome::Ok).then(|| "fuzz".to_owned()),
        outcome,
        attempts: 1,
        duration: Duration::from_millis(1),
        ..AgentResult::not_started(index, Arc::from("q"), "")
    }
}

/// Majority voting and the early-stop rule. Rules: confidence in [0, 1], winner votes
/// <= counted, counted = successful calls' answers that normalise to something, the tally sums to counted and its
/// head is the winner; reached iff counted > 0 and confidence >= threshold; the vote
/// does not depend on arrival order; and once `is_settled` says so, no outcome of the
/// outstanding calls changes the winner or the verdict.
pub fn voting(data: &[u8]) {
    let mut inp = Input::new(data);
    let threshold = match inp.u8() % 4 {
        0 => 0.0,
        1 => 1.0,
        _ => f64::from(inp.u16()) / f64::from(u16::MAX),
    };
    // Few distinct answers, spelled differently, so votes collide and tie.
    const WORDS: [&str; 6] = ["Paris", "paris.", " PARIS ", "Lyon", "lyon!", "Nice"];
    let n = usize::from(inp.u8() % 24);
    let results: Vec<AgentResult> = (0..n)
        .map(|i| match inp.u8() % 8 {
            0 => result(i, Outcome::Failed, None),
            1 => result(i, Outcome::TimedOut, None),
            2 => result(i, Outcome::Ok, Some(inp.text())),
            k => {
                let w = (usize::from(k) + usize::from(inp.u8())) % WORDS.len();
                result(i, Outcome::Ok, Some(WORDS[w].to_owned()))
            }
        })
        .collect();
    let v = majority_vote(&results, threshold);
    // An answer that normalises to nothing is no vote.
    let counted = results
        .iter()
        .filter(|r| r.outcome == Outcome::Ok)
        .filter(|r| {
            r.answer
                .as_deref()
                .is_some_and(|a| !normalize_answer(a).is_empty())
        })
        .count();
    assert_eq!(v.counted, counted);
    assert!(v.votes <= v.counted);
    assert!((0.0..=1.0).contains(&v.confidence), "{}", v.confidence);
    assert_eq!(v.tally.iter().map(|t| t.1).sum::<usize>(), counted);
    assert_eq!(v.reached, counted > 0 && v.confidence >= threshold);
    match (&v.answer, v.tally.first()) {
        (Some(a), Some((norm, votes))) => {
            assert_eq!(&normalize_answer(a), norm);
            assert_eq!(*votes, v.votes);
            assert!(v.tally.iter().all(|t| t.1 <= v.votes));
        }
        (None, None) => assert_eq!(counted, 0),
        _ => panic!("winner and tally disagree: {v:?}"),
    }
    let mut reversed = results.clone();
    reversed.reverse();
    let r = majority_vote(&reversed, threshold);
    assert_eq!(
        (&r.answer, r.votes, r.reached),
        (&v.answer, v.votes, v.reached)
    );

    // Early stop: feed the first k, ask, then finish the round adversarially.
    let k = usize::from(inp.u8()) % (n + 1);
    let mut t = Tally::default();
    for r in &results[..k] {
        if let (Outcome::Ok, Some(a)) = (r.outcome, &r.answer) {
            t.add(r.question_index, a);
        }
    }
    let outstanding = n - k;
    if t.is_settled(outstanding, threshold) {
        let now = t.vote(threshold);
        let leader = now.answer.clone();
        let runner_up = now.tally.get(1).map(|x| x.0.clone());
        let finishes: [&dyn Fn(usize) -> Option<String>; 5] = [
            &|_| leader.clone(),                  // all to the leader
            &|_| None,                            // all fail
            &|_| Some("a new answer".to_owned()), // a newcomer
            &|_| runner_up.clone(),               // the runner-up (or none)
            &|i| Some(format!("distinct {i}")),   // all different
        ];
        for finish in finishes {
            let mut all = Tally::default();
            for r in &results[..k] {
                if let (Outcome::Ok, Some(a)) = (r.outcome, &r.answer) {
                    all.add(r.question_index, a);
                }
            }
            for i in k..n {
                if let Some(a) = finish(i) {
                    all.add(i, &a);
                }
            }
            let end = all.vote(threshold);
            assert_eq!(
                (
                    end.answer.as_ref().map(|a| normalize_answer(a)),
                    end.reached
                ),
                (
                    now.answer.as_ref().map(|a| normalize_answer(a)),
                    now.reached
                ),
                "settled with {outstanding} outstanding, yet the verdict changed"
            );
        }
    }
}

/// The metrics recorder and its JSON. Durations are realistic (up to a year each);
/// token counts are whatever a server reports (any u64). Rules: no panic; the counts add
/// up; min <= p50 <= p95 <= p99 <= max and min <= avg <= max; merging is adding; the
/// JSON parses and has every field in `_us` form.
pub fn metrics_json(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut recs = [MetricsRecorder::new(), MetricsRecorder::new()];
    let mut outcomes = [0u64; 4];
    let mut n = 0;
    while !inp.is_empty() && n < 256 {
        n += 1;
        let outcome = match inp.u8() % 4 {
            0 => Outcome::Ok,
            1 => Outcome::Failed,
            2 => Outcome::TimedOut,
            _ => Outcome::Cancelled,
        };
        outcomes[outcome as usize] += 1;
        let mut r = result(n, outcome, None);
        r.duration = Duration::from_micros(inp.edge_u64() % (366 * 24 * 3600 * 1_000_000));
        r.attempts = inp.edge_u32();
        r.hedged = inp.bool();
        r.hedge_won = r.hedged && inp.bool();
        if inp.bool() {
            r.usage = Some(TokenUsage {
                prompt_tokens: inp.edge_u64(),
                completion_tokens: inp.edge_u64(),
            });
        }
        let which = usize::from(inp.u8() % 2);
        recs[which].record(&r);
    }
    let wall = Duration::from_micros(inp.edge_u64());
    let [mut a, b] = recs;
    a.merge(&b);
    let m = a.snapshot_with_wall(wall);
    assert_eq!(
        [
            m.successful_count,
            m.failed_count,
            m.timed_out_count,
            m.cancelled_count
        ],
        outcomes
    );
    assert_eq!(m.total_count, outcomes.iter().sum::<u64>());
    if outcomes[..3].iter().sum::<u64>() > 0 {
        assert!(m.min_duration <= m.p50_duration, "{m:?}");
        assert!(m.p50_duration <= m.p95_duration, "{m:?}");
        assert!(m.p95_duration <= m.p99_duration, "{m:?}");
        assert!(m.p99_duration <= m.max_duration, "{m:?}");
        assert!(m.min_duration <= m.avg_duration, "{m:?}");
        assert!(m.avg_duration <= m.max_duration, "{m:?}");
    }
    assert!(m.throughput >= 0.0 && !m.throughput.is_nan(), "{m:?}");
    check_metrics_json(&m);
}

fn check_metrics_json(m: &ExecutionMetrics) {
    let text = m.to_json();
    let v: serde_json::Value = serde_json::from_str(&text).expect("metrics JSON parses");
    for k in ["total", "avg", "min", "max", "p50", "p95", "p99"] {
        assert!(v[format!("{k}_duration_us")].is_u64(), "{k} in {text}");
    }
    assert_eq!(v["total_count"].as_u64(), Some(m.total_count), "{text}");
    assert_eq!(v["prompt_tokens"].as_u64(), Some(m.prompt_tokens), "{text}");
}
