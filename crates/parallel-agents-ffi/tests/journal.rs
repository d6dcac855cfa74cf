//! The journal through the C ABI: results durable and replayed on a rerun without calling
//! the agent, only missing (or, by a setting, retryably failed) questions run again, and
//! each refusal — fingerprint mismatch, a second holder, an unwritable path, a newer
//! format, a full journal — a clear status.

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::batch::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::journal::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

use pagent_status::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A fresh directory for one test's journal.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagent-journal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A callback agent that counts its calls (in `*user_data`, an `AtomicUsize`): questions
/// starting with "fail" fail retryably, "fatal" fail for good, others are echoed.
unsafe extern "C" fn counting(
    user_data: *mut c_void,
    question: *const c_char,
    _agent_id: usize,
    reply: *mut pagent_reply,
) -> i32 {
    (*(user_data as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
    let q = CStr::from_ptr(question).to_str().unwrap();
    if q.starts_with("fail") {
        pagent_reply_set_error(reply, c"overloaded".as_ptr());
        return PAGENT_CALLBACK_RETRY;
    }
    if q.starts_with("fatal") {
        pagent_reply_set_error(reply, c"bad request".as_ptr());
        return PAGENT_CALLBACK_ERROR;
    }
    let a = cstr(&format!("answer to {q}"));
    pagent_reply_set_answer(reply, a.as_ptr());
    PAGENT_CALLBACK_OK
}

fn callback_agent(calls: &AtomicUsize) -> *mut pagent_agent {
    let mut a = ptr::null_mut();
    let ud = calls as *const AtomicUsize as *mut c_void;
    assert_eq!(
        pagent_agent_callback(Some(counting), ud, None, &mut a),
        PAGENT_OK
    );
    a
}

fn mock_agent(seed: u64) -> *mut pagent_agent {
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    o.seed = seed;
    let mut a = ptr::null_mut();
    assert_eq!(pagent_agent_mock(&o, &mut a), PAGENT_OK);
    a
}

/// A config with the journal at `path`, and `more` applied.
fn config(path: &std::path::Path, more: impl FnOnce(*mut pagent_config)) -> *mut pagent_config {
    let c = pagent_config_new();
    let p = cstr(path.to_str().unwrap());
    assert_eq!(pagent_config_set_journal(c, p.as_ptr()), PAGENT_OK);
    assert_eq!(pagent_config_set_max_concurrency(c, 8), PAGENT_OK);
    more(c);
    c
}

/// `pagent_executor_new`'s status, and the executor if it succeeded.
fn new_exec(
    cfg: *mut pagent_config,
    agent: *mut pagent_agent,
) -> (pagent_status, *mut pagent_executor) {
    let mut e = ptr::null_mut();
    let s = pagent_executor_new(cfg, agent, &mut e);
    pagent_config_free(cfg);
    pagent_agent_free(agent);
    (s, e)
}

/// What the host keeps of a result.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    outcome: pagent_outcome,
    answer: Option<String>,
    error: Option<String>,
    replayed: bool,
    index: usize,
}

/// Submits `(id, question)` pairs and reads every result, by id.
fn run(
    e: *mut pagent_executor,
    pairs: &[(String, String)],
) -> Result<HashMap<String, Got>, pagent_status> {
    let ids: Vec<CString> = pairs.iter().map(|(i, _)| cstr(i)).collect();
    let qs: Vec<CString> = pairs.iter().map(|(_, q)| cstr(q)).collect();
    let ip: Vec<*const c_char> = ids.iter().map(|s| s.as_ptr()).collect();
    let qp: Vec<*const c_char> = qs.iter().map(|s| s.as_ptr()).collect();
    let mut b = ptr::null_mut();
    let s = pagent_submit_ids(e, ip.as_ptr(), qp.as_ptr(), pairs.len(), &mut b);
    if s != PAGENT_OK {
        return Err(s);
    }
    let mut out = HashMap::new();
    let mut r = ptr::null_mut();
    while pagent_batch_next(b, -1, &mut r) == PAGENT_OK {
        let id = text(pagent_result_id(r)).unwrap();
        let g = Got {
            outcome: pagent_result_outcome(r),
            answer: text(pagent_result_answer(r)),
            error: text(pagent_result_error(r)),
            replayed: pagent_result_replayed(r),
            index: pagent_result_question_index(r),
        };
        assert!(out.insert(id, g).is_none(), "an id twice");
        pagent_result_free(r);
    }
    pagent_batch_free(b);
    assert_eq!(out.len(), pairs.len(), "every id once");
    Ok(out)
}

fn pairs(
    range: std::ops::Range<usize>,
    question: impl Fn(usize) -> String,
) -> Vec<(String, String)> {
    range.map(|i| (format!("id-{i}"), question(i))).collect()
}

#[test]
fn a_rerun_replays_what_is_stored_and_runs_only_the_rest() {
    let path = dir("rerun").join("j.db");
    let calls = AtomicUsize::new(0);
    let q = |i: usize| match i % 10 {
        3 => format!("fail {i}"),
        7 => format!("fatal {i}"),
        _ => format!("question {i}"),
    };

    let (s, e) = new_exec(config(&path, |_| {}), callback_agent(&calls));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let first = run(e, &pairs(0..50, q)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 50);
    assert!(first.values().all(|g| !g.replayed));
    pagent_executor_free(e);

    // Same journal, a larger batch: the first 50 come back replayed, as they were, and
    // only the 30 new ones run.
    let (s, e) = new_exec(config(&path, |_| {}), callback_agent(&calls));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let second = run(e, &pairs(0..80, q)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 80);
    for (id, g) in &second {
        let i: usize = id[3..].parse().unwrap();
        assert_eq!(g.index, i);
        if i < 50 {
            assert!(g.replayed, "{id}");
            let f = &first[id];
            assert_eq!(
                (g.outcome, &g.answer, &g.error),
                (f.outcome, &f.answer, &f.error)
            );
        } else {
            assert!(!g.replayed, "{id}");
        }
    }
    pagent_executor_free(e);

    // With rerun_failed: the retryable failures (8 of 80) run again; the fatal ones do not.
    let (s, e) = new_exec(
        config(&path, |c| {
            assert_eq!(pagent_config_set_journal_rerun_failed(c, true), PAGENT_OK);
        }),
        callback_agent(&calls),
    );
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let third = run(e, &pairs(0..80, q)).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 88);
    for (id, g) in &third {
        let i: usize = id[3..].parse().unwrap();
        assert_eq!(g.replayed, i % 10 != 3, "{id}");
    }

    // The same id with another question is refused, before anything runs.
    let mut other = pairs(0..1, q);
    other[0].1 = "something else".into();
    assert_eq!(run(e, &other).unwrap_err(), PAGENT_ERR_INVALID_ARG);
    assert!(
        last_error().contains("\"id-0\" is in the journal"),
        "{}",
        last_error()
    );
    pagent_executor_free(e);

    // Read back without running: 80 results, each replayed, ids unique.
    let p = cstr(path.to_str().unwrap());
    let mut j = ptr::null_mut();
    assert_eq!(
        pagent_journal_open(p.as_ptr(), &mut j),
        PAGENT_OK,
        "{}",
        last_error()
    );
    assert_eq!(pagent_journal_remaining(j), 80);
    let mut seen = std::collections::HashSet::new();
    let mut r = ptr::null_mut();
    while pagent_journal_next(j, &mut r) == PAGENT_OK {
        assert!(pagent_result_replayed(r));
        let id = text(pagent_result_id(r)).unwrap();
        let i: usize = id[3..].parse().unwrap();
        assert_eq!(text(pagent_result_question(r)).unwrap(), q(i));
        let want_ok = i % 10 != 3 && i % 10 != 7;
        assert_eq!(
            pagent_result_outcome(r) == pagent_outcome::PAGENT_OUTCOME_OK,
            want_ok
        );
        assert_eq!(pagent_result_retryable(r), i % 10 == 3);
        assert!(seen.insert(id));
        pagent_result_free(r);
    }
    assert!(r.is_null());
    assert_eq!(seen.len(), 80);
    pagent_journal_free(j);

    // Exported as JSON lines.
    let out = path.with_extension("jsonl");
    let o = cstr(out.to_str().unwrap());
    assert_eq!(
        pagent_journal_export_jsonl(p.as_ptr(), o.as_ptr()),
        PAGENT_OK,
        "{}",
        last_error()
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 80);
    let l5 = lines.iter().find(|v| v["id"] == "id-5").unwrap();
    assert_eq!(l5["answer"], "answer to question 5");
    assert_eq!(l5["outcome"], "ok");
}

