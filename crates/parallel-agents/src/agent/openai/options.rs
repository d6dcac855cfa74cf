//! [`OpenAiOptions`] and the checks of each of its fields (public, hidden, for the fuzz
//! targets in `fuzz/`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The text in [`OpenAiOptions::user_template`] that each question replaces.
pub(crate) const QUESTION_PLACEHOLDER: &str = "{question}";
/// Longest accepted request timeout and pool idle timeout (one hour).
pub(crate) const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest accepted `max_tokens` / `max_completion_tokens`.
pub(crate) const MAX_MAX_TOKENS: u32 = 10_000_000;
/// Most extra headers accepted.
pub const MAX_HEADERS: usize = 64;
/// Largest accepted `extra_body`, as JSON text (1 MiB).
pub const MAX_EXTRA_BODY_BYTES: usize = 1 << 20;
/// Completion tokens a tokens-per-minute budget reserves for a call that sets neither
/// `max_tokens` nor `max_completion_tokens`.
pub(crate) const DEFAULT_COMPLETION_ESTIMATE: u32 = 256;

/// Request fields the agent writes itself; `extra_body` may not set them.
const RESERVED_BODY_FIELDS: [&str; 3] = ["model", "messages", "stream"];

/// Headers that frame or route the request (RFC 9110 §7.6.1 hop-by-hop fields, the
/// body's framing, the target host) or that the agent sets itself: a host that set them
/// would corrupt the request, so they are refused.
const REFUSED_HEADERS: [&str; 11] = [
    "connection",
    "content-length",
    "content-type",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// Settings of an [`OpenAiAgent`](super::OpenAiAgent). Start from [`Default`] and change
/// fields, then [`validate`](Self::validate) (the agent's constructor validates too).
///
/// Request fields the host does not set are left out of the request, so the server's
/// defaults apply (reasoning models reject some values that older models accept).
#[derive(Clone, Debug, PartialEq)]
pub struct OpenAiOptions {
    /// Base URL of the API, without the `/chat/completions` suffix; `http` or `https`,
    /// without credentials (`user:password@` is refused: put a key in the environment
    /// variable named by [`api_key_env`](Self::api_key_env) or in a header).
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
    /// Sampling temperature, in `[0, 2]`; `None` (the default): not sent.
    pub temperature: Option<f64>,
    /// `max_tokens`, in `[1, 10,000,000]`; `None` (the default): not sent.
    pub max_tokens: Option<u32>,
    /// `max_completion_tokens` (what reasoning models take instead of `max_tokens`), in
    /// `[1, 10,000,000]`; `None` (the default): not sent.
    pub max_completion_tokens: Option<u32>,
    /// Other request fields (`seed`, `top_p`, `stop`, `response_format`, ...), merged into
    /// each request's JSON body. It may not set `model`, `messages` or `stream`, nor a
    /// field that one of the options above already sets. At most 1 MiB as JSON.
    pub extra_body: Option<Map<String, Value>>,
    /// Extra request headers (name, value), sent with every call, e.g. for a gateway. The
    /// values are secrets: kept out of every error and answer the agent returns.
    /// Hop-by-hop and framing headers (`Connection`, `Content-Length`, `Host`,
    /// `Transfer-Encoding`, ...) and `Content-Type` are refused.
    pub headers: Vec<(String, String)>,
    /// Limit on one HTTP request, connecting and reading the body included; a request
    /// past it fails with a retryable error. 1 ms to 1 hour. Default 60 s.
    pub request_timeout: Duration,
    /// How long an idle pooled connection is kept for reuse; 0: never reuse one. Up to
    /// 1 hour. Default 4 s: below the 5 s after which common servers (uvicorn, LiteLLM's
    /// proxy) close idle connections, so a request rarely meets a connection the server is
    /// closing.
    pub pool_idle_timeout: Duration,
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
            temperature: None,
            max_tokens: None,
            max_completion_tokens: None,
            extra_body: None,
            headers: Vec::new(),
            request_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(4),
            tokens_per_minute: None,
        }
    }
}

