//! `pagent_openai_options` and `pagent_agent_openai`: an agent that asks an
//! OpenAI-compatible chat-completions endpoint over HTTP (see `parallel_agents::agent::openai`).
//!
//! The functions exist in every build, so the header is the same; a library built
//! without the `openai` feature makes no such agent (`pagent_agent_openai` then returns
//! `PAGENT_ERR_INVALID_ARG`).

use std::ffi::c_char;
use std::time::Duration;

use super::agent::pagent_agent;
use super::guard::{
    boxed, free_boxed, guard, try_mut, try_opt_ref, try_opt_str, try_out_handle, try_str, FfiResult,
};
use super::status::{pagent_status, Failure};
use parallel_agents::agent::openai::{self as oa, OpenAiOptions};

/// Settings of an OpenAI-compatible HTTP agent. Create with `pagent_openai_options_new`,
/// change with the setters (each validates its value and keeps the old one on failure),
/// pass to `pagent_agent_openai` (which copies them), free with
/// `pagent_openai_options_free`. Not thread-safe: do not use one from two threads at once.
pub struct pagent_openai_options {
    inner: OpenAiOptions,
}

/// Options with the defaults: base URL `https://api.openai.com/v1`, model `gpt-4o-mini`,
/// API key from the environment variable `OPENAI_API_KEY`, no system prompt, user template
/// `{question}`, no extra headers, request timeout 60 s, idle pooled connections kept 4 s,
/// no tokens-per-minute budget. Request fields that are not set (temperature, max tokens,
/// max completion tokens, extra fields) are left out of the request, so the server's
/// defaults apply. Caller owns it and must call `pagent_openai_options_free`.
/// Returns NULL only if out of memory (the process aborts first in practice).
#[no_mangle]
pub extern "C" fn pagent_openai_options_new() -> *mut pagent_openai_options {
    boxed(pagent_openai_options {
        inner: OpenAiOptions::default(),
    })
}

/// Frees options. NULL is a no-op. Agents made from them keep their own copy.
#[no_mangle]
pub extern "C" fn pagent_openai_options_free(options: *mut pagent_openai_options) {
    let _ = guard("pagent_openai_options_free", || {
        free_boxed(options);
        Ok(pagent_status::PAGENT_OK)
    });
}

/// Applies `change` to the options if it succeeds.
fn set(
    function: &str,
    options: *mut pagent_openai_options,
    change: impl FnOnce(&mut OpenAiOptions) -> Result<(), Failure>,
) -> pagent_status {
    guard(function, || -> FfiResult {
        let o = try_mut!(options);
        let mut next = o.inner.clone();
        change(&mut next)?;
        o.inner = next;
        Ok(pagent_status::PAGENT_OK)
    })
}

/// Base URL of the API, e.g. `"https://api.openai.com/v1"` or `"http://127.0.0.1:8080/v1"`;
/// calls POST to `{base_url}/chat/completions`. Copied. A URL that is not `http://` or
/// `https://` with a host (or has whitespace, a query or a fragment) returns
/// `PAGENT_ERR_INVALID_ARG`; so does one with credentials (`user:password@`), which would
/// be sent as Basic auth and shown in messages: the message does not repeat them.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_base_url(
    options: *mut pagent_openai_options,
    base_url: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_base_url", options, |o| {
        let url = try_str!(base_url);
        oa::check_base_url(url)?;
        o.base_url = url.to_owned();
        Ok(())
    })
}

/// The model to ask, e.g. `"gpt-4o-mini"`; not empty. Copied.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_model(
    options: *mut pagent_openai_options,
    model: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_model", options, |o| {
        let m = try_str!(model);
        if m.trim().is_empty() {
            return Err(Failure::invalid("model is empty"));
        }
        o.model = m.to_owned();
        Ok(())
    })
}

/// Name of the environment variable that holds the API key, e.g. `"OPENAI_API_KEY"`
/// (the default). It is read once, by `pagent_agent_openai`. `""`: send no key (local
/// servers); an unset or empty variable sends none either. The key is sent only in the
/// `Authorization` header and never appears in results, errors, metrics or logs.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_api_key_env(
    options: *mut pagent_openai_options,
    variable: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_api_key_env", options, |o| {
        let v = try_str!(variable);
        oa::check_env_name(v)?;
        o.api_key_env = v.to_owned();
        Ok(())
    })
}

/// System message sent before each question; NULL or `""` sends none. Copied.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_system_prompt(
    options: *mut pagent_openai_options,
    system_prompt: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_system_prompt", options, |o| {
        o.system_prompt = try_opt_str!(system_prompt)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(())
    })
}

