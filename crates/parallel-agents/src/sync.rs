//! Locking that outlives a panic.
//!
//! Agents run host code (callbacks, Python, HTTP clients) that may panic; the library
//! turns such a panic into a failed call and keeps serving. A `std` mutex held across that
//! panic is poisoned, yet every value the library guards is a whole value at each
//! unlock, so the poison carries no information: [`lock`] ignores it.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, ignoring poisoning (see the module docs).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
