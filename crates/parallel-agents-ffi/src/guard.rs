//! The boundary: every entry point runs its body through [`guard`] (or [`guard_value`]
//! for accessors that return a value), which turns a panic into `PAGENT_ERR_PANIC` and a
//! failure into its status plus `pagent_last_error()`.
//!
//! Host arguments are checked one way, with the `try_*!` macros below, so each entry
//! point reads as "check, call, write out". Each macro evaluates to the checked value or
//! returns (with `?`) a [`Failure`] whose message names the argument, taken from the
//! parameter itself (`try_ref!(executor)` fails with "executor is NULL") so the name
//! cannot drift from the signature; an explicit name serves struct fields and array
//! elements (`try_ref!(*a, Elem("agents", i))`). The one family:
//!
//! | macro | host passes | gives | fails with |
//! | --- | --- | --- | --- |
//! | [`try_ref!`] | `const T *` handle | `&T` | NULL |
//! | [`try_mut!`] | `T *` handle | `&mut T` | NULL |
//! | [`try_opt_ref!`] | handle, NULL = default | `Option<&T>` | never |
//! | [`try_out_handle!`] | `T **` out, set to NULL first | `&mut *mut T` (or `*const T`) | NULL |
//! | [`try_out!`] | `T *` out | `&mut T` | NULL |
//! | [`try_str!`] | `const char *` | `&str` | NULL, UTF-8 |
//! | [`try_opt_str!`] | `const char *`, NULL = none | `Option<&str>` | UTF-8 |
//! | [`try_slice!`] | `const T *` and a count | `&[T]` | NULL, count 0 or over the limit |
//! | [`try_opt_slice!`] | as `try_slice!`, NULL = none | `Option<&[T]>` | count 0 or over the limit |
//! | [`try_strings!`] | `const char *const *` and a count | `Vec<String>` | as `try_slice!`, and each element as `try_str!` |
//! | [`try_callback!`] | a function pointer | the function | NULL |
//! | [`try_token!`] | an opaque token, never dereferenced | the token | NULL |
//! | [`try_timeout!`] | a timeout in ms | `Option<Duration>` | out of range |
//!
//! The functions behind them are `pub(crate)` only so the macros can reach them from
//! other modules; entry points use the macros.

use std::ffi::{c_char, CStr};
use std::fmt::Display;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{pagent_status, set_last_error, Failure};

/// The result of an entry point's body.
pub(crate) type FfiResult = Result<pagent_status, Failure>;

/// Runs `body`, catching panics; records the message of any failure.
pub(crate) fn guard(function: &str, body: impl FnOnce() -> FfiResult) -> pagent_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(f)) => {
            set_last_error(function, &f.message);
            f.status
        }
        Err(p) => {
            set_last_error(function, &panic_message(&*p));
            pagent_status::PAGENT_ERR_PANIC
        }
    }
}

/// Like [`guard`] for accessors that return a value rather than a status: `default` on a
/// failure (a NULL handle) or a panic, with the message recorded all the same.
pub(crate) fn guard_value<T>(
    function: &str,
    default: T,
    body: impl FnOnce() -> Result<T, Failure>,
) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(f)) => {
            set_last_error(function, &f.message);
            default
        }
        Err(p) => {
            set_last_error(function, &panic_message(&*p));
            default
        }
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    format!("internal panic: {}", parallel_agents::panic_message(p))
}

/// The name of element `.1` of the array argument `.0`, e.g. `questions[3]`; formatted
/// only when a check fails, so checking a large array allocates no names.
#[derive(Clone, Copy)]
pub(crate) struct Elem<'a>(pub &'a str, pub usize);

impl Display for Elem<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.0, self.1)
    }
}

