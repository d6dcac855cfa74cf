//! The C ABI. Only conversion and checking live here; every function calls the Rust API.
//!
//! Rules every entry point follows (see DESIGN.md §4): the body runs under
//! `guard::guard`, so no panic unwinds into C; every argument is checked by the
//! `try_*!` macros of `guard`, which name it in the error; failures
//! return a status and set `pagent_last_error()`; out-handles are NULL unless the call
//! succeeds; each handle type has exactly one free function, which accepts NULL.
#![allow(non_camel_case_types)]
// These are the C entry points: they must take raw pointers, whose validity the header
// documents as the host's contract (as rustls-ffi does). NULL is always checked.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod agent;
pub mod batch;
pub mod config;
pub mod executor;
mod guard;
pub mod journal;
pub mod openai;
pub mod results;
pub mod runtime;
pub mod status;

pub use guard::{PAGENT_MAX_BATCH, PAGENT_MAX_TIMEOUT_MS};

/// Most voters `pagent_run_consensus` asks in one round: a larger `n_agents` fails with
/// `PAGENT_ERR_INVALID_ARG`. A round keeps every voter's result until it ends, and voters
/// start only as `max_concurrency` permits free up.
pub const PAGENT_MAX_CONSENSUS_AGENTS: usize = 100_000;

/// Keys an executor's metrics cache keeps (`pagent_metrics_store`, and each consensus
/// round under its question): storing one more drops the least recently stored or read,
/// which `pagent_metrics_get` then reports as `PAGENT_ERR_NOT_FOUND`. A key over 256 bytes
/// is kept as a digest, its length and a 64-byte preview, and shows in
/// `pagent_executor_metrics_json` as `"{preview}... ({len} bytes, digest {hex})"`.
pub const PAGENT_METRICS_CACHE_CAPACITY: usize = 1024;

/// The library's major version (see `pagent_version()` for the whole string).
pub const PAGENT_VERSION_MAJOR: u32 = 0;
/// The library's minor version.
pub const PAGENT_VERSION_MINOR: u32 = 1;
/// The library's patch version.
pub const PAGENT_VERSION_PATCH: u32 = 0;

// The C names of Rust limits: literals (so the header has plain numbers), checked here.
const _: () = {
    assert!(PAGENT_MAX_CONSENSUS_AGENTS == parallel_agents::config::MAX_CONSENSUS_AGENTS);
    assert!(
        PAGENT_METRICS_CACHE_CAPACITY == parallel_agents::metrics::cache::METRICS_CACHE_CAPACITY
    );
    assert!(parallel_agents::metrics::cache::METRICS_KEY_FULL_MAX == 256);
    assert!(PAGENT_MAX_TIMEOUT_MS as u128 == parallel_agents::config::MAX_DURATION.as_millis());
};
