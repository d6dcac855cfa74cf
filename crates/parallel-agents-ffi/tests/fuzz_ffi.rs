//! A bounded fuzz test of the C entry points that take strings, arrays and sizes: random
//! bytes (invalid UTF-8, empty strings, NULL elements), random sizes and absurd numbers.
//! Every call must return a status (never crash, never panic across the boundary), and
//! every handle it hands out must free cleanly. Runs a fixed number of seeded rounds, so
//! CI time is bounded and failures reproduce (`PAGENT_FUZZ_SEED`, `PAGENT_FUZZ_ROUNDS`).

use std::ffi::{c_char, CString};
use std::ptr;

use parallel_agents_ffi::agent::*;
use parallel_agents_ffi::batch::*;
use parallel_agents_ffi::config::*;
use parallel_agents_ffi::executor::*;
use parallel_agents_ffi::results::*;
use parallel_agents_ffi::status::{pagent_last_error, pagent_status, pagent_status_str};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn random_bytes(rng: &mut SmallRng) -> Vec<u8> {
    let len = match rng.random_range(0..10) {
        0 => 0,
        1 => rng.random_range(200..2000),
        _ => rng.random_range(1..24),
    };
    (0..len)
        .map(|_| match rng.random_range(0..4) {
            0 => rng.random_range(0x80..=0xff), // stray continuation / invalid bytes
            _ => rng.random_range(1..0x80),
        })
        .collect()
}

fn any_f64(rng: &mut SmallRng) -> f64 {
    match rng.random_range(0..6) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -rng.random::<f64>() * 1e9,
        3 => f64::from_bits(rng.random()),
        _ => rng.random::<f64>() * 2.0,
    }
}

fn any_usize(rng: &mut SmallRng) -> usize {
    match rng.random_range(0..5) {
        0 => 0,
        1 => usize::MAX,
        2 => rng.random::<u64>() as usize,
        _ => rng.random_range(1..64),
    }
}

fn check(s: pagent_status) {
    let code = s as u32;
    let name = unsafe { std::ffi::CStr::from_ptr(pagent_status_str(code)) };
    assert_ne!(name.to_str().unwrap(), "PAGENT_UNKNOWN_STATUS");
    assert_ne!(
        s,
        pagent_status::PAGENT_ERR_PANIC,
        "a panic reached the boundary: {:?}",
        unsafe { std::ffi::CStr::from_ptr(pagent_last_error()) }
    );
    if code >= 100 {
        let msg = unsafe { std::ffi::CStr::from_ptr(pagent_last_error()) };
        assert!(
            !msg.to_bytes().is_empty(),
            "failure {s:?} without a message"
        );
    }
}

