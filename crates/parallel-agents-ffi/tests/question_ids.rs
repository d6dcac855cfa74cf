//! Question ids through the C ABI: each result carries the host's id (or its index),
//! duplicate ids are refused with `PAGENT_ERR_DUPLICATE_ID` before anything runs.

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::batch::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status};

use pagent_status::*;

fn last_error() -> String {
    unsafe { CStr::from_ptr(pagent_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn executor() -> *mut pagent_executor {
    let mut o = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(o.as_mut_ptr());
    let mut o = unsafe { o.assume_init() };
    o.latency_us = 0;
    let mut a = ptr::null_mut();
    assert_eq!(pagent_agent_mock(&o, &mut a), PAGENT_OK, "{}", last_error());
    let mut e = ptr::null_mut();
    assert_eq!(pagent_executor_new(ptr::null(), a, &mut e), PAGENT_OK);
    pagent_agent_free(a);
    e
}

fn c_strings(v: &[&str]) -> (Vec<CString>, Vec<*const c_char>) {
    let owned: Vec<CString> = v.iter().map(|s| CString::new(*s).unwrap()).collect();
    let ptrs = owned.iter().map(|s| s.as_ptr()).collect();
    (owned, ptrs)
}

fn text(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn get(rs: *const pagent_results, i: usize) -> *const pagent_result {
    let mut r = ptr::null();
    assert_eq!(pagent_results_get(rs, i, &mut r), PAGENT_OK);
    r
}

#[test]
fn every_result_carries_its_id() {
    let e = executor();
    let (_i, ids) = c_strings(&["row-a", "row-b", "row-c"]);
    let (_q, qs) = c_strings(&["qa", "qb", "qc"]);
    let mut b = ptr::null_mut();
    assert_eq!(
        pagent_submit_ids(e, ids.as_ptr(), qs.as_ptr(), 3, &mut b),
        PAGENT_OK,
        "{}",
        last_error()
    );
    let mut seen = Vec::new();
    let mut r = ptr::null_mut();
    while pagent_batch_next(b, -1, &mut r) == PAGENT_OK {
        let id = text(pagent_result_id(r));
        let q = text(pagent_result_question(r));
        assert_eq!(q, format!("q{}", &id[4..]), "id tied to its question");
        assert_eq!(
            pagent_result_question_index(r),
            (id.as_bytes()[4] - b'a') as usize
        );
        assert!(!pagent_result_replayed(r));
        seen.push(id);
        pagent_result_free(r);
    }
    seen.sort();
    assert_eq!(seen, ["row-a", "row-b", "row-c"]);
    pagent_batch_free(b);

    // Blocking form, and without ids the id is the index.
    let mut rs = ptr::null_mut();
    assert_eq!(
        pagent_execute_ids(e, ids.as_ptr(), qs.as_ptr(), 3, &mut rs),
        PAGENT_OK
    );
    for i in 0..3 {
        let r = get(rs, i);
        assert_eq!(text(pagent_result_id(r)), ["row-a", "row-b", "row-c"][i]);
    }
    pagent_results_free(rs);
    assert_eq!(pagent_execute(e, qs.as_ptr(), 3, &mut rs), PAGENT_OK);
    for i in 0..3 {
        assert_eq!(text(pagent_result_id(get(rs, i))), i.to_string());
    }
    pagent_results_free(rs);
    assert!(pagent_result_id(ptr::null()).is_null());
    pagent_executor_free(e);
}

#[test]
fn duplicate_ids_are_refused_by_name() {
    let e = executor();
    let (_i, ids) = c_strings(&["x", "y", "x"]);
    let (_q, qs) = c_strings(&["1", "2", "3"]);
    let mut b = 1usize as *mut pagent_batch;
    assert_eq!(
        pagent_submit_ids(e, ids.as_ptr(), qs.as_ptr(), 3, &mut b),
        PAGENT_ERR_DUPLICATE_ID
    );
    assert!(b.is_null());
    assert_eq!(
        last_error(),
        "pagent_submit_ids: duplicate question id \"x\": ids must be unique in a batch"
    );
    let mut rs = ptr::null_mut();
    assert_eq!(
        pagent_execute_ids(e, ids.as_ptr(), qs.as_ptr(), 3, &mut rs),
        PAGENT_ERR_DUPLICATE_ID
    );
    assert!(rs.is_null());
    assert_eq!(
        pagent_submit_ids(e, ptr::null(), qs.as_ptr(), 3, &mut b),
        PAGENT_ERR_NULL
    );
    assert_eq!(last_error(), "pagent_submit_ids: ids is NULL");
    pagent_executor_free(e);
}
