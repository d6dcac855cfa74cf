//! Status codes, the thread-local last error, and version.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use parallel_agents::error::Error;

/// What a library call returned. Numbers are fixed forever; new codes get new numbers.
///
/// Values below 100 are not failures: `PAGENT_OK`, `PAGENT_DONE` (a stream has no more
/// results), `PAGENT_WAIT_TIMEOUT` (nothing arrived in time; try again). Every value from
/// 100 up is a failure, and `pagent_last_error()` then describes it.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pagent_status {
    /// Success.
    PAGENT_OK = 0,
    /// The batch has handed out every result.
    PAGENT_DONE = 1,
    /// The wait ended before a result (or the whole batch) was ready.
    PAGENT_WAIT_TIMEOUT = 2,
    /// A required pointer argument was NULL.
    PAGENT_ERR_NULL = 100,
    /// An argument is out of range or unusable (zero sizes, absurd timeouts, ...).
    PAGENT_ERR_INVALID_ARG = 101,
    /// A string argument is not valid UTF-8.
    PAGENT_ERR_UTF8 = 102,
    /// A configuration value was rejected; the message names the field.
    PAGENT_ERR_CONFIG = 103,
    /// No such entry (metrics key, unfinished batch's metrics).
    PAGENT_ERR_NOT_FOUND = 104,
    /// The pending call was already completed, or is no longer waited for (it timed
    /// out or was cancelled). Harmless.
    PAGENT_ERR_STALE = 105,
    /// Two questions of one batch have the same id; the message names it.
    PAGENT_ERR_DUPLICATE_ID = 106,
    /// A blocking call was made from a library thread (e.g. inside an agent callback).
    PAGENT_ERR_REENTRANT = 110,
    /// The library has been shut down with `pagent_shutdown`.
    PAGENT_ERR_SHUTDOWN = 111,
    /// The library was started before `fork()`; it cannot run in the child.
    PAGENT_ERR_FORKED = 112,
    /// The runtime could not be started or configured.
    PAGENT_ERR_RUNTIME = 113,
    /// A Python error (import, attribute, interpreter), or Python support not built in.
    PAGENT_ERR_PYTHON = 120,
    /// The journal could not be created, opened, read or written (unwritable path, disk
    /// full, not a journal, corrupt, or journal support not built in); the message says
    /// which.
    PAGENT_ERR_JOURNAL = 130,
    /// Another process (or another executor or reader) holds the journal's lock.
    PAGENT_ERR_JOURNAL_LOCKED = 131,
    /// The journal was made by a different agent or configuration (its fingerprint
    /// differs); `pagent_config_set_journal_allow_mismatch` accepts it anyway.
    PAGENT_ERR_JOURNAL_MISMATCH = 132,
    /// The journal was written by a newer format version than this library reads.
    PAGENT_ERR_JOURNAL_VERSION = 133,
    /// A panic inside the library was caught at the boundary. A bug: please report it.
    PAGENT_ERR_PANIC = 199,
}

/// The C name of each status, for `pagent_status_str`, from the variants themselves: the
/// match below is exhaustive (a variant missing from the list does not compile, a listed
/// one twice is an unreachable pattern, denied), and each name is the variant's own
/// identifier, so the enum above is the one source of names and numbers.
macro_rules! status_names {
    ($($variant:ident),* $(,)?) => {
        impl pagent_status {
            /// Every status, in the order of their numbers.
            pub const ALL: &'static [pagent_status] = &[$(pagent_status::$variant),*];

            /// The status's C name, e.g. `PAGENT_ERR_NULL`.
            #[deny(unreachable_patterns)]
            pub const fn name(self) -> &'static CStr {
                match self {
                    $(pagent_status::$variant => const {
                        match CStr::from_bytes_with_nul(
                            concat!(stringify!($variant), "\0").as_bytes(),
                        ) {
                            Ok(name) => name,
                            Err(_) => panic!("a variant name has no interior NUL"),
                        }
                    },)*
                }
            }
        }
    };
}

