//! Reading what an OpenAI-compatible server sent back: a completion (answer, usage, why
//! there is no text) or an error body. Everything in a reply is untrusted: numbers are
//! bounded, text shown in a message is scrubbed of secrets *before* it is cut short, and
//! a lone surrogate escape becomes U+FFFD instead of failing the answer.

use serde::Deserialize;
use serde_json::Value;

use super::secrets::{cut, Secrets};
use crate::agent::{Answer, TokenUsage};

/// Largest token count taken from a reply's `usage`; larger reports are clamped to it
/// (the largest context windows are about ten million tokens).
pub const MAX_USAGE_TOKENS: u64 = 100_000_000;
/// How much of a body is scrubbed and then shown, at most, in a message (characters).
pub const SHOWN_CHARS: usize = 300;
/// How much of a body is looked at for a message (bytes); scrubbing sees all of it, so a
/// secret is never cut in two before it is found.
const LOOKED_AT_BYTES: usize = 64 << 10;

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    #[serde(default)]
    finish_reason: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

/// A token count from `usage`: a whole number (or a float that is one), clamped to
/// [`MAX_USAGE_TOKENS`]; anything else (null, negative, text) is unknown.
fn tokens(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    let n = v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f.min(MAX_USAGE_TOKENS as f64) as u64)
    })?;
    Some(n.min(MAX_USAGE_TOKENS))
}

/// The usage of a reply: both counts known, or unknown.
fn usage(v: &Value) -> Option<TokenUsage> {
    Some(TokenUsage {
        prompt_tokens: tokens(v.get("prompt_tokens"))?,
        completion_tokens: tokens(v.get("completion_tokens"))?,
    })
}

/// A `body` for a message: its first [`LOOKED_AT_BYTES`] (lossy UTF-8), scrubbed, then cut
/// to [`SHOWN_CHARS`].
pub fn shown(body: &[u8], secrets: &Secrets) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(LOOKED_AT_BYTES)]);
    let mut s = cut(&secrets.scrub(&text), SHOWN_CHARS);
    if body.len() > LOOKED_AT_BYTES && !s.ends_with('…') {
        s.push('…');
    }
    s
}

/// `body` with every lone surrogate escape (`\ud800`–`\udfff` not in a valid pair)
/// replaced by `\ufffd`; `None` when there is none. Backslashes occur in JSON only inside
/// strings, so a plain scan of escapes is exact.
#[doc(hidden)] // public for the fuzz targets in fuzz/
pub fn replace_lone_surrogates(body: &[u8]) -> Option<Vec<u8>> {
    let hex = |at: usize| -> Option<u16> {
        let h = body.get(at..at + 4)?;
        u16::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()
    };
    let escape = |at: usize| -> Option<u16> {
        (body.get(at..at + 2)? == b"\\u").then_some(())?;
        hex(at + 2)
    };
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(u) = escape(i) else {
            i += 2; // any other escape, `\\` included
            continue;
        };
        let pair = (0xd800..0xdc00).contains(&u)
            && escape(i + 6).is_some_and(|l| (0xdc00..0xe000).contains(&l));
        if pair {
            i += 12;
        } else if (0xd800..0xe000).contains(&u) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(body.len()));
            o.extend_from_slice(&body[copied..i]);
            o.extend_from_slice(b"\\ufffd");
            i += 6;
            copied = i;
        } else {
            i += 6;
        }
    }
    let mut o = out?;
    o.extend_from_slice(&body[copied..]);
    Some(o)
}

fn parse(body: &[u8]) -> serde_json::Result<ChatResponse> {
    serde_json::from_slice(body).or_else(|e| match replace_lone_surrogates(body) {
        Some(fixed) => serde_json::from_slice(&fixed),
        None => Err(e),
    })
}

/// Names of the tools in `tool_calls` (at most eight, each cut short).
fn tool_names(calls: &Value) -> String {
    let all = calls.as_array().map_or(&[][..], Vec::as_slice);
    let mut names: Vec<String> = all
        .iter()
        .take(8)
        .map(|c| cut(c["function"]["name"].as_str().unwrap_or("?"), 64))
        .collect();
    if all.len() > 8 {
        names.push(format!("and {} more", all.len() - 8));
    }
    names.join(", ")
}

/// `choices[0].message.content` and the usage of a 2xx body, or why there is no answer.
/// The answer is the model's text, unchanged; messages are scrubbed of `secrets`.
pub fn parse_completion(body: &[u8], secrets: &Secrets) -> Result<Answer, String> {
    let r = parse(body).map_err(|e| {
        format!(
            "malformed response body ({e}); it starts with {:?}",
            shown(body, secrets)
        )
    })?;
    let usage = r.usage.as_ref().and_then(usage);
    let Some(first) = r.choices.into_iter().next() else {
        return Err("the response has no choices".into());
    };
    let finish = first.finish_reason.as_ref().and_then(Value::as_str);
    let finish_shown = cut(finish.unwrap_or("none"), 64);
    let m = first.message;
    match (m.content, m.refusal) {
        (Some(text), _) if !text.is_empty() || finish != Some("length") => {
            return Ok(Answer { text, usage });
        }
        (_, Some(r)) => return Err(format!("the model refused: {}", cut(&r, SHOWN_CHARS))),
        _ => {}
    }
    let message = match (finish, &m.tool_calls) {
        (_, Some(calls)) if calls.as_array().is_some_and(|a| !a.is_empty()) => format!(
            "the model asked for tool calls instead of answering (finish_reason {finish_shown:?}; \
             tools: {}); this agent does not run tools",
            tool_names(calls)
        ),
        (Some("length"), _) => "the answer was cut at the token limit before any text \
             (finish_reason \"length\"); raise max_completion_tokens or max_tokens"
            .to_owned(),
        _ => format!(
            "the response's choices[0].message has no content (finish_reason {finish_shown:?})"
        ),
    };
    Err(secrets.scrub(&message))
}

