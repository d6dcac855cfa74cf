//! An agent that asks an OpenAI-compatible chat-completions endpoint over HTTP.
//!
//! Each call POSTs `{base_url}/chat/completions` with the model, an optional system
//! message, the user message (the template with `{question}` replaced), `temperature` and
//! `max_tokens`; the answer is `choices[0].message.content` and the token usage comes from
//! `usage`. One pooled client per agent keeps connections alive (HTTP/2 where the server
//! offers it over TLS; TLS is rustls, so there is no OpenSSL dependency).
//!
//! Failures say whether a retry may help, the way OpenAI's own clients decide: 408, 409,
//! 429 and 5xx, timeouts and connection errors are retryable and carry the server's
//! `retry-after-ms` / `Retry-After` (seconds or an HTTP date) as
//! [`AgentError::retry_after`](crate::agent::AgentError::retry_after), which the executor uses as a floor under its backoff;
//! other statuses (400, 401, 403, 404, ...) fail at once with the server's message. A
//! server may override that with `x-should-retry: true|false`. A body that is not the
//! expected JSON, or larger than 4 MiB, fails for good.
//!
//! The API key is read once, when the agent is made, from the environment variable named
//! in [`OpenAiOptions::api_key_env`]. It is sent only as the `Authorization` header (marked
//! sensitive) and is scrubbed from every answer and error message the agent returns, so it
//! cannot reach results, metrics or logs even if a server echoes it.
//!
//! The request-rate limit is the executor's ([`crate::RateLimit`]); beside it the agent
//! can keep a tokens-per-minute budget ([`OpenAiOptions::tokens_per_minute`]): each call
//! reserves an estimate (prompt bytes / 4 + `max_tokens`) before it starts and settles
//! with the usage the server reports afterwards.
//!
//! The HTTP client needs the crate feature `openai` (on by default); without it the
//! options still build and validate, but no agent can be made.

use std::time::Duration;

use crate::error::{Error, Result};

/// The text in [`OpenAiOptions::user_template`] that each question replaces.
pub(crate) const QUESTION_PLACEHOLDER: &str = "{question}";
/// Longest accepted request timeout (one hour).
pub(crate) const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest accepted `max_tokens`.
pub(crate) const MAX_MAX_TOKENS: u32 = 10_000_000;
/// Most extra headers accepted.
pub const MAX_HEADERS: usize = 64;
/// Largest response body read (4 MiB); a larger one fails the call.
#[cfg(feature = "openai")]
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Settings of an [`OpenAiAgent`]. Start from [`Default`] and change fields, then
/// [`validate`](Self::validate) (the agent's constructor validates too).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAiOptions {
    /// Base URL of the API, without the `/chat/completions` suffix; `http` or `https`.
    /// Default `https://api.openai.com/v1`.
    pub base_url: String,
    /// The model to ask. Default `gpt-4o-mini`.
    pub model: String,
    /// Name of the environment variable that holds the API key (read once, when the agent
    /// is made). Empty, or a variable that is unset or empty: no `Authorization` header
    /// (local servers). Default `OPENAI_API_KEY`.
    pub api_key_env: String,
    /// Optional system message sent before the user message.
    pub system_prompt: Option<String>,
    /// The user message; every `{question}` in it is replaced by the question. Must
    /// contain `{question}`. Default `{question}`.
    pub user_template: String,
    /// Sampling temperature, in `[0, 2]`. Default 0.
    pub temperature: f64,
    /// Upper bound on completion tokens, in `[1, 10,000,000]`. Default 256.
    pub max_tokens: u32,
    /// Extra request headers (name, value), sent with every call, e.g. for a gateway.
    pub headers: Vec<(String, String)>,
    /// Limit on one HTTP request, connecting and reading the body included; a request
    /// past it fails with a retryable error. 1 ms to 1 hour. Default 60 s.
    pub request_timeout: Duration,
    /// Tokens-per-minute budget of this agent (estimate before, usage after); `None`:
    /// no budget.
    pub tokens_per_minute: Option<u64>,
}

