//! The boundary: every entry point runs its body through [`guard`], which turns a panic
//! into `PAGENT_ERR_PANIC` and a failure into its status plus `pagent_last_error()`.
//! Argument checks live here too, so each entry point reads as "check, call, write out".

use std::ffi::{c_char, CStr};
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
            set_last_error(
                function,
                &format!("internal panic: {}", parallel_agents::panic_message(&*p)),
            );
            pagent_status::PAGENT_ERR_PANIC
        }
    }
}

/// Like [`guard`] for accessors that return a value: `default` on NULL input or panic.
pub(crate) fn guard_value<T>(function: &str, default: T, body: impl FnOnce() -> Option<T>) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Some(v)) => v,
        Ok(None) => {
            set_last_error(function, "handle is NULL");
            default
        }
        Err(p) => {
            set_last_error(
                function,
                &format!("internal panic: {}", parallel_agents::panic_message(&*p)),
            );
            default
        }
    }
}

/// Borrows a handle the host passed in.
pub(crate) fn arg<'a, T>(p: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: non-NULL handles come from this library and are live per the API contract.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// Borrows a handle the host passed in, mutably.
pub(crate) fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: as in `arg`; the contract forbids concurrent use of a mutable handle.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Checks an out-pointer and sets what it points to to NULL, so a failing call leaves
/// the host's variable NULL rather than stale.
pub(crate) fn out_handle<'a, T>(out: *mut *mut T, name: &str) -> Result<&'a mut *mut T, Failure> {
    // SAFETY: a non-NULL out-pointer points to writable storage per the API contract.
    let slot = unsafe { out.as_mut() }.ok_or_else(|| Failure::null(name))?;
    *slot = std::ptr::null_mut();
    Ok(slot)
}

/// Checks a plain out-pointer.
pub(crate) fn out_value<'a, T>(out: *mut T, name: &str) -> Result<&'a mut T, Failure> {
    // SAFETY: as in `out_handle`.
    unsafe { out.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Borrows a NUL-terminated UTF-8 string.
pub(crate) fn c_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the API contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
        Failure::new(
            pagent_status::PAGENT_ERR_UTF8,
            format!("{name} is not valid UTF-8 (byte {})", e.valid_up_to()),
        )
    })
}

/// Largest batch accepted in one call.
pub const PAGENT_MAX_BATCH: usize = 100_000_000;

/// Copies an array of `n` question strings.
pub(crate) fn questions(p: *const *const c_char, n: usize) -> Result<Vec<String>, Failure> {
    if p.is_null() {
        return Err(Failure::null("questions"));
    }
    if n == 0 {
        return Err(Failure::invalid(
            "n is 0: a batch needs at least one question",
        ));
    }
    if n > PAGENT_MAX_BATCH {
        return Err(Failure::invalid(format!(
            "n = {n} exceeds the limit {PAGENT_MAX_BATCH}"
        )));
    }
    // SAFETY: `p` points to `n` pointers per the API contract.
    let ptrs = unsafe { std::slice::from_raw_parts(p, n) };
    ptrs.iter()
        .enumerate()
        .map(|(i, q)| c_str(*q, &format!("questions[{i}]")).map(str::to_owned))
        .collect()
}

/// Largest accepted wait, in milliseconds (30 days); `-1` means forever. A literal, so
/// the header has a plain number (an `int` product overflowed in C).
pub const PAGENT_MAX_TIMEOUT_MS: i64 = 2_592_000_000;

/// A host timeout: `None` = forever (-1), `Some(0)` = do not wait.
pub(crate) fn timeout_ms(ms: i64) -> Result<Option<std::time::Duration>, Failure> {
    match ms {
        -1 => Ok(None),
        0..=PAGENT_MAX_TIMEOUT_MS => Ok(Some(std::time::Duration::from_millis(ms as u64))),
        _ => Err(Failure::invalid(format!(
            "timeout_ms = {ms}: use -1 (forever), 0 (poll) or up to {PAGENT_MAX_TIMEOUT_MS}"
        ))),
    }
}

/// Gives a value to the host as an owned handle.
pub(crate) fn boxed<T>(v: T) -> *mut T {
    Box::into_raw(Box::new(v))
}

/// Frees a handle made by [`boxed`]; NULL is a no-op.
pub(crate) fn free_boxed<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: made by `boxed` and not freed before, per the API contract.
        drop(unsafe { Box::from_raw(p) });
    }
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