/// The server's message in an error body (`{"error": {"message": ...}}` or
/// `{"error": "..."}`, else the start of the body), scrubbed, then cut short.
pub fn error_message(body: &[u8], secrets: &Secrets) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let from_json = v.as_ref().and_then(|v| {
        let e = v.get("error").unwrap_or(v);
        e.get("message")
            .and_then(Value::as_str)
            .or_else(|| e.as_str())
    });
    match from_json {
        Some(m) => shown(m.as_bytes(), secrets),
        None if body.is_empty() => "(empty body)".into(),
        None => shown(body, secrets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Secrets {
        Secrets::default()
    }

    #[test]
    fn bodies() {
        let ok = br#"{"choices":[{"message":{"role":"assistant","content":"Hi"}}],
                     "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
        let a = parse_completion(ok, &none()).unwrap();
        assert_eq!(a.text, "Hi");
        assert_eq!(a.usage.unwrap().prompt_tokens, 3);
        assert_eq!(a.usage.unwrap().completion_tokens, 1);
        let no_usage = br#"{"choices":[{"message":{"content":"Hi"}}]}"#;
        assert_eq!(parse_completion(no_usage, &none()).unwrap().usage, None);
        let e = |b: &[u8]| parse_completion(b, &none()).unwrap_err();
        assert!(e(b"{not json").contains("malformed"));
        assert!(e(br#"{"choices":[]}"#).contains("no choices"));
        assert!(
            e(br#"{"choices":[{"message":{"content":null,"refusal":"no"}}]}"#).contains("refused")
        );
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"x"}}"#, &none()),
            "bad key"
        );
        assert_eq!(error_message(br#"{"error":"plain"}"#, &none()), "plain");
        assert_eq!(
            error_message(b"<html>oops</html>", &none()),
            "<html>oops</html>"
        );
        assert_eq!(error_message(b"", &none()), "(empty body)");
    }

    #[test]
    fn usage_is_bounded_and_null_is_unknown() {
        let with = |u: &str| {
            let body = format!(r#"{{"choices":[{{"message":{{"content":"x"}}}}],"usage":{u}}}"#);
            parse_completion(body.as_bytes(), &none()).unwrap().usage
        };
        let huge =
            with(r#"{"prompt_tokens":18446744073709551615,"completion_tokens":1e300}"#).unwrap();
        assert_eq!(huge.prompt_tokens, MAX_USAGE_TOKENS);
        assert_eq!(huge.completion_tokens, MAX_USAGE_TOKENS);
        assert_eq!(
            with(r#"{"prompt_tokens":null,"completion_tokens":null}"#),
            None
        );
        assert_eq!(with(r#"{"prompt_tokens":-5,"completion_tokens":2}"#), None);
        assert_eq!(with("null"), None);
        assert_eq!(
            with(r#"{"prompt_tokens":2.0,"completion_tokens":3}"#)
                .unwrap()
                .prompt_tokens,
            2
        );
    }

    #[test]
    fn a_lone_surrogate_becomes_a_replacement_character() {
        let body =
            br#"{"choices":[{"message":{"content":"a \ud800 b \udc00 c \ud83d\ude00 \\ud800"}}]}"#;
        let a = parse_completion(body, &none()).unwrap();
        assert_eq!(a.text, "a \u{fffd} b \u{fffd} c \u{1f600} \\ud800");
        assert!(replace_lone_surrogates(br#"{"a":"\ud83d\ude00"}"#).is_none());
    }

    #[test]
    fn no_text_says_what_came_back() {
        let tools = br#"{"choices":[{"finish_reason":"tool_calls","message":{"content":null,
            "tool_calls":[{"id":"1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]}}]}"#;
        let e = parse_completion(tools, &none()).unwrap_err();
        assert!(
            e.contains("tool calls") && e.contains("get_weather") && e.contains("tool_calls"),
            "{e}"
        );
        let cut_short = br#"{"choices":[{"finish_reason":"length","message":{"content":""}}]}"#;
        let e = parse_completion(cut_short, &none()).unwrap_err();
        assert!(e.contains("cut") && e.contains("length"), "{e}");
        let partial = br#"{"choices":[{"finish_reason":"length","message":{"content":"Par"}}]}"#;
        assert_eq!(parse_completion(partial, &none()).unwrap().text, "Par");
        let empty = br#"{"choices":[{"finish_reason":"stop","message":{"content":null}}]}"#;
        assert!(parse_completion(empty, &none())
            .unwrap_err()
            .contains("no content"));
    }

    #[test]
    fn a_secret_is_scrubbed_before_the_body_is_cut() {
        let key = "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        let s = Secrets::new([key]);
        // The key straddles the point where the message is cut.
        let body = format!("{}Bearer {key} and more", "x".repeat(SHOWN_CHARS - 20));
        let m = error_message(body.as_bytes(), &s);
        assert!(!m.contains("sk-abc") && !m.contains("abcdef"), "{m}");
        assert!(m.contains("[redacted]"), "{m}");
        let m = parse_completion(body.as_bytes(), &s).unwrap_err();
        assert!(!m.contains("abcdef"), "{m}");
    }
}