#[test]
fn random_inputs_at_the_boundary_never_crash() {
    let seed: u64 = std::env::var("PAGENT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let rounds: usize = std::env::var("PAGENT_FUZZ_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut rng = SmallRng::seed_from_u64(seed);

    let mut opts = std::mem::MaybeUninit::<pagent_mock_options>::uninit();
    pagent_mock_options_init(opts.as_mut_ptr());
    let mut opts = unsafe { opts.assume_init() };
    opts.latency_us = 0;
    let mut agent = ptr::null_mut();
    check(pagent_agent_mock(&opts, &mut agent));
    let mut exec = ptr::null_mut();
    check(pagent_executor_new(ptr::null(), agent, &mut exec));

    for round in 0..rounds {
        // Strings: random bytes, NUL-terminated (C cannot pass interior NULs).
        let n = rng.random_range(0..6);
        let owned: Vec<CString> = (0..n)
            .map(|_| {
                CString::new(
                    random_bytes(&mut rng)
                        .into_iter()
                        .filter(|b| *b != 0)
                        .collect::<Vec<_>>(),
                )
                .unwrap()
            })
            .collect();
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        if n > 0 && rng.random_range(0..8) == 0 {
            let k = rng.random_range(0..n);
            ptrs[k] = ptr::null();
        }
        let arr = if rng.random_range(0..10) == 0 {
            ptr::null()
        } else {
            ptrs.as_ptr()
        };

        let mut results = ptr::null_mut();
        let s = pagent_execute(exec, arr, n, &mut results);
        check(s);
        assert_eq!(s == pagent_status::PAGENT_OK, !results.is_null());
        if !results.is_null() {
            assert_eq!(pagent_results_len(results), n);
            for i in 0..n + 1 {
                let mut r = ptr::null();
                let st = pagent_results_get(results, i, &mut r);
                check(st);
                if st == pagent_status::PAGENT_OK {
                    assert!(!pagent_result_question(r).is_null());
                }
            }
        }
        pagent_results_free(results);

        let mut batch = ptr::null_mut();
        check(pagent_submit(exec, arr, n, &mut batch));
        if !batch.is_null() {
            let timeout = match rng.random_range(0..4) {
                0 => rng.random::<i64>(),
                1 => -1,
                _ => rng.random_range(0..5),
            };
            let mut r = ptr::null_mut();
            check(pagent_batch_next(batch, timeout, &mut r));
            pagent_result_free(r);
            if rng.random() {
                check(pagent_batch_cancel(batch));
            }
            let mut res = ptr::null_mut();
            check(pagent_batch_wait(batch, -1, &mut res));
            pagent_results_free(res);
        }
        pagent_batch_free(batch);

        // Consensus with random question bytes and sizes.
        let q = owned.first().map_or(ptr::null(), |c| c.as_ptr());
        let mut cons = ptr::null_mut();
        let n_agents = if rng.random() {
            rng.random_range(0..8)
        } else {
            any_usize(&mut rng)
        };
        if n_agents <= 64 || q.is_null() || n_agents == usize::MAX {
            check(pagent_run_consensus(exec, q, n_agents, &mut cons));
        }
        pagent_consensus_free(cons);

        // Config setters with absurd numbers.
        let cfg = pagent_config_new();
        check(pagent_config_set_max_concurrency(cfg, any_usize(&mut rng)));
        check(pagent_config_set_agent_timeout_ms(cfg, rng.random()));
        check(pagent_config_set_consensus_threshold(
            cfg,
            any_f64(&mut rng),
        ));
        check(pagent_config_set_rate_limit(
            cfg,
            any_f64(&mut rng),
            rng.random(),
        ));
        check(pagent_config_set_max_retries(cfg, rng.random()));
        check(pagent_config_set_retry_backoff_ms(
            cfg,
            rng.random(),
            rng.random(),
        ));
        check(pagent_config_set_stream_buffer(cfg, any_usize(&mut rng)));
        check(pagent_config_set_hedge(cfg, rng.random(), rng.random()));
        pagent_config_free(cfg);

        // Mock options with random rates and vote arrays.
        let mut o = opts;
        o.failure_rate = any_f64(&mut rng);
        o.hang_rate = any_f64(&mut rng);
        o.jitter_us = rng.random();
        o.latency_us = if rng.random() { rng.random() } else { 0 };
        let weights: Vec<f64> = (0..n).map(|_| any_f64(&mut rng)).collect();
        if n > 0 && rng.random() {
            o.vote_answers = ptrs.as_ptr();
            o.n_vote_answers = n;
            o.vote_weights = if rng.random() {
                weights.as_ptr()
            } else {
                ptr::null()
            };
        }
        let mut a = ptr::null_mut();
        check(pagent_agent_mock(&o, &mut a));
        pagent_agent_free(a);

        // Python targets: garbage must fail with a status, not crash the interpreter.
        if round % 25 == 0 {
            let mut p = ptr::null_mut();
            check(pagent_agent_python(q, &mut p));
            pagent_agent_free(p);
        }
    }
    pagent_executor_free(exec);
    pagent_agent_free(agent);
}
