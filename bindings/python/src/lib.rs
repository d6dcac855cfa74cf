//! `parallel_agents._native`: the executor of the `parallel-agents` core as a Python
//! extension module. The pure-Python package around it (`python/parallel_agents/`) gives
//! the public API: `Executor` with `run` / `arun` / `stream` / `astream` / `consensus`,
//! agents, and the DSPy drop-in. This module keeps to what needs Rust: configuration
//! checks, agents, batches that are waited on with the GIL released, and the types that
//! carry results back.
//!
//! Every wait here releases the GIL and takes a timeout, so the Python side waits in short
//! slices and stays interruptible (Ctrl-C, asyncio cancellation).

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

mod agents;
mod executor;
mod ratelimit;
mod types;

create_exception!(
    _native,
    Error,
    PyRuntimeError,
    "A library call failed. `status` names why (`shutdown`, `forked`, `reentrant`, \
     `runtime`, `not_found`); `message` says what happened."
);

/// A core error as a Python exception carrying `status` and `message`: a bad value is a
/// `ValueError` (naming the argument), anything else a `parallel_agents.Error`.
pub(crate) fn to_py_err(py: Python<'_>, e: parallel_agents::Error) -> PyErr {
    use parallel_agents::Error as E;
    let (status, message, value_error) = match &e {
        E::Config(c) => (
            "invalid_argument",
            format!("{}: {}", executor::python_name(c.field), c.message),
            true,
        ),
        E::InvalidArgument(m) => ("invalid_argument", m.clone(), true),
        E::Reentrant(_) => ("reentrant", e.to_string(), false),
        E::Shutdown => ("shutdown", e.to_string(), false),
        E::Forked => ("forked", e.to_string(), false),
        E::Runtime(_) => ("runtime", e.to_string(), false),
        E::NotFound(_) => ("not_found", e.to_string(), false),
        E::Python(_) => ("python", e.to_string(), false),
        E::DuplicateId(_) => ("duplicate_id", e.to_string(), true),
        E::Journal(_) => ("journal", e.to_string(), false),
        E::JournalLocked(_) => ("journal_locked", e.to_string(), false),
        E::JournalMismatch(_) => ("journal_mismatch", e.to_string(), false),
        E::JournalVersion(_) => ("journal_version", e.to_string(), false),
    };
    let err = if value_error {
        PyValueError::new_err(message.clone())
    } else {
        Error::new_err(message.clone())
    };
    let value = err.value(py);
    // Plain attribute sets on a fresh exception instance; they cannot fail in practice,
    // and the exception is still right without them.
    let _ = value.setattr("status", status);
    let _ = value.setattr("message", message);
    err
}

/// A `ValueError` for argument `name`, with `status` and `message` like every error here.
pub(crate) fn value_error(py: Python<'_>, name: &str, what: impl std::fmt::Display) -> PyErr {
    to_py_err(
        py,
        parallel_agents::Error::InvalidArgument(format!("{name}: {what}")),
    )
}

/// Stops the library's runtime: running batches get `timeout` seconds to finish, then
/// what still runs is cancelled. Every later call fails with status `shutdown`. Optional:
/// the runtime's threads end with the process anyway.
#[pyfunction]
#[pyo3(signature = (timeout = 1.0))]
fn shutdown(py: Python<'_>, timeout: f64) -> PyResult<()> {
    let d = executor::seconds(py, "timeout", timeout)?;
    py.detach(|| parallel_agents::runtime::shutdown(d))
        .map_err(|e| to_py_err(py, e))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_class::<types::Result>()?;
    m.add_class::<types::Metrics>()?;
    m.add_class::<types::Consensus>()?;
    m.add_class::<agents::MockAgent>()?;
    m.add_class::<agents::OpenAIAgent>()?;
    m.add_class::<agents::CallableAgent>()?;
    m.add_class::<ratelimit::RateLimiter>()?;
    m.add_class::<executor::Config>()?;
    m.add_class::<executor::Executor>()?;
    m.add_class::<executor::Batch>()?;
    m.add_class::<executor::ConsensusTask>()?;
    m.add_class::<executor::RunTask>()?;
    Ok(())
}
