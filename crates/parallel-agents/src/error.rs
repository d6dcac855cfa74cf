//! The crate's error type: what a library call (not an agent call) can fail with.

use std::fmt;

use crate::config::ConfigError;

/// Why a library operation failed. Agent failures are not errors: they come back as
/// results with an outcome (see [`crate::Outcome`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A configuration value is out of range.
    Config(ConfigError),
    /// An argument is unusable (empty batch, zero agents, bad option, ...).
    InvalidArgument(String),
    /// A blocking library call was made from a library thread (e.g. inside an agent
    /// callback); it would deadlock or nest runtimes.
    Reentrant(&'static str),
    /// The library was shut down with [`crate::runtime::shutdown`].
    Shutdown,
    /// The library was started in a parent process; it cannot run in a forked child.
    Forked,
    /// The runtime could not be started or configured.
    Runtime(String),
    /// No entry under that key.
    NotFound(String),
    /// A Python error (import, attribute, interpreter).
    Python(String),
    /// Two questions of one batch were given the same id (the id).
    DuplicateId(String),
    /// The journal could not be created, opened, read or written (unwritable path, disk
    /// full, not a journal, corrupt, or journal support not built in).
    Journal(String),
    /// Another process (or another executor or reader in this one) holds the journal.
    JournalLocked(String),
    /// The journal was made by a different agent or configuration (its fingerprint
    /// differs), and the host did not allow that.
    JournalMismatch(String),
    /// The journal was written by a newer format version than this library reads.
    JournalVersion(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "{e}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Reentrant(what) => write!(
                f,
                "{what} called from a library thread (inside an agent callback?); \
                 blocking library calls are not allowed there"
            ),
            Error::Shutdown => f.write_str("the library has been shut down"),
            Error::Forked => f.write_str(
                "the library was started in a parent process and cannot be used after fork()",
            ),
            Error::Runtime(m) => write!(f, "runtime: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Python(m) => write!(f, "python: {m}"),
            Error::DuplicateId(id) => {
                write!(
                    f,
                    "duplicate question id {id:?}: ids must be unique in a batch"
                )
            }
            Error::Journal(m) => write!(f, "journal: {m}"),
            Error::JournalLocked(m) => write!(f, "journal locked: {m}"),
            Error::JournalMismatch(m) => write!(f, "journal fingerprint mismatch: {m}"),
            Error::JournalVersion(m) => write!(f, "journal format version: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(e)
    }
}

/// Result alias for library operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The text of a panic payload (`&str` or `String`), or a placeholder: how an agent's
/// (or the library's) panic becomes an error message instead of unwinding into the host.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