impl Default for OpenAiOptions {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            model: "gpt-4o-mini".into(),
            api_key_env: "OPENAI_API_KEY".into(),
            system_prompt: None,
            user_template: QUESTION_PLACEHOLDER.into(),
            temperature: 0.0,
            max_tokens: 256,
            headers: Vec::new(),
            request_timeout: Duration::from_secs(60),
            tokens_per_minute: None,
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidArgument(message.into())
}

impl OpenAiOptions {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_base_url(&self.base_url)?;
        if self.model.trim().is_empty() {
            return Err(invalid("model is empty"));
        }
        check_env_name(&self.api_key_env)?;
        check_template(&self.user_template)?;
        check_temperature(self.temperature)?;
        check_max_tokens(self.max_tokens)?;
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(format!("more than {MAX_HEADERS} extra headers")));
        }
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        check_request_timeout(self.request_timeout)?;
        if self.tokens_per_minute == Some(0) {
            return Err(invalid("tokens_per_minute must be at least 1 (or None)"));
        }
        Ok(())
    }

    /// The user message for `question`.
    pub fn render(&self, question: &str) -> String {
        self.user_template.replace(QUESTION_PLACEHOLDER, question)
    }
}

/// `http://` or `https://` followed by a host; no whitespace or control characters.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_base_url(url: &str) -> Result<()> {
    let bad = |why: &str| invalid(format!("base_url {url:?} is not usable: {why}"));
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace or control characters"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') {
        return Err(bad("it has no host"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("it must not have a query or fragment"));
    }
    #[cfg(feature = "openai")]
    reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    Ok(())
}

/// An environment variable name: empty (no key), or without `=` and NUL.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_env_name(name: &str) -> Result<()> {
    if name.contains(['=', '\0']) {
        return Err(invalid(format!(
            "api_key_env {name:?} is not a variable name (contains '=' or NUL)"
        )));
    }
    Ok(())
}

/// A user template must contain `{question}`.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_template(template: &str) -> Result<()> {
    if !template.contains(QUESTION_PLACEHOLDER) {
        return Err(invalid(format!(
            "user_template {template:?} does not contain {QUESTION_PLACEHOLDER}"
        )));
    }
    Ok(())
}

/// Temperature in `[0, 2]` (NaN rejected).
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_temperature(t: f64) -> Result<()> {
    if !(0.0..=2.0).contains(&t) {
        return Err(invalid(format!("temperature {t} is not in [0, 2]")));
    }
    Ok(())
}

/// `max_tokens` in `[1, 10,000,000]`.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_max_tokens(n: u32) -> Result<()> {
    if n == 0 || n > MAX_MAX_TOKENS {
        return Err(invalid(format!(
            "max_tokens {n} is not in [1, {MAX_MAX_TOKENS}]"
        )));
    }
    Ok(())
}

/// A request timeout from 1 ms to 1 hour.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_request_timeout(d: Duration) -> Result<()> {
    if d < Duration::from_millis(1) || d > MAX_REQUEST_TIMEOUT {
        return Err(invalid(format!(
            "request_timeout {d:?} is not in [1 ms, 1 h]"
        )));
    }
    Ok(())
}

/// A header name of token characters and a value of visible ASCII, spaces and tabs.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_header(name: &str, value: &str) -> Result<()> {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !SEPARATORS.contains(b as char))
    {
        return Err(invalid(format!(
            "header name {name:?} is not a valid token"
        )));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        // The value may be a secret: do not repeat it.
        return Err(invalid(format!(
            "the value of header {name:?} has characters other than visible ASCII, space and tab"
        )));
    }
    Ok(())
}

#[cfg(feature = "openai")]
pub use client::OpenAiAgent;

#[cfg(feature = "openai")]
#[doc(hidden)] // public only so the fuzz targets in fuzz/ reach its parsers
pub mod client {
    use std::sync::Mutex;
    use std::time::{Duration, Instant, SystemTime};

    use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
    use reqwest::StatusCode;
    use serde::{Deserialize, Serialize};

