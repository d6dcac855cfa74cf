//! The [`Agent`] trait and the agents that ship with the library.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub mod callback;
pub mod mock;
pub mod openai;
#[cfg(feature = "python")]
pub mod python;

pub use callback::{AsyncCallbackAgent, CallbackAgent, PendingRegistry};
pub use mock::{MockAgent, MockOptions};
#[cfg(feature = "openai")]
pub use openai::OpenAiAgent;
pub use openai::OpenAiOptions;
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
    /// The earliest a retry may start, if the agent was told (e.g. HTTP `Retry-After`);
    /// the executor waits at least this long before retrying.
    pub retry_after: Option<Duration>,
}

impl AgentError {
    /// A failure that retrying will not fix.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure that a retry may fix.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// This error with a retry-after hint.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

/// Tokens an LLM call used, as the server reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    pub prompt_tokens: u64,
    /// Tokens in the completion.
    pub completion_tokens: u64,
}

/// An answer with what it cost, from [`Agent::answer_with_usage`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The answer text.
    pub text: String,
    /// Token usage, for agents that know it.
    pub usage: Option<TokenUsage>,
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

    /// Like [`answer`](Self::answer), with token usage for agents that know it (LLM
    /// clients). The executor calls this one; the default wraps `answer`.
    fn answer_with_usage<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<Answer, AgentError>> {
        Box::pin(async move {
            self.answer(question, agent_id)
                .await
                .map(|text| Answer { text, usage: None })
        })
    }

    /// A short name for logs and metrics (e.g. "mock", "callback", "python").
    fn kind(&self) -> &'static str {
        "agent"
    }

    /// What decides this agent's answers, for a journal's fingerprint: its kind and the
    /// options that change answers (model, prompts, sampling, ...), never a secret. A
    /// journal made with a different fingerprint is refused. The default is
    /// [`kind`](Self::kind).
    fn fingerprint(&self) -> String {
        self.kind().to_owned()
    }

    /// Tokens a call on `question` may use, reserved from a shared token budget (a Redis
    /// [`RateLimiter`](crate::RateLimiter) with tokens per minute) before each attempt
    /// and settled with the reported usage after. The default is a quarter of the
    /// question's bytes, rounded up; LLM clients add their prompts and completion limit.
    fn estimate_tokens(&self, question: &str) -> u64 {
        (question.len() as u64).div_ceil(4)
    }

    /// Told the `max_concurrency` of each executor that starts using this agent (twice it
    /// with hedging, which may run a duplicate beside each call). Agents
    /// that run calls on threads of their own (blocking callbacks, sync Python callables)
    /// size those threads to the largest concurrency any executor asked for, so the
    /// threads stay bounded by it and never cap it. The default does nothing.
    fn fit_concurrency(&self, max_concurrency: usize) {
        let _ = max_concurrency;
    }
}
