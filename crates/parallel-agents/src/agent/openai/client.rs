//! [`OpenAiAgent`]: one call is token budget → request (resent once on a stale
//! connection) → reply → settle → keep secrets out. See the [module docs](super).

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use super::options::invalid;
use super::reply::{self, error_message, parse_completion};
use super::secrets::{cut, Secrets};
use super::token_bucket::TokenBucket;
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
    /// The API key and header values, to keep them out of what the agent returns.
    secrets: Secrets,
    has_key: bool,
    /// Size of `extra_body` as JSON: tools and the like count as prompt.
    extra_bytes: usize,
    tokens: Option<TokenBucket>,
}

impl std::fmt::Debug for OpenAiAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiAgent")
            .field("endpoint", &self.endpoint)
            .field("model", &self.options.model)
            .field("api_key", &self.has_key.then_some("[redacted]"))
            .finish_non_exhaustive()
    }
}

impl OpenAiAgent {
    /// An agent with `options`, which must validate. Reads the API key from the
    /// environment now. Needs no runtime; calls must run inside a Tokio runtime (the
    /// executor's always do).
    pub fn new(options: OpenAiOptions) -> Result<Self> {
        options.validate()?;
        let key = match options.api_key_env.as_str() {
            "" => None,
            var => std::env::var(var)
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty()),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header name {name:?} is not valid")))?;
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of header {name:?} is not valid")))?;
            v.set_sensitive(true);
            headers.append(n, v);
        }
        if let Some(key) = &key {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                invalid(format!(
                    "the API key in ${} has characters a header cannot carry",
                    options.api_key_env
                ))
            })?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let secrets = Secrets::new(
            key.iter()
                .map(String::as_str)
                .chain(options.headers.iter().map(|(_, v)| v.as_str())),
        );
        let base = options.base_url.trim_end_matches('/');
        let endpoint = format!("{base}/chat/completions");
        let url = reqwest::Url::parse(&endpoint).map_err(|e| invalid(format!("base_url: {e}")))?;
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("parallel-agents/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            // A redirect would carry the prompt and the headers to another place.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(options.pool_idle_timeout);
        if options.pool_idle_timeout.is_zero() {
            builder = builder.pool_max_idle_per_host(0);
        }
        // A proxy from the environment must not sit between us and this machine.
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| Error::Runtime(format!("cannot build the HTTP client: {e}")))?;
        let extra_bytes = options
            .extra_body
            .as_ref()
            .map_or(0, |m| serde_json::to_vec(m).map_or(0, |v| v.len()));
        Ok(Self {
            tokens: options.tokens_per_minute.map(TokenBucket::per_minute),
            options,
            endpoint,
            url,
            client,
            secrets,
            has_key: key.is_some(),
            extra_bytes,
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
        self.has_key
    }

    /// One call: token budget, request, settle, keep secrets out.
    async fn call(&self, question: &str) -> std::result::Result<Answer, AgentError> {
        let user = self.options.render(question);
        let estimate = self.estimate(&user);
        if let Some(b) = &self.tokens {
            b.take(estimate).await;
        }
        let mut outcome = self.post(&user).await;
        if let Ok(a) = &mut outcome {
            a.usage = a.usage.map(|u| self.plausible(u, &user));
        }
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
            Ok(a) if self.secrets.in_answer(&a.text) => Err(AgentError::fatal(format!(
                "the answer from {} contains a secret this agent sends (the API key or a \
                 header value); it is withheld",
                self.endpoint
            ))),
            Ok(a) => Ok(a),
            Err(f) => {
                let mut e = f.into_error();
                e.message = self.secrets.scrub(&e.message);
                Err(e)
            }
        }
    }

    /// `usage` within what this request could have used: no more prompt tokens than its
    /// bytes (no tokenizer makes a token of less than a byte) plus room for the chat
    /// template, no more completion tokens than a limit the host set. A server that
    /// reports more cannot exhaust the token budget or inflate the metrics.
    fn plausible(&self, u: TokenUsage, user: &str) -> TokenUsage {
        let o = &self.options;
        let prompt_bytes =
            o.system_prompt.as_deref().map_or(0, str::len) + user.len() + self.extra_bytes;
        let completion_max = match (o.max_completion_tokens, o.max_tokens) {
            (None, None) => u64::MAX,
            _ => u64::from(o.completion_limit()),
        };
        TokenUsage {
            prompt_tokens: u
                .prompt_tokens
                .min(prompt_bytes as u64 + PROMPT_OVERHEAD_TOKENS),
            completion_tokens: u.completion_tokens.min(completion_max),
        }
    }

    /// Tokens reserved before a call: prompt bytes / 4, plus the completion limit.
    fn estimate(&self, user: &str) -> u64 {
        let system = self.options.system_prompt.as_deref().map_or(0, str::len);
        ((system + user.len()) as u64).div_ceil(4) + u64::from(self.options.completion_limit())
    }

    fn body(&self, user: &str) -> std::result::Result<Bytes, Failure> {
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
        static NONE: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        let o = &self.options;
        serde_json::to_vec(&ChatRequest {
            model: &o.model,
            messages,
            temperature: o.temperature,
            max_tokens: o.max_tokens,
            max_completion_tokens: o.max_completion_tokens,
            extra: o
                .extra_body
                .as_ref()
                .unwrap_or_else(|| NONE.get_or_init(Map::new)),
        })
        .map(Bytes::from)
        .map_err(|e| Failure::Fatal(format!("cannot encode the request: {e}")))
    }

    async fn post(&self, user: &str) -> std::result::Result<Answer, Failure> {
        let body = self.body(user)?;
        let send = || {
            self.client
                .post(self.url.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
        };
        let resp = match send().await {
            Ok(r) => r,
            // Once, on a fresh connection: the server closed the one we sent on.
            Err(e) if failed_before_reply(&e) => send().await.map_err(|e| self.transport(e))?,
            Err(e) => return Err(self.transport(e)),
        };
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
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(LOCATION)
                .map(|v| reply::shown(v.as_bytes(), &self.secrets));
            return Err(Failure::Fatal(format!(
                "HTTP {} from {}: redirects are not followed (Location: {}); set base_url \
                 to where the API really is",
                status_text(status),
                self.endpoint,
                location.as_deref().unwrap_or("none")
            )));
        }
        let body = self.read_body(resp).await?;
        if status.is_success() {
            return parse_completion(&body, &self.secrets).map_err(Failure::Fatal);
        }
        let retryable = should_retry.unwrap_or_else(|| retryable_status(status));
        let message = format!(
            "HTTP {} from {}: {}",
            status_text(status),
            self.endpoint,
            error_message(&body, &self.secrets)
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
            format!(" ({})", cut(&cause, reply::SHOWN_CHARS))
        };
        // A builder error (bad URL) will not get better; everything else may.
        Failure::Transport(AgentError {
            message: format!("{what}: POST {}{detail}", self.endpoint),
            retryable: !e.is_builder(),
            retry_after: None,
        })
    }
}