#[test]
fn a_different_fingerprint_is_refused_unless_allowed() {
    let path = dir("fingerprint").join("j.db");
    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let first = run(e, &pairs(0..5, |i| format!("q{i}"))).unwrap();
    pagent_executor_free(e);

    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(2));
    assert_eq!(s, PAGENT_ERR_JOURNAL_MISMATCH);
    assert!(e.is_null());
    let msg = last_error();
    assert!(msg.contains("seed=1") && msg.contains("seed=2"), "{msg}");

    let (s, e) = new_exec(
        config(&path, |c| {
            assert_eq!(pagent_config_set_journal_allow_mismatch(c, true), PAGENT_OK);
        }),
        mock_agent(2),
    );
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let again = run(e, &pairs(0..5, |i| format!("q{i}"))).unwrap();
    assert!(again.values().all(|g| g.replayed));
    assert_eq!(again["id-3"].answer, first["id-3"].answer);
    pagent_executor_free(e);
}

#[test]
fn one_holder_at_a_time() {
    let path = dir("lock").join("j.db");
    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let (s2, e2) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s2, PAGENT_ERR_JOURNAL_LOCKED);
    assert!(e2.is_null());
    assert!(last_error().contains("held by another"), "{}", last_error());
    let p = cstr(path.to_str().unwrap());
    let mut j = ptr::null_mut();
    assert_eq!(
        pagent_journal_open(p.as_ptr(), &mut j),
        PAGENT_ERR_JOURNAL_LOCKED
    );
    assert!(j.is_null());
    run(e, &pairs(0..3, |i| format!("q{i}"))).unwrap();
    // Freeing the executor releases the lock at once.
    pagent_executor_free(e);
    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    pagent_executor_free(e);
}

