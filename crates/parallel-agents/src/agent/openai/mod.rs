//! An agent that asks an OpenAI-compatible chat-completions endpoint over HTTP.
//!
//! Each call POSTs `{base_url}/chat/completions` with the model, an optional system
//! message, the user message (the template with `{question}` replaced) and only the
//! request fields the host set (`temperature`, `max_tokens`, `max_completion_tokens`, and
//! any others as [`OpenAiOptions::extra_body`]); the answer is
//! `choices[0].message.content` and the token usage comes from `usage`. One pooled client
//! per agent keeps connections alive (HTTP/2 where the server offers it over TLS; TLS is
//! rustls, so there is no OpenSSL dependency).
//!
//! Failures say whether a retry may help, the way OpenAI's own clients decide: 408, 409,
//! 429 and 5xx, timeouts and connection errors are retryable and carry the server's
//! `retry-after-ms` / `Retry-After` / `llm_provider-retry-after` hint as
//! [`AgentError::retry_after`](crate::agent::AgentError::retry_after), which the executor
//! uses as a floor under its backoff (a hint past the longest backoff fails the call);
//! other statuses (400, 401, 403, 404, ...) fail at once with the server's message. A
//! server may override that with `x-should-retry: true|false`. Redirects are not
//! followed: a 3xx fails the call and names its `Location`. A body that is not the
//! expected JSON, or larger than 4 MiB, fails for good. A request that fails after it was
//! sent but before any byte of a reply came back (typically on a pooled connection the
//! server was closing) is sent once more on a fresh connection, without counting as a
//! retry.
//!
//! Secrets — the API key, read once from the environment variable named in
//! [`OpenAiOptions::api_key_env`], and the values of extra headers — are sent only as
//! headers (marked sensitive) and never come back out: error text is scrubbed of them
//! ([`secrets`]), and an answer that contains one fails the call instead of being
//! returned. Credentials in the base URL are refused.
//!
//! Numbers from the server are bounded before use: token usage is clamped
//! ([`reply::MAX_USAGE_TOKENS`]), retry hints are capped by the executor's backoff cap.
//!
//! The request-rate limit is the executor's ([`crate::RateLimit`]); beside it the agent
//! can keep a tokens-per-minute budget ([`OpenAiOptions::tokens_per_minute`]): each call
//! reserves an estimate (prompt bytes / 4 + the completion limit) before it starts and
//! settles with the usage the server reports afterwards.
//!
//! The HTTP client needs the crate feature `openai` (on by default); without it the
//! options still build and validate, but no agent can be made.

mod options;
pub mod reply;
pub mod secrets;

#[cfg(feature = "openai")]
#[doc(hidden)] // public only so the fuzz targets in fuzz/ reach its parsers
pub mod client;
#[cfg(feature = "openai")]
mod token_bucket;

pub use options::*;

#[cfg(feature = "openai")]
pub use client::OpenAiAgent;

/// Largest response body read (4 MiB); a larger one fails the call.
#[cfg(feature = "openai")]
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 << 20;
