//! The rate budget shared through Redis (`pagent_rate_limiter_redis`), through the C ABI.
//!
//! Each test that needs Redis starts its own `redis-server` (127.0.0.1, a free port, no
//! persistence, a temporary directory) and kills it on drop; without `redis-server` on
//! PATH they print a `SKIP` line and pass (fail under CI, which installs it). The
//! shared-budget tests re-execute this binary as 4 child processes (`PAGENT_REDIS_CHILD`
//! set) that share one key and call one `mock-llm` (in the parent), whose request log is
//! what is measured: the rate the server saw.
#![cfg(feature = "redis")]

mod support;

use std::ffi::{c_char, c_void, CStr, CString};
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::openai::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::*;

const CHILD_ENV: &str = "PAGENT_REDIS_CHILD";

/// A `redis-server` of this test's own; killed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have_redis(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // CI installs redis-server (.ci/run), so there a skip would hide a broken step.
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: redis-server is not on PATH under CI"
        );
        // Straight to the stream, past the test harness's capture, so scripts/test.sh
        // sees it.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: {test}: redis-server is not on PATH"
        );
    }
    found
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let dir = std::env::temp_dir().join(format!("pagent-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = Redis { child, port, dir };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// Marks the token bucket `key` as just emptied (Redis's clock + one minute, the
    /// layout the library's script keeps), with redis-cli.
    fn empty_token_bucket(&self, key: &str) {
        let script = "local t = redis.call('TIME') \
            redis.call('SET', KEYS[1], string.format('%.0f', t[1] * 1000000 + t[2] + 60000000), 'PX', 120000)";
        let st = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "EVAL", script, "1", key])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli (Debian's redis-tools, which redis-server depends on)");
        assert!(st.success());
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn last_error() -> String {
    // SAFETY: the library's thread-local message, valid until the next call.
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

unsafe extern "C" fn answer(
    _user: *mut c_void,
    _q: *const c_char,
    _id: usize,
    reply: *mut pagent_reply,
) -> i32 {
    pagent_reply_set_answer(reply, c"ok".as_ptr());
    0
}

fn limiter(url: &str, key: &str, rpm: f64, tpm: u64) -> *mut pagent_rate_limiter {
    let (u, k) = (CString::new(url).unwrap(), CString::new(key).unwrap());
    let mut l = std::ptr::null_mut();
    let st = pagent_rate_limiter_redis(u.as_ptr(), k.as_ptr(), rpm, tpm, &mut l);
    assert_eq!(st, pagent_status::PAGENT_OK, "{}", last_error());
    l
}

/// Runs `questions` through an executor of `agent` sharing `limiter`; (outcome, error,
/// duration µs) by question index.
fn run_with(
    agent: *const pagent_agent,
    limiter: *const pagent_rate_limiter,
    questions: &[String],
    timeout_ms: u64,
) -> Vec<(pagent_outcome, String, u64)> {
    let n = questions.len();
    let cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_max_concurrency(cfg, 8),
        pagent_status::PAGENT_OK
    );
    assert_eq!(
        pagent_config_set_agent_timeout_ms(cfg, timeout_ms),
        pagent_status::PAGENT_OK
    );
    assert_eq!(
        pagent_config_set_shared_rate_limiter(cfg, limiter),
        pagent_status::PAGENT_OK
    );
    let mut exec = std::ptr::null_mut();
    assert_eq!(
        pagent_executor_new(cfg, agent, &mut exec),
        pagent_status::PAGENT_OK
    );
    let qs: Vec<CString> = questions
        .iter()
        .map(|q| CString::new(q.as_str()).unwrap())
        .collect();
    let ptrs: Vec<*const c_char> = qs.iter().map(|q| q.as_ptr()).collect();
    let mut rs = std::ptr::null_mut();
    assert_eq!(
        pagent_execute(exec, ptrs.as_ptr(), n, &mut rs),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let mut out = vec![None; n];
    for i in 0..pagent_results_len(rs) {
        let mut r = std::ptr::null();
        assert_eq!(pagent_results_get(rs, i, &mut r), pagent_status::PAGENT_OK);
        let q = pagent_result_question_index(r);
        let e = pagent_result_error(r);
        let e = if e.is_null() {
            String::new()
        } else {
            // SAFETY: a result's error string, valid while `rs` lives.
            unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
        };
        assert!(out[q].is_none(), "question {q} came back twice");
        out[q] = Some((pagent_result_outcome(r), e, pagent_result_duration_us(r)));
    }
    pagent_results_free(rs);
    pagent_executor_free(exec);
    pagent_config_free(cfg);
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| panic!("question {i} never came back")))
        .collect()
}

/// [`run_with`] on a callback agent answering "ok".
fn run(
    limiter: *const pagent_rate_limiter,
    n: usize,
    timeout_ms: u64,
) -> Vec<(pagent_outcome, String, u64)> {
    let mut agent = std::ptr::null_mut();
    assert_eq!(
        pagent_agent_callback(Some(answer), std::ptr::null_mut(), None, &mut agent),
        pagent_status::PAGENT_OK
    );
    let qs: Vec<String> = (0..n).map(|i| format!("q{i}")).collect();
    let rs = run_with(agent, limiter, &qs, timeout_ms);
    pagent_agent_free(agent);
    rs
}

/// The OpenAI agent against `mock_url`, with `max_tokens` (its token estimate's
/// completion part).
fn openai_agent(mock_url: &str, max_tokens: u32) -> *mut pagent_agent {
    let o = pagent_openai_options_new();
    let url = CString::new(mock_url).unwrap();
    assert_eq!(
        pagent_openai_options_set_base_url(o, url.as_ptr()),
        pagent_status::PAGENT_OK
    );
    assert_eq!(
        pagent_openai_options_set_api_key_env(o, c"".as_ptr()),
        pagent_status::PAGENT_OK
    );
    assert_eq!(
        pagent_openai_options_set_max_tokens(o, max_tokens),
        pagent_status::PAGENT_OK
    );
    let mut agent = std::ptr::null_mut();
    assert_eq!(
        pagent_agent_openai(o, &mut agent),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    pagent_openai_options_free(o);
    agent
}

/// The starts test, as the issue sets it: 600 rpm shared by 4 processes for 20 s
/// (4 × 50 starts at 10/s). 50 is a whole number of leases (2 starts = 0.2 s at 10/s):
/// a process's last lease is then used up, not partly wasted, so the measured rate is not
/// biased low.
const RPM: f64 = 600.0;
const PER_CHILD: usize = 50;
const CHILDREN: usize = 4;

/// The tokens test: 30,000 tokens per minute (500/s), its bucket emptied first so the
/// pace is measured, not a minute's burst; starts not limited in practice. Each call
/// reports 100 tokens used but is estimated at 407 (max_tokens 400 + its prompt / 4), so
/// only settling reaches the budget's pace: 4 × 25 calls in about 20 s.
const TPM: u64 = 30_000;
const TOKEN_RPM: f64 = 60_000.0;
const TOKEN_CALLS: usize = 25;
const USED: u64 = 100;

/// A child process: runs its batch through the OpenAI agent against the parent's
/// mock-llm, sharing the Redis key; its requests are tagged with its number.
/// `PAGENT_REDIS_CHILD` = "MODE REDIS_URL KEY MOCK_URL CHILD", MODE `starts` or `tokens`.
#[test]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let f: Vec<&str> = spec.split(' ').collect();
    let [mode, url, key, mock_url, child] = f[..] else {
        panic!("bad {CHILD_ENV}: {spec}")
    };
    let (l, agent, qs) = if mode == "starts" {
        let qs = (0..PER_CHILD).map(|i| format!("[tag=p{child}] q{i}"));
        (
            limiter(url, key, RPM, 0),
            openai_agent(mock_url, 16),
            qs.collect::<Vec<_>>(),
        )
    } else {
        let qs = (0..TOKEN_CALLS).map(|i| format!("[tag=p{child}][usage=90,10] q{i}"));
        (
            limiter(url, key, TOKEN_RPM, TPM),
            openai_agent(mock_url, 400),
            qs.collect(),
        )
    };
    let rs = run_with(agent, l, &qs, 120_000);
    pagent_agent_free(agent);
    pagent_rate_limiter_free(l);
    assert!(
        rs.iter().all(|r| r.0 == pagent_outcome::PAGENT_OUTCOME_OK),
        "{rs:?}"
    );
}

/// Runs 4 children in `mode` against one Redis key and one mock-llm; the start times
/// the server saw, per child.
fn four_children(mode: &str) -> Vec<Vec<u64>> {
    let redis = Redis::start_on(free_port());
    if mode == "tokens" {
        redis.empty_token_bucket(&format!("budget-{mode}:tokens"));
    }
    let mock = support::Mock::start(&["--latency-ms", "5", "--max-seconds", "300"]);
    let kids: Vec<Child> = (0..CHILDREN)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(
                    CHILD_ENV,
                    format!("{mode} {} budget-{mode} {} {i}", redis.url(), mock.url()),
                )
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let stats = mock.stats();
    (0..CHILDREN)
        .map(|i| support::Mock::starts(&stats, &format!("p{i}")))
        .collect()
}

/// Starts per child while all of them ran: from the last first start to the first last.
fn shares_while_all_ran(per_child: &[Vec<u64>]) -> Vec<usize> {
    let from = per_child.iter().map(|s| s[0]).max().unwrap();
    let to = per_child.iter().map(|s| s[s.len() - 1]).min().unwrap();
    per_child
        .iter()
        .map(|s| s.iter().filter(|&&t| (from..=to).contains(&t)).count())
        .collect()
}

/// The processes overlapped for at least half of the `n` calls, and while all ran each
/// got at least 15 % of them.
fn assert_fair(per_child: &[Vec<u64>], n: usize, what: &str) {
    let shares = shares_while_all_ran(per_child);
    let total: usize = shares.iter().sum();
    println!("{what} per process while all ran: {shares:?}");
    assert!(
        total >= n / 2,
        "the processes hardly overlapped: {shares:?}"
    );
    for s in &shares {
        assert!(
            *s as f64 >= total as f64 * 0.15,
            "a process starved: {shares:?}"
        );
    }
}

#[test]
fn four_processes_share_one_budget() {
    if !have_redis("four_processes_share_one_budget") {
        return;
    }
    let per_child = four_children("starts");
    let mut all: Vec<u64> = per_child.iter().flatten().copied().collect();
    all.sort_unstable();
    let n = all.len();
    assert_eq!(n, CHILDREN * PER_CHILD, "the server saw {n} requests");
    let span = (all[n - 1] - all[0]) as f64 / 1e6;
    let rate = (n - 1) as f64 / span;
    let limit = RPM / 60.0;
    // One lease (0.2 s of budget) may be spent at once by a process: allow it explicitly.
    let lease = (limit * 0.2).max(1.0);
    let allowed = (limit * span * 1.05 + lease) / span;
    println!(
        "server saw {n} starts over {span:.3} s: {rate:.2}/s (limit {limit}/s, allowed up to {allowed:.2}/s)"
    );
    assert!(rate <= allowed, "{rate:.2}/s over the limit");
    // And in every 1 s window, not just on average.
    let busiest = all
        .iter()
        .map(|&t| all.iter().filter(|&&u| u >= t && u < t + 1_000_000).count())
        .max()
        .unwrap();
    println!("busiest 1 s window: {busiest} starts");
    assert!(
        busiest as f64 <= limit * 1.05 + lease,
        "{busiest} starts in one second"
    );
    // Within 5 % below too: the budget is used, not just respected.
    assert!(rate >= limit * 0.95, "{rate:.2}/s: the budget was not used");
    assert_fair(&per_child, n, "starts");
}

#[test]
fn four_processes_share_one_token_budget_settled_by_usage() {
    if !have_redis("four_processes_share_one_token_budget") {
        return;
    }
    let per_child = four_children("tokens");
    let mut all: Vec<u64> = per_child.iter().flatten().copied().collect();
    all.sort_unstable();
    let n = all.len();
    assert_eq!(n, CHILDREN * TOKEN_CALLS, "the server saw {n} requests");
    let span = (all[n - 1] - all[0]) as f64 / 1e6;
    let per_sec = TPM as f64 / 60.0;
    // The agent's estimate: max_tokens + prompt bytes / 4 (the longest question).
    let estimate =
        400 + (format!("[tag=p0][usage=90,10] q{}", TOKEN_CALLS - 1).len() as u64).div_ceil(4);
    // From the first start to the last, the budget pays the used tokens of every call
    // but the first, and the last call must still find its whole estimate: the fastest
    // the budget allows. Each process may hold one block (0.2 s of budget) unused.
    let ideal = ((n as u64 - 1) * USED + estimate - USED) as f64 / per_sec;
    let held = CHILDREN as f64 * 0.2;
    // Had calls been charged their estimate, not their usage: the pace without settling.
    let unsettled = (n as u64 - 1) as f64 * estimate as f64 / per_sec;
    println!(
        "server saw {n} calls of {USED} tokens over {span:.2} s: ideal {ideal:.2} s at \
         {TPM} tokens/min (charged by estimate it would be {unsettled:.0} s)"
    );
    // Never faster than the budget.
    assert!(span >= ideal - held, "{span:.2} s: over the token budget");
    // Settled by usage: close to the budget's pace, far from the estimate's.
    assert!(
        span <= ideal * 1.15 + 1.0,
        "{span:.2} s: the budget was not used"
    );
    assert_fair(&per_child, n, "calls");
}

#[test]
fn redis_killed_mid_run_loses_nothing_and_waits_no_longer_than_the_timeout() {
    if !have_redis("redis_killed_mid_run") {
        return;
    }
    let port = free_port();
    let redis = Redis::start_on(port);
    // 600 rpm: 10 starts/s, leases of 2; 20 questions take ~2 s. 600 tpm: calls of
    // 1 token (an estimate of "qN" / 4), leases of 2 tokens, so the token budget asks
    // Redis while it is down too.
    let l = limiter(&redis.url(), "killed-test", 600.0, 600);
    let lp = l as usize;
    let batch = std::thread::spawn(move || run(lp as *const pagent_rate_limiter, 20, 3_000));
    std::thread::sleep(Duration::from_millis(500));
    drop(redis);
    std::thread::sleep(Duration::from_millis(1000));
    let redis = Redis::start_on(port);
    let rs = batch.join().unwrap();
    // Every call got its answer once Redis was back, within its timeout.
    for (i, (o, e, us)) in rs.iter().enumerate() {
        assert_eq!(*o, pagent_outcome::PAGENT_OUTCOME_OK, "question {i}: {e}");
        assert!(*us < 3_000_000 + 2_000_000, "question {i} waited {us} µs");
    }
    // Redis gone for good: each call fails, saying why, after at most its timeout.
    drop(redis);
    let t0 = Instant::now();
    let rs = run(l, 5, 1_000);
    let took = t0.elapsed();
    for (i, (o, e, us)) in rs.iter().enumerate() {
        assert_eq!(*o, pagent_outcome::PAGENT_OUTCOME_FAILED, "question {i}");
        assert!(e.contains("could not be reached"), "question {i}: {e}");
        assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
        assert!(*us < 1_500_000, "question {i} waited {us} µs");
    }
    println!("Redis down: 5 calls failed in {took:?}: {:?}", rs[0].1);
    assert!(took < Duration::from_secs(3), "{took:?}");
    pagent_rate_limiter_free(l);
}

#[test]
fn creation_against_a_closed_port_fails_clearly_without_the_password() {
    let port = free_port();
    let url = CString::new(format!("redis://user:s3cret-pw@127.0.0.1:{port}/0")).unwrap();
    let key = c"k";
    let mut l = std::ptr::null_mut();
    let st = pagent_rate_limiter_redis(url.as_ptr(), key.as_ptr(), 60.0, 0, &mut l);
    let e = last_error();
    println!("{st:?}: {e}");
    assert_eq!(st, pagent_status::PAGENT_ERR_INVALID_ARG);
    assert!(l.is_null());
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(e.contains("cannot reach Redis"), "{e}");
    assert!(!e.contains("s3cret"), "the password leaked: {e}");
    // Bad arguments.
    let st = pagent_rate_limiter_redis(std::ptr::null(), key.as_ptr(), 60.0, 0, &mut l);
    assert_eq!(st, pagent_status::PAGENT_ERR_NULL);
    let bad = [0xffu8, 0];
    let st = pagent_rate_limiter_redis(bad.as_ptr().cast(), key.as_ptr(), 60.0, 0, &mut l);
    assert_eq!(st, pagent_status::PAGENT_ERR_UTF8);
    for rpm in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let st = pagent_rate_limiter_redis(url.as_ptr(), key.as_ptr(), rpm, 0, &mut l);
        assert_eq!(st, pagent_status::PAGENT_ERR_CONFIG, "rpm {rpm}");
    }
    let st = pagent_rate_limiter_redis(url.as_ptr(), key.as_ptr(), 60.0, u64::MAX, &mut l);
    assert_eq!(st, pagent_status::PAGENT_ERR_INVALID_ARG);
    assert!(
        last_error().contains("tokens_per_minute"),
        "{}",
        last_error()
    );
    let st = pagent_rate_limiter_redis(url.as_ptr(), c"".as_ptr(), 60.0, 0, &mut l);
    assert_eq!(st, pagent_status::PAGENT_ERR_INVALID_ARG);
    assert!(l.is_null());
}