#[test]
fn unusable_paths_and_newer_formats_are_clear_failures() {
    let d = dir("paths");
    let (s, e) = new_exec(
        config(&d.join("no-such-dir").join("j.db"), |_| {}),
        mock_agent(1),
    );
    assert_eq!(s, PAGENT_ERR_JOURNAL);
    assert!(e.is_null());
    assert!(last_error().contains("no-such-dir"), "{}", last_error());

    // A directory, and a file that is not a journal.
    let (s, _) = new_exec(config(&d, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_ERR_JOURNAL, "{}", last_error());
    let junk = d.join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let (s, _) = new_exec(config(&junk, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_ERR_JOURNAL, "{}", last_error());
    assert!(
        last_error().contains("is not a journal"),
        "{}",
        last_error()
    );

    // Reading a journal that is not there creates nothing.
    let missing = cstr(d.join("missing.db").to_str().unwrap());
    let mut j = ptr::null_mut();
    assert_eq!(
        pagent_journal_open(missing.as_ptr(), &mut j),
        PAGENT_ERR_JOURNAL
    );
    assert!(!d.join("missing.db").exists());

    // A journal from a newer format version.
    let path = d.join("newer.db");
    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    pagent_executor_free(e);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'format_version'",
            [],
        )
        .unwrap();
    }
    let (s, e) = new_exec(config(&path, |_| {}), mock_agent(1));
    assert_eq!(s, PAGENT_ERR_JOURNAL_VERSION);
    assert!(e.is_null());
    assert!(
        last_error().contains("format version 99"),
        "{}",
        last_error()
    );
    let p = cstr(path.to_str().unwrap());
    assert_eq!(
        pagent_journal_open(p.as_ptr(), &mut j),
        PAGENT_ERR_JOURNAL_VERSION
    );

    // Config checks.
    let c = pagent_config_new();
    assert_eq!(
        pagent_config_set_journal(c, c"".as_ptr()),
        PAGENT_ERR_INVALID_ARG
    );
    assert_eq!(pagent_config_set_journal(c, ptr::null()), PAGENT_OK);
    pagent_config_free(c);
    assert_eq!(pagent_journal_open(ptr::null(), &mut j), PAGENT_ERR_NULL);
    assert_eq!(
        pagent_journal_export_jsonl(p.as_ptr(), ptr::null()),
        PAGENT_ERR_NULL
    );
}