pub(super) fn invalid(message: impl Into<String>) -> Error {
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
        if let Some(t) = self.temperature {
            check_temperature(t)?;
        }
        if let Some(n) = self.max_tokens {
            check_max_tokens("max_tokens", n)?;
        }
        if let Some(n) = self.max_completion_tokens {
            check_max_tokens("max_completion_tokens", n)?;
        }
        if let Some(extra) = &self.extra_body {
            check_extra_body(extra)?;
            let set_by_options = [
                ("temperature", self.temperature.is_some()),
                ("max_tokens", self.max_tokens.is_some()),
                (
                    "max_completion_tokens",
                    self.max_completion_tokens.is_some(),
                ),
            ];
            for (field, set) in set_by_options {
                if set && extra.contains_key(field) {
                    return Err(invalid(format!(
                        "extra_body sets {field:?}, which its own option already sets"
                    )));
                }
            }
        }
        if self.headers.len() > MAX_HEADERS {
            return Err(invalid(format!("more than {MAX_HEADERS} extra headers")));
        }
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        check_request_timeout(self.request_timeout)?;
        if self.pool_idle_timeout > MAX_REQUEST_TIMEOUT {
            return Err(invalid(format!(
                "pool_idle_timeout {:?} is longer than 1 h",
                self.pool_idle_timeout
            )));
        }
        if self.tokens_per_minute == Some(0) {
            return Err(invalid("tokens_per_minute must be at least 1 (or None)"));
        }
        Ok(())
    }

    /// The user message for `question`.
    pub fn render(&self, question: &str) -> String {
        self.user_template.replace(QUESTION_PLACEHOLDER, question)
    }

    /// The completion tokens a call may use, as far as the options say.
    pub(crate) fn completion_limit(&self) -> u32 {
        self.max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_COMPLETION_ESTIMATE)
    }
}

/// `url` with any `user:password@` replaced, fit for a message.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `http://` or `https://` followed by a host; no credentials, whitespace or control
/// characters, query or fragment.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_base_url(url: &str) -> Result<()> {
    let bad = |why: &str| {
        invalid(format!(
            "base_url {:?} is not usable: {why}",
            without_credentials(url)
        ))
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad(
            "it carries credentials (user:password@); they would be sent as Basic auth and \
             shown in messages. Put the API key in the variable named by api_key_env, or \
             send it as a header",
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace or control characters"));
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(bad("it has no host"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("it must not have a query or fragment"));
    }
    #[cfg(feature = "openai")]
    {
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        // Percent-encoded or otherwise disguised user info that the parser still finds.
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("it carries credentials"));
        }
    }
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

