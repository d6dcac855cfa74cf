//! The C ABI. Only conversion and checking live here; every function calls the Rust API.
//!
//! Rules every entry point follows (see DESIGN.md §4): the body runs under
//! [`guard::guard`], so no panic unwinds into C; every pointer is checked; failures
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
pub mod openai;
pub mod results;
pub mod runtime;
pub mod status;

pub use guard::{PAGENT_MAX_BATCH, PAGENT_MAX_TIMEOUT_MS};