/// The user message; every `{question}` in it is replaced by the question, e.g.
/// `"Answer in one word: {question}"`. A template without `{question}` returns
/// `PAGENT_ERR_INVALID_ARG`. Copied.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_user_template(
    options: *mut pagent_openai_options,
    user_template: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_user_template", options, |o| {
        let t = try_str!(user_template);
        oa::check_template(t)?;
        o.user_template = t.to_owned();
        Ok(())
    })
}

/// Sampling temperature, in [0, 2]; NaN is rejected. Not sent unless set (reasoning models
/// reject some values).
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_temperature(
    options: *mut pagent_openai_options,
    temperature: f64,
) -> pagent_status {
    set("pagent_openai_options_set_temperature", options, |o| {
        oa::check_temperature(temperature)?;
        o.temperature = Some(temperature);
        Ok(())
    })
}

/// `max_tokens`: upper bound on completion tokens per call, 1 to 10,000,000. Not sent
/// unless set; reasoning models want `pagent_openai_options_set_max_completion_tokens`.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_max_tokens(
    options: *mut pagent_openai_options,
    max_tokens: u32,
) -> pagent_status {
    set("pagent_openai_options_set_max_tokens", options, |o| {
        oa::check_max_tokens("max_tokens", max_tokens)?;
        o.max_tokens = Some(max_tokens);
        Ok(())
    })
}

/// Adds a header sent with every request (e.g. for a gateway); may be called repeatedly,
/// up to 64 headers. The name must be an HTTP token, the value visible ASCII, spaces and
/// tabs. Both copied. Hop-by-hop and framing headers (`Connection`, `Keep-Alive`,
/// `Content-Length`, `Transfer-Encoding`, `TE`, `Trailer`, `Upgrade`, `Host`, `Expect`,
/// `Proxy-Connection`) and `Content-Type` are refused with `PAGENT_ERR_INVALID_ARG`. The
/// value is a secret: no error, result, metric or log repeats it, whole or in part (an
/// answer that contains it fails the call instead).
#[no_mangle]
pub extern "C" fn pagent_openai_options_add_header(
    options: *mut pagent_openai_options,
    name: *const c_char,
    value: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_add_header", options, |o| {
        let n = try_str!(name);
        let v = try_str!(value);
        oa::check_header(n, v)?;
        if o.headers.len() >= oa::MAX_HEADERS {
            return Err(Failure::invalid(format!(
                "more than {} extra headers",
                oa::MAX_HEADERS
            )));
        }
        o.headers.push((n.to_owned(), v.to_owned()));
        Ok(())
    })
}

/// `max_completion_tokens`: upper bound on completion tokens per call, reasoning tokens
/// included, 1 to 10,000,000 (what o-series and other reasoning models take instead of
/// `max_tokens`). Not sent unless set.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_max_completion_tokens(
    options: *mut pagent_openai_options,
    max_completion_tokens: u32,
) -> pagent_status {
    set(
        "pagent_openai_options_set_max_completion_tokens",
        options,
        |o| {
            oa::check_max_tokens("max_completion_tokens", max_completion_tokens)?;
            o.max_completion_tokens = Some(max_completion_tokens);
            Ok(())
        },
    )
}

/// Other request fields, as one JSON object merged into each request's body, e.g.
/// `{"seed": 7, "top_p": 0.9, "stop": ["\n"], "response_format": {"type": "json_object"}}`.
/// It may not set `model`, `messages` or `stream`; a field it shares with a setter above
/// (temperature, max tokens, max completion tokens) is refused when the agent is made.
/// At most 1 MiB. NULL or `""` removes it. Copied. Not JSON, or not an object:
/// `PAGENT_ERR_INVALID_ARG`.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_extra_body_json(
    options: *mut pagent_openai_options,
    json: *const c_char,
) -> pagent_status {
    set("pagent_openai_options_set_extra_body_json", options, |o| {
        o.extra_body = match try_opt_str!(json).filter(|s| !s.is_empty()) {
            Some(text) => Some(oa::parse_extra_body(text)?),
            None => None,
        };
        Ok(())
    })
}

/// How long an idle pooled connection is kept for reuse, in ms; 0 never reuses one; at
/// most one hour. Default 4000: below the 5 s after which common servers (uvicorn,
/// LiteLLM's proxy) close idle connections. A request that still meets a connection the
/// server closed, before any byte of a reply, is sent again once on a fresh connection
/// without counting as a retry.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_idle_timeout_ms(
    options: *mut pagent_openai_options,
    timeout_ms: u64,
) -> pagent_status {
    set("pagent_openai_options_set_idle_timeout_ms", options, |o| {
        o.pool_idle_timeout = Duration::from_millis(timeout_ms);
        if o.pool_idle_timeout > Duration::from_secs(3600) {
            return Err(Failure::invalid(format!(
                "pool idle timeout {timeout_ms} ms is longer than one hour"
            )));
        }
        Ok(())
    })
}

