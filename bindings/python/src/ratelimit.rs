//! `RateLimiter`: a start-rate budget shared by executors, in this process or, kept in
//! Redis, across processes and machines.

use std::sync::Arc;

use parallel_agents::config::RateLimit;
use pyo3::prelude::*;

use crate::{to_py_err, value_error};

/// A rate limit shared by every executor given it (``Executor(rate_limiter=...)``).
///
/// ``RateLimiter(requests_per_minute, burst=1)`` keeps it in this process;
/// ``RateLimiter.redis(url, key, requests_per_minute, tokens_per_minute=None)`` keeps it
/// in Redis, shared by every process (on any machine) that uses the same ``key``.
#[pyclass(frozen, module = "parallel_agents._native")]
pub struct RateLimiter {
    pub(crate) inner: Arc<parallel_agents::RateLimiter>,
}

#[pymethods]
impl RateLimiter {
    #[new]
    #[pyo3(signature = (requests_per_minute, burst = 1))]
    fn new(py: Python<'_>, requests_per_minute: f64, burst: i64) -> PyResult<Self> {
        let burst = u32::try_from(burst)
            .ok()
            .filter(|b| *b >= 1)
            .ok_or_else(|| value_error(py, "burst", format!("{burst} is not in [1, 2^32)")))?;
        let limit = RateLimit {
            per_second: requests_per_minute / 60.0,
            burst,
        };
        limit
            .validate()
            .map_err(|e| value_error(py, "requests_per_minute", e))?;
        Ok(Self {
            inner: Arc::new(parallel_agents::RateLimiter::new(limit)),
        })
    }

    /// A budget kept in Redis at ``url`` (``redis://[user:password@]host[:port][/db]``)
    /// under ``key``: ``requests_per_minute`` starts in all and, if set,
    /// ``tokens_per_minute`` tokens (each attempt reserves the agent's estimate and is
    /// settled with the usage it reports). Connects now (at most 2 s): a Redis that does
    /// not answer raises ``ConnectionError``, a bad argument ``ValueError``, both with the
    /// URL shown without its password.
    /// Redis lost later: a call needing budget keeps trying for at most its timeout, then
    /// fails saying so; nothing is lost.
    #[staticmethod]
    #[pyo3(signature = (url, key, requests_per_minute, tokens_per_minute = None))]
    fn redis(
        py: Python<'_>,
        url: String,
        key: String,
        requests_per_minute: f64,
        tokens_per_minute: Option<i64>,
    ) -> PyResult<Self> {
        let tpm = tokens_per_minute
            .map(|t| {
                u64::try_from(t)
                    .ok()
                    .filter(|t| *t >= 1)
                    .ok_or_else(|| value_error(py, "tokens_per_minute", format!("{t} is below 1")))
            })
            .transpose()?;
        let limiter = py
            .detach(|| parallel_agents::RateLimiter::redis(&url, &key, requests_per_minute, tpm))
            .map_err(|e| match e {
                // Not a bad argument: the server is down or far; callers may retry.
                parallel_agents::Error::InvalidArgument(m) if m.starts_with("cannot reach") => {
                    pyo3::exceptions::PyConnectionError::new_err(m)
                }
                e => to_py_err(py, e),
            })?;
        Ok(Self {
            inner: Arc::new(limiter),
        })
    }

    /// Starts per minute.
    #[getter]
    fn requests_per_minute(&self) -> f64 {
        self.inner.limit().per_second * 60.0
    }

    fn __repr__(&self) -> String {
        // The Debug form shows a Redis URL without its password.
        format!("RateLimiter({:?})", self.inner)
    }
}