/// Borrows a handle the host passed in. Behind [`try_ref!`].
pub(crate) fn arg<'a, T>(p: *const T, name: impl Display) -> Result<&'a T, Failure> {
    // SAFETY: non-NULL handles come from this library and are live per the API contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// Borrows a handle the host passed in, mutably. Behind [`try_mut!`].
pub(crate) fn arg_mut<'a, T>(p: *mut T, name: impl Display) -> Result<&'a mut T, Failure> {
    // SAFETY: as in `arg`; the contract forbids concurrent use of a mutable handle.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Borrows a handle that may be NULL (meaning "defaults" or "none"). Behind
/// [`try_opt_ref!`].
pub(crate) fn opt_arg<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: as in `arg`.
    unsafe { p.as_ref() }
}

/// A pointer a handle out-parameter can hold: `T *` or `const T *`.
pub(crate) trait Nullable {
    /// The NULL pointer.
    fn null() -> Self;
}

impl<T> Nullable for *mut T {
    fn null() -> Self {
        std::ptr::null_mut()
    }
}

impl<T> Nullable for *const T {
    fn null() -> Self {
        std::ptr::null()
    }
}

/// Checks a handle out-pointer and sets what it points to to NULL, so a failing call
/// leaves the host's variable NULL rather than stale. Behind [`try_out_handle!`].
pub(crate) fn out_handle<'a, P: Nullable>(
    out: *mut P,
    name: impl Display,
) -> Result<&'a mut P, Failure> {
    let slot = out_value(out, name)?;
    *slot = P::null();
    Ok(slot)
}

/// Checks a plain out-pointer; what it points to is left as it is until the call
/// succeeds. Behind [`try_out!`].
pub(crate) fn out_value<'a, T>(out: *mut T, name: impl Display) -> Result<&'a mut T, Failure> {
    // SAFETY: a non-NULL out-pointer points to writable storage per the API contract.
    unsafe { out.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Borrows a NUL-terminated UTF-8 string. Behind [`try_str!`].
pub(crate) fn c_str<'a>(p: *const c_char, name: impl Display) -> Result<&'a str, Failure> {
    opt_c_str(p, &name)?.ok_or_else(|| Failure::null(name))
}

/// Borrows a NUL-terminated UTF-8 string that may be NULL. Behind [`try_opt_str!`].
pub(crate) fn opt_c_str<'a>(
    p: *const c_char,
    name: impl Display,
) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated per the API contract.
    let s = unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
        Failure::new(
            pagent_status::PAGENT_ERR_UTF8,
            format!("{name} is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })?;
    Ok(Some(s))
}

/// Borrows an array of `n` elements, `n` in [1, `max`]: NULL fails whatever `n` is,
/// and `n` is checked before the array is touched, so an absurd count never becomes an
/// absurd slice. Behind [`try_slice!`].
pub(crate) fn slice<'a, T>(
    p: *const T,
    n: usize,
    max: usize,
    name: impl Display,
    n_name: impl Display,
) -> Result<&'a [T], Failure> {
    opt_slice(p, n, max, &name, n_name)?.ok_or_else(|| Failure::null(name))
}

/// [`slice()`] for an optional array: NULL gives `None` whatever `n` is. Behind
/// [`try_opt_slice!`].
pub(crate) fn opt_slice<'a, T>(
    p: *const T,
    n: usize,
    max: usize,
    name: impl Display,
    n_name: impl Display,
) -> Result<Option<&'a [T]>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    if n == 0 || n > max {
        return Err(Failure::invalid(format!(
            "{n_name} = {n} is not in [1, {max}] (the length of {name})"
        )));
    }
    // SAFETY: `p` points to `n` elements per the API contract, and `n <= max` keeps the
    // size far below `isize::MAX` for every element type used here.
    Ok(Some(unsafe { std::slice::from_raw_parts(p, n) }))
}

/// Copies an array of `n` strings, each named `name[i]` if it fails. Behind
/// [`try_strings!`].
pub(crate) fn strings(
    p: *const *const c_char,
    n: usize,
    max: usize,
    name: &str,
    n_name: impl Display,
) -> Result<Vec<String>, Failure> {
    slice(p, n, max, name, n_name)?
        .iter()
        .enumerate()
        .map(|(i, s)| c_str(*s, Elem(name, i)).map(str::to_owned))
        .collect()
}

/// Checks a host function pointer. Behind [`try_callback!`].
pub(crate) fn callback<F>(f: Option<F>, name: impl Display) -> Result<F, Failure> {
    f.ok_or_else(|| Failure::null(name))
}

