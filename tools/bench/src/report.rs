//! What a run produces: `key=value` lines (machine-readable, one per measurement), the
//! table rows a person reads (measured beside ideal, ratio, target), peer comparisons,
//! and the list of wrong results that makes the run fail.

use std::fmt::{self, Display, Write as _};

/// One measurement as `key=value` pairs, in insertion order. Keys and values never
/// contain spaces or `=` (values are sanitised), so a line splits on whitespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Line {
    fields: Vec<(String, String)>,
}

impl Line {
    /// A line whose first field is `bench=<name>`.
    pub fn new(bench: &str) -> Self {
        Line::default().kv("bench", bench)
    }

    /// Adds (or replaces) `key=value`.
    pub fn kv(mut self, key: &str, value: impl Display) -> Self {
        self.set(key, value);
        self
    }

    /// Adds (or replaces) `key=value` in place.
    pub fn set(&mut self, key: &str, value: impl Display) {
        let v: String = value
            .to_string()
            .chars()
            .map(|c| {
                if c.is_whitespace() || c == '=' {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((key.to_owned(), v)),
        }
    }

    /// Adds `key=value` with a float printed to `decimals` places.
    pub fn f(self, key: &str, value: f64, decimals: usize) -> Self {
        self.kv(key, format!("{value:.decimals$}"))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number, if present and numeric.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }

    /// Parses `k=v k=v ...`; `None` unless every token is `key=value` and `bench` is set.
    pub fn parse(text: &str) -> Option<Line> {
        let mut line = Line::default();
        for token in text.split_whitespace() {
            let (k, v) = token.split_once('=')?;
            if k.is_empty() {
                return None;
            }
            line.fields.push((k.to_owned(), v.to_owned()));
        }
        line.get("bench")?;
        Some(line)
    }
}

impl Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_char(' ')?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// One row of the results table: a figure beside its ideal.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured, e.g. "latency N=32 C=8".
    pub what: String,
    /// The measured figure, with its unit.
    pub measured: String,
    /// The ideal figure, with its unit.
    pub ideal: String,
    /// Fraction of the ideal achieved (1.0 = no overhead at all; higher is better), if
    /// the row has an ideal.
    pub ratio: Option<f64>,
    /// The target, e.g. "ratio >= 0.97", or "-".
    pub target: String,
    /// Whether the target was met; `None` if there is no target.
    pub met: Option<bool>,
}

/// One peer figure beside ours.
#[derive(Clone, Debug)]
pub struct PeerRow {
    /// The workload, e.g. "latency N=32 C=8 (efficiency)".
    pub what: String,
    /// Our figure, with its unit.
    pub ours: String,
    /// The peer's name.
    pub peer: String,
    /// The peer's figure, with its unit.
    pub theirs: String,
    /// Ours / theirs, oriented so that > 1 means we do better.
    pub advantage: f64,
}

/// Everything a run has produced so far.
#[derive(Default)]
pub struct Report {
    /// Machine-readable lines, in order.
    pub lines: Vec<Line>,
    /// Table rows, in order.
    pub rows: Vec<Row>,
    /// Peer comparisons, in order.
    pub peers: Vec<PeerRow>,
    /// Notes: skipped parts and why, warnings.
    pub notes: Vec<String>,
    /// Wrong results (the run exits non-zero if any).
    pub failures: Vec<String>,
}

impl Report {
    /// Records a measurement line and echoes it.
    pub fn line(&mut self, line: Line) {
        println!("  {line}");
        self.lines.push(line);
    }

    /// Records a table row and prints it as it happens.
    pub fn row(&mut self, row: Row) {
        println!(
            "  -> {}: {} (ideal {}, ratio {}{})",
            row.what.trim(),
            row.measured,
            row.ideal,
            row.ratio.map_or("-".into(), |r| format!("{r:.3}")),
            match row.met {
                Some(true) => format!("; target {} met", row.target),
                Some(false) => format!("; target {} MISSED", row.target),
                None => String::new(),
            }
        );
        self.rows.push(row);
    }

    /// Records a peer comparison.
    pub fn peer(&mut self, row: PeerRow) {
        println!(
            "  -> {} vs {}: ours {} / {} {} = {:.2}x",
            row.what, row.peer, row.ours, row.peer, row.theirs, row.advantage
        );
        self.peers.push(row);
    }

    /// Records a note (a skipped part, a warning).
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        println!("  note: {note}");
        self.notes.push(note);
    }

    /// Records a wrong result.
    pub fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        println!("  WRONG: {what}");
        self.failures.push(what);
    }

    /// Lines whose `bench` and `impl` fields match.
    pub fn find<'a>(&'a self, bench: &'a str, imp: &'a str) -> impl Iterator<Item = &'a Line> {
        self.lines
            .iter()
            .filter(move |l| l.get("bench") == Some(bench) && l.get("impl") == Some(imp))
    }

    /// The results table as aligned text.
    pub fn table(&self) -> String {
        let header = [
            "measurement",
            "measured",
            "ideal",
            "ratio",
            "target",
            "met?",
        ];
        let body: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.what.clone(),
                    r.measured.clone(),
                    r.ideal.clone(),
                    r.ratio.map_or("-".into(), |x| format!("{x:.3}")),
                    r.target.clone(),
                    match r.met {
                        Some(true) => "yes".into(),
                        Some(false) => "NO".into(),
                        None => "-".into(),
                    },
                ]
            })
            .collect();
        render(&header, &body)
    }

    /// The peer table as aligned text.
    pub fn peer_table(&self) -> String {
        let header = ["workload", "ours", "peer", "peer figure", "ours/peer"];
        let body: Vec<[String; 5]> = self
            .peers
            .iter()
            .map(|p| {
                [
                    p.what.clone(),
                    p.ours.clone(),
                    p.peer.clone(),
                    p.theirs.clone(),
                    format!("{:.2}x", p.advantage),
                ]
            })
            .collect();
        render(&header, &body)
    }
}

fn render<const N: usize>(header: &[&str; N], body: &[[String; N]]) -> String {
    let mut width = header.map(str::len);
    for row in body {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: Vec<String> = width.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = String::new();
    let mut put = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            let pad = " ".repeat(w - c.chars().count());
            // The first column (text) is left-aligned, the figures right-aligned.
            if i == 0 {
                s.push_str(c);
                s.push_str(&pad);
            } else {
                s.push_str("  ");
                s.push_str(&pad);
                s.push_str(c);
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    put(header);
    put(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in body {
        put(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

/// `n` in a short human form: 1000 -> "1,000", 1e6 -> "1,000,000".
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.round());
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_sanitise() {
        let l = Line::new("x").kv("impl", "a b").f("v", 1.23456, 2);
        assert_eq!(l.to_string(), "bench=x impl=a_b v=1.23");
        assert_eq!(Line::parse(&l.to_string()), Some(l));
        assert_eq!(Line::parse("no equals"), None);
        assert_eq!(Line::parse("impl=x"), None);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_000_000.0), "1,000,000");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
