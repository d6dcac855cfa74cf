//! Keeping the secrets an agent sends (its API key, the values of its extra headers) out
//! of everything it returns.
//!
//! - **Error text** is scrubbed: every run of [`FRAGMENT`] or more characters that is a
//!   piece of a secret becomes `[redacted]`, so a server that echoes a key, whole or cut
//!   anywhere, shows none of it; a secret shorter than that is redacted where it stands as
//!   a whole token, so a one-letter key does not mangle ordinary words.
//! - **Answers** are the model's text and are never altered: an answer that contains a
//!   secret (whole, or a piece of [`ANSWER_FRAGMENT`] characters of a longer one) fails
//!   the call instead, with a message that does not repeat it. A secret shorter than
//!   [`ANSWER_MIN`] characters cannot be told apart from ordinary text and is not looked
//!   for in answers.
//!
//! Secrets are ASCII (they travel in header values), so every match lies on character
//! boundaries.

use std::collections::HashSet;

/// Shortest piece of a secret redacted wherever it appears in error text.
pub const FRAGMENT: usize = 6;
/// Shortest secret looked for in answers.
pub const ANSWER_MIN: usize = 8;
/// Length of the pieces of a long secret looked for in answers.
pub const ANSWER_FRAGMENT: usize = 12;
/// What a redacted run becomes.
pub const REDACTED: &str = "[redacted]";

/// The secrets of one agent; see the [module docs](self).
#[derive(Default)]
pub struct Secrets {
    /// The pieces of [`FRAGMENT`] bytes of each secret at least that long.
    long: Vec<HashSet<Vec<u8>>>,
    /// Shorter secrets, matched as whole tokens.
    short: Vec<Vec<u8>>,
    /// For each secret of at least [`ANSWER_MIN`] bytes: the length of the pieces looked
    /// for in answers, and those pieces.
    in_answers: Vec<(usize, HashSet<Vec<u8>>)>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Secrets({} kept out)",
            self.long.len() + self.short.len()
        )
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl Secrets {
    /// The secrets among `values` (trimmed; empty ones are ignored).
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = Secrets::default();
        for v in values {
            let v = v.trim().as_bytes();
            if v.is_empty() {
                continue;
            }
            if v.len() >= ANSWER_MIN {
                let n = v.len().min(ANSWER_FRAGMENT);
                s.in_answers
                    .push((n, v.windows(n).map(<[u8]>::to_vec).collect()));
            }
            if v.len() >= FRAGMENT {
                s.long
                    .push(v.windows(FRAGMENT).map(<[u8]>::to_vec).collect());
            } else {
                s.short.push(v.to_vec());
            }
        }
        s
    }

    /// Whether there is no secret to keep out.
    pub fn is_empty(&self) -> bool {
        self.long.is_empty() && self.short.is_empty()
    }

    /// `text` with every piece of a secret replaced by [`REDACTED`] (error text only).
    pub fn scrub(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let t = text.as_bytes();
        let mut hidden = vec![false; t.len()];
        for pieces in &self.long {
            for (i, w) in t.windows(FRAGMENT).enumerate() {
                if pieces.contains(w) {
                    hidden[i..i + FRAGMENT].fill(true);
                }
            }
        }
        for s in &self.short {
            for i in 0..t.len().saturating_sub(s.len() - 1) {
                let end = i + s.len();
                let alone = (i == 0 || !is_token_byte(t[i - 1]))
                    && (end == t.len() || !is_token_byte(t[end]));
                if alone && &t[i..end] == s.as_slice() {
                    hidden[i..end].fill(true);
                }
            }
        }
        if !hidden.contains(&true) {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < t.len() {
            let start = i;
            let h = hidden[i];
            while i < t.len() && hidden[i] == h {
                i += 1;
            }
            if h {
                out.push_str(REDACTED);
            } else {
                // Hidden runs are ASCII, so `start..i` lies on character boundaries.
                out.push_str(&text[start..i]);
            }
        }
        out
    }

    /// Whether an answer carries a secret (see the [module docs](self)).
    pub fn in_answer(&self, answer: &str) -> bool {
        let a = answer.as_bytes();
        self.in_answers
            .iter()
            .any(|(n, pieces)| a.windows(*n).any(|w| pieces.contains(w)))
    }
}

/// At most `max` characters of `text`, with `…` when it was cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-test-0123456789abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn a_key_cut_anywhere_leaves_nothing_that_identifies_it() {
        let s = Secrets::new([KEY]);
        for cut_at in FRAGMENT..KEY.len() {
            for text in [
                format!("you sent Bearer {}", &KEY[..cut_at]),
                format!("{}… (truncated)", &KEY[KEY.len() - cut_at..]),
            ] {
                let out = s.scrub(&text);
                assert!(out.contains(REDACTED), "{text} -> {out}");
                for w in KEY.as_bytes().windows(FRAGMENT) {
                    assert!(!out.as_bytes().windows(FRAGMENT).any(|x| x == w), "{out}");
                }
            }
        }
        assert_eq!(s.scrub("no secret here"), "no secret here");
    }

    #[test]
    fn a_short_key_is_redacted_only_as_a_whole_token() {
        let s = Secrets::new(["e"]);
        assert_eq!(s.scrub("fine, thank you"), "fine, thank you");
        assert_eq!(
            s.scrub("Authorization: Bearer e"),
            "Authorization: Bearer [redacted]"
        );
        assert!(!s.in_answer("fine e e"));
    }

    #[test]
    fn answers_with_a_secret_are_found_and_ordinary_ones_are_not() {
        let s = Secrets::new([KEY, "gateway-secret-value"]);
        assert!(s.in_answer(&format!("the header was Bearer {KEY}")));
        assert!(s.in_answer("echo: gateway-secret-value!"));
        assert!(s.in_answer(&format!("partial {}", &KEY[10..30])));
        assert!(!s.in_answer("The capital of France is Paris."));
        assert!(!s.in_answer("sk-test-"));
    }

    #[test]
    fn cut_keeps_character_boundaries() {
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("hi", 2), "hi");
    }
}