/// A token limit (`field` names it) in `[1, 10,000,000]`.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_max_tokens(field: &str, n: u32) -> Result<()> {
    if n == 0 || n > MAX_MAX_TOKENS {
        return Err(invalid(format!(
            "{field} {n} is not in [1, {MAX_MAX_TOKENS}]"
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

/// Extra request fields: not `model`, `messages` or `stream`, at most 1 MiB as JSON.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn check_extra_body(extra: &Map<String, Value>) -> Result<()> {
    if let Some(field) = RESERVED_BODY_FIELDS
        .iter()
        .find(|f| extra.contains_key(**f))
    {
        return Err(invalid(format!(
            "extra_body may not set {field:?}: the agent writes it"
        )));
    }
    let size = serde_json::to_vec(extra).map_or(usize::MAX, |v| v.len());
    if size > MAX_EXTRA_BODY_BYTES {
        return Err(invalid(format!(
            "extra_body is {size} bytes as JSON; the limit is {MAX_EXTRA_BODY_BYTES}"
        )));
    }
    Ok(())
}

/// Parses `json` as the extra request fields: a JSON object (see
/// [`OpenAiOptions::extra_body`]).
pub fn parse_extra_body(json: &str) -> Result<Map<String, Value>> {
    if json.len() > MAX_EXTRA_BODY_BYTES {
        return Err(invalid(format!(
            "extra_body is {} bytes; the limit is {MAX_EXTRA_BODY_BYTES}",
            json.len()
        )));
    }
    let v: Value =
        serde_json::from_str(json).map_err(|e| invalid(format!("extra_body is not JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(invalid("extra_body must be a JSON object ({...})"));
    };
    check_extra_body(&map)?;
    Ok(map)
}

/// A header name of token characters, not a hop-by-hop or framing header, and a value of
/// visible ASCII, spaces and tabs. A refusal never repeats the value (it may be a secret).
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
    if REFUSED_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        return Err(invalid(format!(
            "header {name:?} may not be set: it frames or routes the request, and the \
             HTTP client sets it"
        )));
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(invalid(format!(
            "the value of header {name:?} has characters other than visible ASCII, space and tab"
        )));
    }
    Ok(())
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
        assert!(bad(|o| o.temperature = Some(f64::NAN)).contains("temperature"));
        assert!(bad(|o| o.max_tokens = Some(0)).contains("max_tokens"));
        assert!(bad(|o| o.max_completion_tokens = Some(0)).contains("max_completion_tokens"));
        assert!(bad(|o| o.headers = vec![("a b".into(), "x".into())]).contains("header"));
        assert!(bad(|o| o.headers = vec![("x".into(), "sec\nret".into())]).contains("header"));
        assert!(!bad(|o| o.headers = vec![("x".into(), "sec\nret".into())]).contains("sec"));
        assert!(bad(|o| o.request_timeout = Duration::ZERO).contains("request_timeout"));
        assert!(bad(|o| o.pool_idle_timeout = Duration::from_secs(7200)).contains("pool_idle"));
        assert!(bad(|o| o.api_key_env = "A=B".into()).contains("api_key_env"));
        let o = OpenAiOptions {
            user_template: "Q: {question} ({question})".into(),
            ..Default::default()
        };
        assert_eq!(o.render("x"), "Q: x (x)");
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_shown() {
        for url in [
            "http://user:hunter2secret@127.0.0.1:8080/v1",
            "https://hunter2secret@api.example.com/v1",
            "http://user:hunter2secret@/v1",
            "http://a:hunter2secret@b@host/v1",
        ] {
            let e = check_base_url(url).unwrap_err().to_string();
            assert!(e.contains("credentials"), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
        assert!(check_base_url("http://127.0.0.1:8080/v1").is_ok());
    }

    #[test]
    fn framing_and_hop_by_hop_headers_are_refused() {
        for name in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "Connection",
            "Keep-Alive",
            "Upgrade",
            "TE",
            "Content-Type",
        ] {
            let e = check_header(name, "1").unwrap_err().to_string();
            assert!(e.contains("may not be set"), "{name}: {e}");
        }
        assert!(check_header("X-Gateway-Key", "v").is_ok());
        assert!(check_header("Authorization", "Bearer v").is_ok());
    }

    #[test]
    fn extra_body_is_an_object_that_cannot_take_over_the_request() {
        let m = parse_extra_body(r#"{"seed": 7, "top_p": 0.5, "stop": ["\n"]}"#).unwrap();
        assert_eq!(m["seed"], 7);
        for (json, why) in [
            ("[1]", "object"),
            ("not json", "not JSON"),
            (r#"{"model": "x"}"#, "\"model\""),
            (r#"{"messages": []}"#, "\"messages\""),
            (r#"{"stream": true}"#, "\"stream\""),
        ] {
            let e = parse_extra_body(json).unwrap_err().to_string();
            assert!(e.contains(why), "{json}: {e}");
        }
        let o = OpenAiOptions {
            temperature: Some(0.2),
            extra_body: Some(parse_extra_body(r#"{"temperature": 1}"#).unwrap()),
            ..Default::default()
        };
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("temperature"));
        let big = format!(r#"{{"x": "{}"}}"#, "a".repeat(MAX_EXTRA_BODY_BYTES));
        assert!(parse_extra_body(&big).is_err());
    }
}