/// Checks an opaque token the host hands back; it is never dereferenced. Behind
/// [`try_token!`].
pub(crate) fn token<T>(p: *mut T, name: impl Display) -> Result<*mut T, Failure> {
    if p.is_null() {
        Err(Failure::null(name))
    } else {
        Ok(p)
    }
}

/// Largest batch accepted in one call.
pub const PAGENT_MAX_BATCH: usize = 100_000_000;

/// Largest accepted wait, in milliseconds (30 days); `-1` means forever. A literal, so
/// the header has a plain number (an `int` product overflowed in C).
pub const PAGENT_MAX_TIMEOUT_MS: i64 = 2_592_000_000;

/// A host timeout: `None` = forever (-1), `Some(0)` = do not wait. Behind
/// [`try_timeout!`].
pub(crate) fn timeout_ms(
    ms: i64,
    name: impl Display,
) -> Result<Option<std::time::Duration>, Failure> {
    match ms {
        -1 => Ok(None),
        0..=PAGENT_MAX_TIMEOUT_MS => Ok(Some(std::time::Duration::from_millis(ms as u64))),
        _ => Err(Failure::invalid(format!(
            "{name} = {ms}: use -1 (forever), 0 (poll) or up to {PAGENT_MAX_TIMEOUT_MS}"
        ))),
    }
}

/// `&T` from a `const T *` handle the host passed in; NULL fails with `PAGENT_ERR_NULL`.
/// `try_ref!(executor)` names the parameter; `try_ref!(ptr, name)` anything else.
macro_rules! try_ref {
    ($p:ident) => {
        $crate::guard::arg($p, stringify!($p))?
    };
    ($p:expr, $name:expr) => {
        $crate::guard::arg($p, $name)?
    };
}

/// `&mut T` from a `T *` handle; NULL fails with `PAGENT_ERR_NULL`.
macro_rules! try_mut {
    ($p:ident) => {
        $crate::guard::arg_mut($p, stringify!($p))?
    };
    ($p:expr, $name:expr) => {
        $crate::guard::arg_mut($p, $name)?
    };
}

/// `Option<&T>` from a handle for which NULL means "defaults" or "none"; never fails.
macro_rules! try_opt_ref {
    ($p:expr) => {
        $crate::guard::opt_arg($p)
    };
}

/// `&mut *mut T` (or `&mut *const T`) from a handle out-pointer, whose target is set to
/// NULL at once so that it is NULL if the call fails; NULL fails with `PAGENT_ERR_NULL`.
macro_rules! try_out_handle {
    ($p:ident) => {
        $crate::guard::out_handle($p, stringify!($p))?
    };
}

/// `&mut T` from a plain out-pointer (left untouched unless the call succeeds); NULL
/// fails with `PAGENT_ERR_NULL`.
macro_rules! try_out {
    ($p:ident) => {
        $crate::guard::out_value($p, stringify!($p))?
    };
}

/// `&str` from a NUL-terminated string; NULL fails with `PAGENT_ERR_NULL`, invalid UTF-8
/// with `PAGENT_ERR_UTF8` (the message gives the first bad byte).
macro_rules! try_str {
    ($p:ident) => {
        $crate::guard::c_str($p, stringify!($p))?
    };
    ($p:expr, $name:expr) => {
        $crate::guard::c_str($p, $name)?
    };
}

/// `Option<&str>` from a string for which NULL means "none"; invalid UTF-8 fails with
/// `PAGENT_ERR_UTF8`.
macro_rules! try_opt_str {
    ($p:ident) => {
        $crate::guard::opt_c_str($p, stringify!($p))?
    };
}

/// `&[T]` from an array and its length: NULL fails with `PAGENT_ERR_NULL` (whatever the
/// length), a length of 0 or over `max` with `PAGENT_ERR_INVALID_ARG`.
/// `try_slice!(agents, n_agents, MAX)`, or with explicit names for struct fields.
macro_rules! try_slice {
    ($p:ident, $n:ident, $max:expr) => {
        $crate::guard::slice($p, $n, $max, stringify!($p), stringify!($n))?
    };
    ($p:expr, $n:expr, $max:expr, $name:expr, $n_name:expr) => {
        $crate::guard::slice($p, $n, $max, $name, $n_name)?
    };
}