/// Tokens a chat template may add to a prompt (role markers, a default system prompt).
const PROMPT_OVERHEAD_TOKENS: u64 = 1024;

/// Whether a request failed after it was sent but before any byte of a reply: the
/// connection was closed or reset under it (hyper's "incomplete message", or a reset,
/// abort or broken pipe), not a timeout and not a failed connect.
fn failed_before_reply(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() || !e.is_request() {
        return false;
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        if s.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) {
                return true;
            }
        }
        src = s.source();
    }
    false
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

    fn estimate_tokens(&self, question: &str) -> u64 {
        self.estimate(&self.options.render(question))
    }

    fn fingerprint(&self) -> String {
        // Header names, never their values (secrets); no API key.
        let o = &self.options;
        let headers: Vec<&str> = o.headers.iter().map(|(k, _)| k.as_str()).collect();
        serde_json::json!({
            "kind": "openai",
            "base_url": o.base_url,
            "model": o.model,
            "system_prompt": o.system_prompt,
            "user_template": o.user_template,
            "temperature": o.temperature,
            "max_tokens": o.max_tokens,
            "max_completion_tokens": o.max_completion_tokens,
            "extra_body": o.extra_body,
            "header_names": headers,
        })
        .to_string()
    }
}

/// How a request failed, before it becomes an [`AgentError`].
enum Failure {
    /// The server answered with an error status.
    Status(HttpError),
    /// Connecting, sending or reading failed.
    Transport(AgentError),
    /// A response that cannot be used (malformed, too large, a redirect); retrying will
    /// not help.
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

/// The request body: fields the host did not set are left out.
#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    /// Validated not to repeat a field above.
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
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
/// (seconds, or an HTTP date relative to `now`), else LiteLLM's forwarded
/// `llm_provider-retry-after` (the same forms). Saturates at the 30-day limit; the
/// executor caps it further.
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
    let seconds_or_date = |v: &str| {
        secs(v).or_else(|| {
            let at = httpdate::parse_http_date(v).ok()?;
            Some(crate::config::clamp_duration(
                at.duration_since(now).unwrap_or(Duration::ZERO),
            ))
        })
    };
    text("retry-after")
        .and_then(seconds_or_date)
        .or_else(|| text("llm_provider-retry-after").and_then(seconds_or_date))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("llm_provider-retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(3)));
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
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(
            retry_after(&h, now),
            Some(crate::config::MAX_DURATION / 1000)
        );
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        h.insert("retry-after", HeaderValue::from_static("never"));
        h.remove("llm_provider-retry-after");
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
    fn unset_options_are_left_out_of_the_request() {
        let plain = OpenAiAgent::new(OpenAiOptions {
            api_key_env: String::new(),
            ..Default::default()
        })
        .unwrap();
        let body: Value = serde_json::from_slice(&plain.body("hi").ok().unwrap()).unwrap();
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["messages", "model"]);
        let set = OpenAiAgent::new(OpenAiOptions {
            api_key_env: String::new(),
            temperature: Some(0.0),
            max_completion_tokens: Some(99),
            extra_body: Some(super::super::parse_extra_body(r#"{"seed":7,"stop":["x"]}"#).unwrap()),
            ..Default::default()
        })
        .unwrap();
        let body: Value = serde_json::from_slice(&set.body("hi").ok().unwrap()).unwrap();
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["max_completion_tokens"], 99);
        assert_eq!(body["seed"], 7);
        assert_eq!(body["stop"][0], "x");
        assert!(body.get("max_tokens").is_none());
    }
}