status_names! {
    PAGENT_OK,
    PAGENT_DONE,
    PAGENT_WAIT_TIMEOUT,
    PAGENT_ERR_NULL,
    PAGENT_ERR_INVALID_ARG,
    PAGENT_ERR_UTF8,
    PAGENT_ERR_CONFIG,
    PAGENT_ERR_NOT_FOUND,
    PAGENT_ERR_STALE,
    PAGENT_ERR_DUPLICATE_ID,
    PAGENT_ERR_REENTRANT,
    PAGENT_ERR_SHUTDOWN,
    PAGENT_ERR_FORKED,
    PAGENT_ERR_RUNTIME,
    PAGENT_ERR_PYTHON,
    PAGENT_ERR_JOURNAL,
    PAGENT_ERR_JOURNAL_LOCKED,
    PAGENT_ERR_JOURNAL_MISMATCH,
    PAGENT_ERR_JOURNAL_VERSION,
    PAGENT_ERR_PANIC,
}

impl pagent_status {
    /// The status with number `n`, if there is one: values coming from C are integers.
    pub fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| *s as u32 == n)
    }
}

use pagent_status::*;

/// A failed library call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: pagent_status,
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: pagent_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// `PAGENT_ERR_NULL` for the argument named `arg`.
    pub fn null(arg: impl std::fmt::Display) -> Self {
        Self::new(PAGENT_ERR_NULL, format!("{arg} is NULL"))
    }

    /// `PAGENT_ERR_INVALID_ARG` with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(PAGENT_ERR_INVALID_ARG, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Config(_) => PAGENT_ERR_CONFIG,
            Error::InvalidArgument(_) => PAGENT_ERR_INVALID_ARG,
            Error::Reentrant(_) => PAGENT_ERR_REENTRANT,
            Error::Shutdown => PAGENT_ERR_SHUTDOWN,
            Error::Forked => PAGENT_ERR_FORKED,
            Error::Runtime(_) => PAGENT_ERR_RUNTIME,
            Error::NotFound(_) => PAGENT_ERR_NOT_FOUND,
            Error::Python(_) => PAGENT_ERR_PYTHON,
            Error::DuplicateId(_) => PAGENT_ERR_DUPLICATE_ID,
            Error::Journal(_) => PAGENT_ERR_JOURNAL,
            Error::JournalLocked(_) => PAGENT_ERR_JOURNAL_LOCKED,
            Error::JournalMismatch(_) => PAGENT_ERR_JOURNAL_MISMATCH,
            Error::JournalVersion(_) => PAGENT_ERR_JOURNAL_VERSION,
        };
        Self::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error, prefixed with the function's name.
pub(crate) fn set_last_error(function: &str, message: &str) {
    let text = format!("{function}: {message}").replace('\0', "\u{fffd}");
    let c = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The message of the last failed call on the calling thread ("" if none yet).
///
/// Owned by the library; valid until the next failing call on this thread. Copy it if you
/// need it longer. Never NULL.
#[no_mangle]
pub extern "C" fn pagent_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// A static, human-readable name for a status, e.g. `"PAGENT_ERR_NULL"`. Any integer may
/// be passed; unknown values give `"PAGENT_UNKNOWN_STATUS"`. Never NULL, never freed.
#[no_mangle]
pub extern "C" fn pagent_status_str(status: u32) -> *const c_char {
    pagent_status::from_u32(status)
        .map_or(c"PAGENT_UNKNOWN_STATUS", pagent_status::name)
        .as_ptr()
}

/// The library version, e.g. `"0.1.0"`. Static; never freed.
#[no_mangle]
pub extern "C" fn pagent_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(n: u32) -> &'static str {
        // SAFETY: `pagent_status_str` returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(pagent_status_str(n)) }
            .to_str()
            .unwrap()
    }

    #[test]
    fn every_status_has_its_own_name_and_number() {
        for (i, s) in pagent_status::ALL.iter().enumerate() {
            assert_eq!(name_of(*s as u32), format!("{s:?}"));
            assert_eq!(pagent_status::from_u32(*s as u32), Some(*s));
            if i > 0 {
                assert!(pagent_status::ALL[i - 1] as u32 <= *s as u32, "sorted");
                assert_ne!(pagent_status::ALL[i - 1] as u32, *s as u32, "unique");
            }
        }
        assert_eq!(pagent_status::ALL.len(), 20);
    }

    #[test]
    fn unknown_numbers_have_the_unknown_name() {
        for n in [3, 99, 107, 114, 121, 134, 198, 200, u32::MAX] {
            assert_eq!(pagent_status::from_u32(n), None);
            assert_eq!(name_of(n), "PAGENT_UNKNOWN_STATUS");
        }
    }
}