/// Limit on each HTTP request (connect, send, read the whole body), in ms; 1 ms to one
/// hour. A request past it fails with a retryable error. The executor's agent timeout
/// (`pagent_config_set_agent_timeout_ms`) bounds each attempt as well.
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_request_timeout_ms(
    options: *mut pagent_openai_options,
    timeout_ms: u64,
) -> pagent_status {
    set(
        "pagent_openai_options_set_request_timeout_ms",
        options,
        |o| {
            let d = Duration::from_millis(timeout_ms);
            oa::check_request_timeout(d)?;
            o.request_timeout = d;
            Ok(())
        },
    )
}

/// Tokens-per-minute budget of the agent, beside the executor's request-rate limit: each
/// call reserves an estimate (prompt bytes / 4 + max tokens) before it starts and settles
/// with the usage the server reports. 0 turns the budget off (the default).
#[no_mangle]
pub extern "C" fn pagent_openai_options_set_tokens_per_minute(
    options: *mut pagent_openai_options,
    tokens_per_minute: u64,
) -> pagent_status {
    set(
        "pagent_openai_options_set_tokens_per_minute",
        options,
        |o| {
            o.tokens_per_minute = (tokens_per_minute > 0).then_some(tokens_per_minute);
            Ok(())
        },
    )
}

/// Makes an agent that asks an OpenAI-compatible chat-completions endpoint, one HTTP
/// request per call over a pooled keep-alive client (HTTP/2 where a TLS server offers
/// it; TLS by rustls). The answer is `choices[0].message.content`; token usage is
/// recorded on each result (`pagent_result_prompt_tokens`, ...) and summed in metrics.
/// HTTP 408/409/429/5xx, timeouts and connection errors are retryable (set retries with
/// `pagent_config_set_max_retries`) and honour `Retry-After` / `retry-after-ms` /
/// `llm_provider-retry-after` up to the backoff cap; other statuses fail at once with the
/// server's message. Redirects are not followed (a 3xx fails and names its `Location`).
/// The API key and header values never appear in a result, error, metric or log. A reply
/// with tool calls or cut at the token limit before any text fails with a message that
/// says so. `options` NULL: the defaults.
/// Reads the API key from the environment now. Returns `PAGENT_ERR_INVALID_ARG` if the
/// library was built without the `openai` feature. Out: the new agent, or NULL. Caller
/// owns it (`pagent_agent_free`).
#[no_mangle]
pub extern "C" fn pagent_agent_openai(
    options: *const pagent_openai_options,
    out: *mut *mut pagent_agent,
) -> pagent_status {
    guard("pagent_agent_openai", || -> FfiResult {
        let out = try_out_handle!(out);
        let opts = try_opt_ref!(options).map_or_else(OpenAiOptions::default, |o| o.inner.clone());
        let agent = openai_agent(opts)?;
        *out = boxed(pagent_agent { agent });
        Ok(pagent_status::PAGENT_OK)
    })
}

#[cfg(feature = "openai")]
fn openai_agent(
    opts: OpenAiOptions,
) -> Result<std::sync::Arc<dyn parallel_agents::Agent>, Failure> {
    Ok(std::sync::Arc::new(
        parallel_agents::agent::OpenAiAgent::new(opts)?,
    ))
}

#[cfg(not(feature = "openai"))]
fn openai_agent(
    opts: OpenAiOptions,
) -> Result<std::sync::Arc<dyn parallel_agents::Agent>, Failure> {
    opts.validate()?;
    Err(Failure::invalid(
        "built without openai support (this build of parallel-agents has the `openai` feature off)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::pagent_agent_free;

    #[test]
    fn the_agent_exists_in_every_build() {
        let o = pagent_openai_options_new();
        let mut agent: *mut pagent_agent = std::ptr::null_mut();
        let st = pagent_agent_openai(o, &mut agent);
        if cfg!(feature = "openai") {
            assert_eq!(st, pagent_status::PAGENT_OK);
            assert!(!agent.is_null());
        } else {
            assert_eq!(st, pagent_status::PAGENT_ERR_INVALID_ARG);
            assert!(agent.is_null());
            let e = unsafe { std::ffi::CStr::from_ptr(crate::status::pagent_last_error()) };
            assert!(e.to_string_lossy().contains("built without openai support"));
        }
        pagent_agent_free(agent);
        pagent_openai_options_free(o);
    }
}