/// `Option<&[T]>`: like [`try_slice!`], but NULL means "none" (whatever the length).
macro_rules! try_opt_slice {
    ($p:expr, $n:expr, $max:expr, $name:expr, $n_name:expr) => {
        $crate::guard::opt_slice($p, $n, $max, $name, $n_name)?
    };
}

/// `Vec<String>` copied from an array of strings: the array as in [`try_slice!`], then
/// each element as in [`try_str!`], named `name[i]`.
macro_rules! try_strings {
    ($p:ident, $n:ident, $max:expr) => {
        $crate::guard::strings($p, $n, $max, stringify!($p), stringify!($n))?
    };
    ($p:expr, $n:expr, $max:expr, $name:expr, $n_name:expr) => {
        $crate::guard::strings($p, $n, $max, $name, $n_name)?
    };
}

/// The function from a host function pointer (`Option<fn>`); NULL fails with
/// `PAGENT_ERR_NULL`.
macro_rules! try_callback {
    ($f:ident) => {
        $crate::guard::callback($f, stringify!($f))?
    };
}

/// An opaque token the host hands back (never dereferenced); NULL fails with
/// `PAGENT_ERR_NULL`.
macro_rules! try_token {
    ($p:ident) => {
        $crate::guard::token($p, stringify!($p))?
    };
}

/// `Option<Duration>` from a host timeout in ms: -1 is `None` (forever), 0 to
/// `PAGENT_MAX_TIMEOUT_MS` a wait; anything else fails with `PAGENT_ERR_INVALID_ARG`.
macro_rules! try_timeout {
    ($ms:ident) => {
        $crate::guard::timeout_ms($ms, stringify!($ms))?
    };
}

pub(crate) use {
    try_callback, try_mut, try_opt_ref, try_opt_slice, try_opt_str, try_out, try_out_handle,
    try_ref, try_slice, try_str, try_strings, try_timeout, try_token,
};

/// Gives a value to the host as an owned handle.
pub(crate) fn boxed<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Takes back a handle made by [`boxed`] for a free function; NULL gives `None`.
pub(crate) fn take_boxed<T>(p: *mut T) -> Option<Box<T>> {
    // SAFETY: made by `boxed` and not freed before, per the API contract.
    (!p.is_null()).then(|| unsafe { Box::from_raw(p) })
}

/// Frees a handle made by [`boxed`]; NULL is a no-op.
pub(crate) fn free_boxed<T>(p: *mut T) {
    drop(take_boxed(p));
}

/// A `CString` from any Rust string: interior NULs (which C cannot see past) become U+FFFD.
pub(crate) fn to_cstring(s: &str) -> std::ffi::CString {
    // Room for the NUL up front, so the common case is one allocation and one copy.
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    std::ffi::CString::new(bytes).unwrap_or_else(|_| replace_nuls(s))
}

/// [`to_cstring`] for an owned string: reuses its buffer when it holds no NUL.
pub(crate) fn into_cstring(s: String) -> std::ffi::CString {
    std::ffi::CString::new(s)
        .unwrap_or_else(|e| replace_nuls(&String::from_utf8_lossy(&e.into_vec())))
}

fn replace_nuls(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s.replace('\0', "\u{fffd}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_for_c_keep_their_text_and_lose_interior_nuls() {
        assert_eq!(to_cstring("Paris").to_str(), Ok("Paris"));
        assert_eq!(into_cstring("Paris".to_owned()).to_str(), Ok("Paris"));
        assert_eq!(to_cstring("a\0b").to_str(), Ok("a\u{fffd}b"));
        assert_eq!(
            into_cstring("a\0b\0".to_owned()).to_str(),
            Ok("a\u{fffd}b\u{fffd}")
        );
        assert_eq!(into_cstring(String::new()).to_str(), Ok(""));
    }
}
