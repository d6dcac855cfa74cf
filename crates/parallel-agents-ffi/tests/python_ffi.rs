//! DSPy programs driven the way a C host drives them: through the C entry points
//! (`pagent_agent_python*`, `pagent_execute`, `pagent_run_consensus`). Runs offline with
//! DSPy's `DummyLM`; prints SKIP and passes if dspy is not importable, but fails under CI (CI installs it
//! from requirements-dev.txt into `.venv`).
#![cfg(feature = "python")]

use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::ptr;

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn target(callable: &str) -> CString {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("VIRTUAL_ENV").is_none() && dir.join("../../.venv").is_dir() {
        std::env::set_var("VIRTUAL_ENV", dir.join("../../.venv"));
    }
    let file = dir.join("../parallel-agents/tests/python/dspy_agents.py");
    CString::new(format!("{}:{callable}", file.display())).unwrap()
}

fn dspy_available() -> bool {
    let mut a = ptr::null_mut();
    let t = target("CapitalProgram");
    let ok = pagent_agent_python(t.as_ptr(), &mut a) == pagent_status::PAGENT_OK;
    if !ok {
        // CI installs requirements-dev.txt, so there the skip would hide a broken step.
        assert!(
            std::env::var_os("CI").is_none(),
            "dspy agents unavailable under CI: {}",
            last_error()
        );
        eprintln!("SKIP: dspy agents unavailable: {}", last_error());
    }
    pagent_agent_free(a);
    ok
}

fn answer(r: *const pagent_result) -> String {
    let p = pagent_result_answer(r);
    assert!(!p.is_null(), "no answer: {:?}", unsafe {
        CStr::from_ptr(pagent_result_error(r))
    });
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn dspy_through_the_c_abi_batch_and_consensus() {
    if !dspy_available() {
        return;
    }
    // A DSPy Module subclass answers a batch.
    let mut agent = ptr::null_mut();
    let t = target("CapitalProgram");
    assert_eq!(
        pagent_agent_python(t.as_ptr(), &mut agent),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let mut exec = ptr::null_mut();
    assert_eq!(
        pagent_executor_new(ptr::null(), agent, &mut exec),
        pagent_status::PAGENT_OK
    );
    pagent_agent_free(agent);
    let qs = [
        ("What is the capital of France?", "Paris"),
        ("What is the capital of Japan?", "Tokyo"),
        ("What is the capital of Kenya?", "Nairobi"),
    ];
    let owned: Vec<CString> = qs.iter().map(|(q, _)| CString::new(*q).unwrap()).collect();
    let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    let mut results = ptr::null_mut();
    assert_eq!(
        pagent_execute(exec, ptrs.as_ptr(), ptrs.len(), &mut results),
        pagent_status::PAGENT_OK
    );
    assert_eq!(pagent_results_len(results), 3);
    for (i, (_, want)) in qs.iter().enumerate() {
        let mut r = ptr::null();
        assert_eq!(
            pagent_results_get(results, i, &mut r),
            pagent_status::PAGENT_OK
        );
        assert_eq!(pagent_result_outcome(r), pagent_outcome::PAGENT_OUTCOME_OK);
        assert_eq!(answer(r), *want);
    }
    pagent_results_free(results);
    pagent_executor_free(exec);

    // Five DSPy ChainOfThought voters built by a factory reach consensus.
    let mut voters = ptr::null_mut();
    let t = target("make_voters");
    assert_eq!(
        pagent_agent_python_with(t.as_ptr(), c"answer".as_ptr(), true, &mut voters),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    let cfg = pagent_config_new();
    assert_eq!(
        pagent_config_set_max_concurrency(cfg, 5),
        pagent_status::PAGENT_OK
    );
    assert_eq!(
        pagent_config_set_consensus_early_stop(cfg, false),
        pagent_status::PAGENT_OK
    );
    let mut exec = ptr::null_mut();
    assert_eq!(
        pagent_executor_new(cfg, voters, &mut exec),
        pagent_status::PAGENT_OK
    );
    pagent_config_free(cfg);
    pagent_agent_free(voters);
    let mut c = ptr::null_mut();
    assert_eq!(
        pagent_run_consensus(exec, c"What is the capital of France?".as_ptr(), 5, &mut c),
        pagent_status::PAGENT_OK,
        "{}",
        last_error()
    );
    assert_eq!(
        (pagent_consensus_votes(c), pagent_consensus_counted(c)),
        (4, 5)
    );
    assert!(pagent_consensus_reached(c));
    let a = unsafe { CStr::from_ptr(pagent_consensus_answer(c)) }
        .to_str()
        .unwrap();
    assert_eq!(parallel_agents::normalize_answer(a), "paris");
    pagent_consensus_free(c);
    pagent_executor_free(exec);

    // Bad targets fail at creation with PAGENT_ERR_PYTHON and a message.
    let mut bad = ptr::null_mut();
    let t = target("no_such_callable");
    assert_eq!(
        pagent_agent_python(t.as_ptr(), &mut bad),
        pagent_status::PAGENT_ERR_PYTHON
    );
    assert!(bad.is_null());
    assert!(
        last_error().contains("no_such_callable"),
        "{}",
        last_error()
    );
    assert_eq!(
        pagent_agent_python_with(t.as_ptr(), c"".as_ptr(), false, &mut bad),
        pagent_status::PAGENT_ERR_INVALID_ARG
    );
}
