//! The [`Agent`] trait and the agents that ship with the library.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

pub mod callback;
pub mod mock;
#[cfg(feature = "python")]
pub mod python;

pub use callback::{AsyncCallbackAgent, CallbackAgent, PendingRegistry};
pub use mock::{MockAgent, MockOptions};
#[cfg(feature = "python")]
pub use python::{PythonAgent, PythonOptions};

/// A boxed, sendable future: the object-safe form of an async trait method.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an agent could not answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentError {
    /// Human-readable reason, shown to the host as the result's error.
    pub message: String,
    /// Whether trying the same call again may succeed (network blips, 429, 5xx).
    pub retryable: bool,
}

impl AgentError {
    /// A failure that retrying will not fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure that a retry may fix.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AgentError {}

/// Something that answers questions. Implementations must be cheap to call concurrently:
/// the executor calls one agent from many tasks at once (a pool member only one at a time).
///
/// The future is dropped if the call times out or is cancelled; an agent that holds
/// resources across `.await` points must release them on drop.
pub trait Agent: Send + Sync + 'static {
    /// Answers `question`. `agent_id` is the logical slot of the call: the question index
    /// in a batch, the voter index in a consensus round, the member index in a pool.
    fn answer<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<String, AgentError>>;

    /// A short name for logs and metrics (e.g. "mock", "callback", "python").
    fn kind(&self) -> &'static str {
        "agent"
    }
}