    use super::OpenAiOptions;
    use crate::agent::{Agent, AgentError, Answer, BoxFuture, TokenUsage};
    use crate::error::{Error, Result};

    /// An OpenAI-compatible chat-completions agent; see the [module docs](super).
    /// Cheap to call from many tasks at once: they share one connection pool.
    pub struct OpenAiAgent {
        options: OpenAiOptions,
        endpoint: String,
        /// `endpoint`, parsed once (parsing per call costs more than the rest of a
        /// request's preparation).
        url: reqwest::Url,
        client: reqwest::Client,
        /// The API key, only to scrub it from what the agent returns.
        secret: Option<String>,
        tokens: Option<TokenBucket>,
    }

    impl std::fmt::Debug for OpenAiAgent {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("OpenAiAgent")
                .field("endpoint", &self.endpoint)
                .field("model", &self.options.model)
                .field("api_key", &self.secret.as_ref().map(|_| "[redacted]"))
                .finish_non_exhaustive()
        }
    }

    impl OpenAiAgent {
        /// An agent with `options`, which must validate. Reads the API key from the
        /// environment now. Needs no runtime; calls must run inside a Tokio runtime (the
        /// executor's always do).
        pub fn new(options: OpenAiOptions) -> Result<Self> {
            options.validate()?;
            let secret = match options.api_key_env.as_str() {
                "" => None,
                var => std::env::var(var).ok().filter(|k| !k.trim().is_empty()),
            };
            let mut headers = HeaderMap::new();
            for (name, value) in &options.headers {
                let n = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| super::invalid(format!("header name {name:?} is not valid")))?;
                let mut v = HeaderValue::from_str(value).map_err(|_| {
                    super::invalid(format!("the value of header {name:?} is not valid"))
                })?;
                v.set_sensitive(true);
                headers.append(n, v);
            }
            if let Some(key) = &secret {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", key.trim())).map_err(|_| {
                        super::invalid(format!(
                            "the API key in ${} has characters a header cannot carry",
                            options.api_key_env
                        ))
                    })?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            let base = options.base_url.trim_end_matches('/');
            let endpoint = format!("{base}/chat/completions");
            let url = reqwest::Url::parse(&endpoint)
                .map_err(|e| super::invalid(format!("base_url: {e}")))?;
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .user_agent(concat!("parallel-agents/", env!("CARGO_PKG_VERSION")))
                .default_headers(headers)
                .timeout(options.request_timeout)
                .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90));
            // A proxy from the environment must not sit between us and this machine.
            if is_loopback(&url) {
                builder = builder.no_proxy();
            }
            let client = builder
                .build()
                .map_err(|e| Error::Runtime(format!("cannot build the HTTP client: {e}")))?;
            Ok(Self {
                tokens: options.tokens_per_minute.map(TokenBucket::per_minute),
                options,
                endpoint,
                url,
                client,
                secret,
            })
        }

        /// Its settings.
        pub fn options(&self) -> &OpenAiOptions {
            &self.options
        }

        /// The URL every call POSTs to.
        pub fn endpoint(&self) -> &str {
            &self.endpoint
        }

        /// Whether an API key was found in the environment.
        pub fn has_api_key(&self) -> bool {
            self.secret.is_some()
        }

        /// One call: token budget, request, settle, scrub.
        async fn call(&self, question: &str) -> std::result::Result<Answer, AgentError> {
            let user = self.options.render(question);
            let estimate = self.estimate(&user);
            if let Some(b) = &self.tokens {
                b.take(estimate).await;
            }
            let outcome = self.post(&user).await;
            if let Some(b) = &self.tokens {
                match &outcome {
                    Ok(a) => b.settle(
                        estimate,
                        a.usage.map_or(estimate, |u| {
                            u.prompt_tokens.saturating_add(u.completion_tokens)
                        }),
                    ),
                    // The server turned the request away: it cost nothing.
                    Err(Failure::Status(_)) => b.settle(estimate, 0),
                    // Unknown: keep the estimate.
                    Err(_) => {}
                }
            }
            match outcome {
                Ok(mut a) => {
                    a.text = self.scrub(a.text);
                    Ok(a)
                }
                Err(f) => {
                    let mut e = f.into_error();
                    e.message = self.scrub(e.message);
                    Err(e)
                }
            }
        }

        /// Tokens reserved before a call: prompt bytes / 4, plus `max_tokens`.
        fn estimate(&self, user: &str) -> u64 {
            let system = self.options.system_prompt.as_deref().map_or(0, str::len);
            ((system + user.len()) as u64).div_ceil(4) + u64::from(self.options.max_tokens)
        }

        /// Replaces every occurrence of the API key with `[redacted]`.
        fn scrub(&self, text: String) -> String {
            match &self.secret {
                Some(k) if text.contains(k.trim()) => text.replace(k.trim(), "[redacted]"),
                _ => text,
            }
        }

        async fn post(&self, user: &str) -> std::result::Result<Answer, Failure> {
            let mut messages = Vec::with_capacity(2);
            if let Some(s) = &self.options.system_prompt {
                messages.push(Message {
                    role: "system",
                    content: s,
                });
            }
            messages.push(Message {
                role: "user",
                content: user,
            });
            let body = serde_json::to_vec(&ChatRequest {
                model: &self.options.model,
                messages,
                temperature: self.options.temperature,
                max_tokens: self.options.max_tokens,
            })
            .map_err(|e| Failure::Fatal(format!("cannot encode the request: {e}")))?;
            let resp = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| self.transport(e))?;
            let status = resp.status();
            let hint = retry_after(resp.headers(), SystemTime::now());
            let should_retry = resp
                .headers()
                .get("x-should-retry")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| match v.trim() {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                });
            let body = self.read_body(resp).await?;
            if status.is_success() {
                return parse_completion(&body).map_err(Failure::Fatal);
            }
            let retryable = should_retry.unwrap_or_else(|| retryable_status(status));
            let message = format!(
                "HTTP {} from {}: {}",
                status_text(status),
                self.endpoint,
                error_message(&body)
            );
            Err(Failure::Status(HttpError {
                message,
                retryable,
                retry_after: hint,
            }))
        }

        /// Reads the body, up to [`MAX_RESPONSE_BYTES`](super::MAX_RESPONSE_BYTES).
        async fn read_body(
            &self,
            mut resp: reqwest::Response,
        ) -> std::result::Result<Vec<u8>, Failure> {
            let max = super::MAX_RESPONSE_BYTES;
            let too_big = |n: String| {
                Failure::Fatal(format!(
                    "response body from {} is too large ({n} bytes; the limit is {max})",
                    self.endpoint
                ))
            };
            if let Some(n) = resp.content_length() {
                if n > max as u64 {
                    return Err(too_big(n.to_string()));
                }
            }
            let mut body = Vec::with_capacity(resp.content_length().unwrap_or(1024) as usize);
            while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e))? {
                if body.len() + chunk.len() > max {
                    return Err(too_big(format!("more than {max}")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }

        /// A failure below HTTP: timeouts and connection errors are worth a retry.
        fn transport(&self, e: reqwest::Error) -> Failure {
            let what = if e.is_timeout() {
                format!("timed out after {:?}", self.options.request_timeout)
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else if e.is_body() || e.is_decode() {
                "connection failed while reading the response".to_owned()
            } else {
                "request failed".to_owned()
            };
            // The error's own chain names the cause (refused, reset, DNS, TLS ...).
            let mut cause = String::new();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                cause = s.to_string();
                src = s.source();
            }
            let detail = if cause.is_empty() {
                String::new()
            } else {
                format!(" ({cause})")
            };
            // A builder error (bad URL) will not get better; everything else may.
            Failure::Transport(AgentError {
                message: format!("{what}: POST {}{detail}", self.endpoint),
                retryable: !e.is_builder(),
                retry_after: None,
            })
        }
    }

    impl Agent for OpenAiAgent {
        fn answer<'a>(
            &'a self,
            question: &'a str,
            _agent_id: usize,
        ) -> BoxFuture<'a, std::result::Result<String, AgentError>> {
            Box::pin(async move { self.call(question).await.map(|a| a.text) })
        }

        fn answer_with_usage<'a>(
            &'a self,
            question: &'a str,
            _agent_id: usize,
        ) -> BoxFuture<'a, std::result::Result<Answer, AgentError>> {
            Box::pin(self.call(question))
        }

        fn kind(&self) -> &'static str {
            "openai"
        }
    }

    /// How a request failed, before it becomes an [`AgentError`].
    enum Failure {
        /// The server answered with an error status.
        Status(HttpError),
        /// Connecting, sending or reading failed.
        Transport(AgentError),
        /// A response that cannot be used (malformed, too large); retrying will not help.
        Fatal(String),
    }

    struct HttpError {
        message: String,
        retryable: bool,
        retry_after: Option<Duration>,
    }

    impl Failure {
        fn into_error(self) -> AgentError {
            match self {
                Failure::Status(h) => AgentError {
                    message: h.message,
                    retryable: h.retryable,
                    retry_after: h.retry_after,
                },
                Failure::Transport(e) => e,
                Failure::Fatal(m) => AgentError::fatal(m),
            }
        }
    }

    #[derive(Serialize)]
    struct Message<'a> {
        role: &'a str,
        content: &'a str,
    }

    #[derive(Serialize)]
    struct ChatRequest<'a> {
        model: &'a str,
        messages: Vec<Message<'a>>,
        temperature: f64,
        max_tokens: u32,
    }

    #[derive(Deserialize)]
    struct ChatResponse {
        choices: Vec<Choice>,
        #[serde(default)]
        usage: Option<Usage>,
    }

    #[derive(Deserialize)]
    struct Choice {
        message: ChoiceMessage,
    }

    #[derive(Deserialize)]
    struct ChoiceMessage {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        refusal: Option<String>,
    }

    #[derive(Deserialize)]
    struct Usage {
        #[serde(default)]
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: u64,
    }

    /// `choices[0].message.content` and the usage of a 2xx body.
    pub fn parse_completion(body: &[u8]) -> std::result::Result<Answer, String> {
        let r: ChatResponse = serde_json::from_slice(body).map_err(|e| {
            format!(
                "malformed response body ({e}); it starts with {:?}",
                preview(body)
            )
        })?;
        let Some(first) = r.choices.into_iter().next() else {
            return Err("the response has no choices".into());
        };
        let text = match (first.message.content, first.message.refusal) {
            (Some(c), _) => c,
            (None, Some(r)) => return Err(format!("the model refused: {r}")),
            (None, None) => return Err("the response's choices[0].message has no content".into()),
        };
        Ok(Answer {
            text,
            usage: r.usage.map(|u| TokenUsage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
            }),
        })
    }

    /// The server's message in an error body (`{"error": {"message": ...}}` or
    /// `{"error": "..."}`, else the start of the body).
    pub fn error_message(body: &[u8]) -> String {
        let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let from_json = v.as_ref().and_then(|v| {
            let e = v.get("error").unwrap_or(v);
            e.get("message")
                .and_then(|m| m.as_str())
                .or_else(|| e.as_str())
                .map(str::to_owned)
        });
        match from_json {
            Some(m) => m,
            None if body.is_empty() => "(empty body)".into(),
            None => preview(body),
        }
    }

    /// The first 200 characters of a body, for messages.
    fn preview(body: &[u8]) -> String {
        let text = String::from_utf8_lossy(&body[..body.len().min(800)]);
        let mut s: String = text.chars().take(200).collect();
        if text.chars().count() > 200 || body.len() > 800 {
            s.push('…');
        }
        s
    }

    fn status_text(s: StatusCode) -> String {
        match s.canonical_reason() {
            Some(r) => format!("{} {r}", s.as_u16()),
            None => s.as_u16().to_string(),
        }
    }

    /// 408, 409, 429 and 5xx may succeed later (as OpenAI's own clients decide).
    pub fn retryable_status(s: StatusCode) -> bool {
        matches!(s.as_u16(), 408 | 409 | 429) || s.is_server_error()
    }

    /// The wait a server asked for: `retry-after-ms` (milliseconds), else `Retry-After`
    /// (seconds, or an HTTP date relative to `now`).
    pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
        let text = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);
        let secs = |s: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(crate::config::saturating_secs)
        };
        if let Some(ms) = text("retry-after-ms").and_then(secs) {
            return Some(ms / 1000);
        }
        let v = text("retry-after")?;
        secs(v).or_else(|| {
            let at = httpdate::parse_http_date(v).ok()?;
            Some(at.duration_since(now).unwrap_or(Duration::ZERO))
        })
    }

    fn is_loopback(url: &reqwest::Url) -> bool {
        url.host_str().is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        })
    }

    /// A tokens-per-minute budget: a bucket of one minute's tokens that refills
    /// continuously. A caller reserves its estimate at once (the balance may go negative)
    /// and waits until the balance it left would have refilled to zero, so callers are
    /// served in order; afterwards it settles the difference to the real usage.
    pub(super) struct TokenBucket {
        per_sec: f64,
        capacity: f64,
        state: Mutex<(f64, Instant)>,
    }

    impl TokenBucket {
        pub(super) fn per_minute(tpm: u64) -> Self {
            let capacity = tpm as f64;
            Self {
                per_sec: capacity / 60.0,
                capacity,
                state: Mutex::new((capacity, Instant::now())),
            }
        }

        fn refill(&self, st: &mut (f64, Instant), now: Instant) {
            let dt = now.saturating_duration_since(st.1).as_secs_f64();
            st.0 = (st.0 + dt * self.per_sec).min(self.capacity);
            st.1 = now;
        }

        /// Reserves `cost` tokens (at most a full bucket) and waits until they are there.
        pub(super) async fn take(&self, cost: u64) {
            let wait = {
                let now = Instant::now();
                let mut st = crate::sync::lock(&self.state);
                self.refill(&mut st, now);
                st.0 -= (cost as f64).min(self.capacity);
                if st.0 >= 0.0 {
                    Duration::ZERO
                } else {
                    // Saturates: a debt from absurd reported usage must not panic.
                    crate::config::saturating_secs(-st.0 / self.per_sec)
                }
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }

        /// Corrects a reservation of `estimated` tokens to the `actual` use.
        pub(super) fn settle(&self, estimated: u64, actual: u64) {
            let mut st = crate::sync::lock(&self.state);
            self.refill(&mut st, Instant::now());
            let estimated = (estimated as f64).min(self.capacity);
            st.0 = (st.0 + estimated - actual as f64).min(self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_validate() {
        assert!(OpenAiOptions::default().validate().is_ok());
        let bad = |f: fn(&mut OpenAiOptions)| {
            let mut o = OpenAiOptions::default();
            f(&mut o);
            o.validate().unwrap_err().to_string()
        };
        assert!(bad(|o| o.base_url = "ftp://x".into()).contains("http://"));
        assert!(bad(|o| o.base_url = "http://".into()).contains("no host"));
        assert!(bad(|o| o.base_url = "http://a b".into()).contains("whitespace"));
        assert!(bad(|o| o.user_template = "Q:".into()).contains("{question}"));
        assert!(bad(|o| o.temperature = f64::NAN).contains("temperature"));
        assert!(bad(|o| o.max_tokens = 0).contains("max_tokens"));
        assert!(bad(|o| o.headers = vec![("a b".into(), "x".into())]).contains("header"));
        assert!(bad(|o| o.headers = vec![("x".into(), "sec\nret".into())]).contains("header"));
        assert!(!bad(|o| o.headers = vec![("x".into(), "sec\nret".into())]).contains("sec"));
        assert!(bad(|o| o.request_timeout = Duration::ZERO).contains("request_timeout"));
        assert!(bad(|o| o.api_key_env = "A=B".into()).contains("api_key_env"));
        let o = OpenAiOptions {
            user_template: "Q: {question} ({question})".into(),
            ..Default::default()
        };
        assert_eq!(o.render("x"), "Q: x (x)");
    }

    #[cfg(feature = "openai")]
    mod http {
        use std::time::{Duration, SystemTime};

        use reqwest::header::{HeaderMap, HeaderValue};
        use reqwest::StatusCode;

        use super::super::client::*;
        use super::super::*;

        #[test]
        fn retry_after_forms() {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let mut h = HeaderMap::new();
            assert_eq!(retry_after(&h, now), None);
            h.insert("retry-after", HeaderValue::from_static("2"));
            assert_eq!(retry_after(&h, now), Some(Duration::from_secs(2)));
            h.insert("retry-after", HeaderValue::from_static("0.5"));
            assert_eq!(retry_after(&h, now), Some(Duration::from_millis(500)));
            let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
            h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
            assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
            let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
            h.insert("retry-after", HeaderValue::from_str(&past).unwrap());
            assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
            h.insert("retry-after-ms", HeaderValue::from_static("250"));
            assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
            h.insert("retry-after-ms", HeaderValue::from_static("soon"));
            h.insert("retry-after", HeaderValue::from_static("never"));
            assert_eq!(retry_after(&h, now), None);
        }

        #[test]
        fn statuses() {
            for s in [408, 409, 429, 500, 502, 503, 504] {
                assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
            }
            for s in [400, 401, 403, 404, 422] {
                assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
            }
        }

        #[test]
        fn bodies() {
            let ok = br#"{"choices":[{"message":{"role":"assistant","content":"Hi"}}],
                         "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
            let a = parse_completion(ok).unwrap();
            assert_eq!(a.text, "Hi");
            assert_eq!(a.usage.unwrap().prompt_tokens, 3);
            assert_eq!(a.usage.unwrap().completion_tokens, 1);
            let no_usage = br#"{"choices":[{"message":{"content":"Hi"}}]}"#;
            assert_eq!(parse_completion(no_usage).unwrap().usage, None);
            assert!(parse_completion(b"{not json")
                .unwrap_err()
                .contains("malformed"));
            assert!(parse_completion(br#"{"choices":[]}"#)
                .unwrap_err()
                .contains("no choices"));
            let refused = br#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#;
            assert!(parse_completion(refused).unwrap_err().contains("refused"));
            assert_eq!(
                error_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
                "bad key"
            );
            assert_eq!(error_message(br#"{"error":"plain"}"#), "plain");
            assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
            assert_eq!(error_message(b""), "(empty body)");
        }

        #[test]
        fn agent_builds_without_a_runtime_and_hides_the_key() {
            std::env::set_var("PAGENT_UNIT_TEST_KEY", "sk-unit-test-secret");
            let a = OpenAiAgent::new(OpenAiOptions {
                base_url: "http://127.0.0.1:9/v1/".into(),
                api_key_env: "PAGENT_UNIT_TEST_KEY".into(),
                ..Default::default()
            })
            .unwrap();
            assert!(a.has_api_key());
            assert_eq!(a.endpoint(), "http://127.0.0.1:9/v1/chat/completions");
            assert!(!format!("{a:?}").contains("sk-unit"));
            let bad = OpenAiAgent::new(OpenAiOptions {
                user_template: "no placeholder".into(),
                ..Default::default()
            });
            assert!(matches!(bad, Err(crate::Error::InvalidArgument(_))));
        }

        #[test]
        fn token_bucket_waits_for_its_budget() {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            rt.block_on(async {
                // 600 per minute = 10 per second, a full bucket of 600.
                let b = TokenBucket::per_minute(600);
                let t = std::time::Instant::now();
                b.take(600).await; // the whole bucket, at once
                assert!(t.elapsed() < Duration::from_millis(100));
                b.settle(600, 595); // 5 back
                b.take(10).await; // 5 short: ~0.5 s
                let e = t.elapsed();
                assert!(e >= Duration::from_millis(450), "{e:?}");
                assert!(e < Duration::from_millis(900), "{e:?}");
            });
        }
    }
}