#[test]
fn a_full_journal_stops_the_batch_and_loses_no_index() {
    let path = dir("full").join("j.db");
    let (s, e) = new_exec(
        config(&path, |c| {
            assert_eq!(pagent_config_set_journal_max_bytes(c, 64 * 1024), PAGENT_OK);
            assert_eq!(pagent_config_set_max_concurrency(c, 4), PAGENT_OK);
        }),
        mock_agent(1),
    );
    assert_eq!(s, PAGENT_OK, "{}", last_error());
    let small = run(e, &pairs(0..5, |i| format!("q{i}"))).unwrap();
    assert!(small
        .values()
        .all(|g| g.outcome == pagent_outcome::PAGENT_OUTCOME_OK));
    // ~1 KB a row: the journal fills after a few dozen (or at the first group).
    let long = "x".repeat(1000);
    let got = run(e, &pairs(100..2100, |i| format!("{i} {long}"))).unwrap();
    let ok = got
        .values()
        .filter(|g| g.outcome == pagent_outcome::PAGENT_OUTCOME_OK)
        .count();
    let lost = got
        .values()
        .filter(|g| {
            g.error
                .as_deref()
                .is_some_and(|e| e.starts_with("not journaled"))
        })
        .count();
    let cancelled = got
        .values()
        .filter(|g| g.outcome == pagent_outcome::PAGENT_OUTCOME_CANCELLED)
        .count();
    assert!(ok < 2000, "ok {ok}");
    assert!(lost > 0, "some results could not be stored");
    assert_eq!(ok + cancelled, 2000, "every index accounted for");
    assert!(got
        .values()
        .filter(|g| g.outcome == pagent_outcome::PAGENT_OUTCOME_CANCELLED)
        .all(|g| g.error.as_deref().unwrap().contains("journal write failed")));
    // The journal takes no more work.
    assert_eq!(
        run(e, &pairs(5000..5001, |i| format!("q{i}"))).unwrap_err(),
        PAGENT_ERR_JOURNAL
    );
    assert!(last_error().contains("full"), "{}", last_error());
    pagent_executor_free(e);

    // Nothing half-written: exactly the results the host got as OK are stored.
    let p = cstr(path.to_str().unwrap());
    let mut j = ptr::null_mut();
    assert_eq!(
        pagent_journal_open(p.as_ptr(), &mut j),
        PAGENT_OK,
        "{}",
        last_error()
    );
    assert_eq!(pagent_journal_remaining(j), 5 + ok);
    let mut r = ptr::null_mut();
    while pagent_journal_next(j, &mut r) == PAGENT_OK {
        let id = text(pagent_result_id(r)).unwrap();
        let g = got.get(&id).unwrap_or_else(|| &small[&id]);
        assert_eq!(g.outcome, pagent_outcome::PAGENT_OUTCOME_OK);
        assert_eq!(text(pagent_result_answer(r)), g.answer);
        pagent_result_free(r);
    }
    pagent_journal_free(j);
}
