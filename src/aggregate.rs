//! Answer normalisation, deduplication and majority voting.

use std::collections::HashMap;

use crate::result::{AgentResult, Outcome};

/// The form answers are compared in: trimmed, case-folded, inner whitespace collapsed to
/// one space, trailing punctuation stripped. `"  Paris. "` and `"paris"` are the same vote.
pub fn normalize_answer(answer: &str) -> String {
    let folded = answer
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    folded
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace())
        .to_owned()
}

/// Keeps the first result of each distinct normalised answer, in the given order; results
/// without an answer (failures) are kept, since each says something different.
pub fn deduplicate(results: Vec<AgentResult>) -> Vec<AgentResult> {
    let mut seen = std::collections::HashSet::new();
    results
        .into_iter()
        .filter(|r| match &r.answer {
            Some(a) => seen.insert(normalize_answer(a)),
            None => true,
        })
        .collect()
}

/// The outcome of counting votes.
#[derive(Clone, Debug, PartialEq)]
pub struct Vote {
    /// The winning answer as its first voter wrote it; `None` if no answer was counted.
    pub answer: Option<String>,
    /// Votes for the winner.
    pub votes: usize,
    /// Answers counted (successful results only).
    pub counted: usize,
    /// `votes / counted`, 0 when nothing was counted.
    pub confidence: f64,
    /// Whether `confidence >= threshold` (never with zero answers counted).
    pub reached: bool,
    /// Votes per normalised answer, most first (ties in winner order).
    pub tally: Vec<(String, usize)>,
}

/// Running tally of normalised answers; ties go to the answer whose first vote came from
/// the lowest voter index, so the winner never depends on completion order.
#[derive(Default, Debug)]
pub struct Tally {
    /// normalised answer -> (votes, lowest voter index, original text of that voter)
    entries: HashMap<String, (usize, usize, String)>,
    counted: usize,
}

impl Tally {
    /// Counts one answer from voter `index`.
    pub fn add(&mut self, index: usize, answer: &str) {
        self.counted += 1;
        let e = self
            .entries
            .entry(normalize_answer(answer))
            .or_insert_with(|| (0, index, answer.to_owned()));
        e.0 += 1;
        if index < e.1 {
            e.1 = index;
            e.2 = answer.to_owned();
        }
    }

    /// Answers counted so far.
    pub fn counted(&self) -> usize {
        self.counted
    }

    fn ranked(&self) -> Vec<(&String, &(usize, usize, String))> {
        let mut v: Vec<_> = self.entries.iter().collect();
        v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        v
    }

    /// The verdict so far.
    pub fn vote(&self, threshold: f64) -> Vote {
        let ranked = self.ranked();
        let tally = ranked.iter().map(|(k, v)| ((*k).clone(), v.0)).collect();
        match ranked.first() {
            None => Vote {
                answer: None,
                votes: 0,
                counted: 0,
                confidence: 0.0,
                reached: false,
                tally,
            },
            Some((_, (votes, _, text))) => {
                let confidence = *votes as f64 / self.counted as f64;
                Vote {
                    answer: Some(text.clone()),
                    votes: *votes,
                    counted: self.counted,
                    confidence,
                    reached: confidence >= threshold,
                    tally,
                }
            }
        }
    }

    /// Whether `outstanding` more results, whatever they turn out to be (a vote for any
    /// answer, or a failure that is not counted), can no longer change the winner or the
    /// reached/not-reached verdict.
    pub fn is_settled(&self, outstanding: usize, threshold: f64) -> bool {
        if outstanding == 0 {
            return true;
        }
        let ranked = self.ranked();
        let lead = ranked.first().map_or(0, |(_, v)| v.0);
        let second = ranked.get(1).map_or(0, |(_, v)| v.0);
        // Strictly ahead even if every outstanding vote goes to the runner-up (or to a new
        // answer): ties could flip on voter order, so they do not count as settled.
        if lead == 0 || lead <= second + outstanding {
            return false;
        }
        let (c, r) = (self.counted as f64, outstanding as f64);
        let worst = lead as f64 / (c + r);
        let best = (lead as f64 + r) / (c + r);
        (worst >= threshold) == (best >= threshold)
    }
}

/// Counts the successful results' answers, using each result's `question_index` as its
/// voter index.
pub fn majority_vote(results: &[AgentResult], threshold: f64) -> Vote {
    let mut t = Tally::default();
    for r in results {
        if let (Outcome::Ok, Some(a)) = (r.outcome, &r.answer) {
            t.add(r.question_index, a);
        }
    }
    t.vote(threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(i: usize, a: &str) -> AgentResult {
        AgentResult::test_ok(i, a)
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize_answer("  Paris. "), "paris");
        assert_eq!(
            normalize_answer("The   Capital\tIS\nParis!?"),
            "the capital is paris"
        );
        assert_eq!(normalize_answer("ÉCOLE"), "école");
        assert_eq!(normalize_answer("..."), "");
        assert_eq!(normalize_answer("3.14"), "3.14");
    }

    #[test]
    fn five_different_answers_are_twenty_percent_not_reached() {
        let r: Vec<_> = (0..5)
            .map(|i| ok(i, &format!("Agent {i} answer")))
            .collect();
        let v = majority_vote(&r, 0.6);
        assert_eq!((v.votes, v.counted), (1, 5));
        assert!((v.confidence - 0.2).abs() < 1e-12);
        assert!(!v.reached);
        // Tie between five: the lowest voter wins, deterministically.
        assert_eq!(v.answer.as_deref(), Some("Agent 0 answer"));
    }

    #[test]
    fn threshold_reached_and_normalised_votes_merge() {
        let r = vec![
            ok(0, "Paris"),
            ok(1, "paris."),
            ok(2, " PARIS"),
            ok(3, "Lyon"),
            ok(4, "Nice"),
        ];
        let v = majority_vote(&r, 0.6);
        assert_eq!(v.answer.as_deref(), Some("Paris"));
        assert_eq!((v.votes, v.counted), (3, 5));
        assert!(v.reached);
        assert!(!majority_vote(&r, 0.61).reached);
    }

    #[test]
    fn ties_break_on_lowest_voter_whatever_the_order() {
        let a = vec![ok(3, "b"), ok(2, "a"), ok(1, "b"), ok(0, "a")];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(majority_vote(&a, 0.5).answer.as_deref(), Some("a"));
        assert_eq!(majority_vote(&b, 0.5).answer.as_deref(), Some("a"));
    }

    #[test]
    fn failures_are_not_counted_and_all_failed_is_no_answer() {
        let mut r = vec![ok(0, "x"), AgentResult::test_failed(1), ok(2, "x")];
        let v = majority_vote(&r, 1.0);
        assert_eq!((v.votes, v.counted), (2, 2));
        assert!(v.reached);
        r = vec![AgentResult::test_failed(0), AgentResult::test_failed(1)];
        let v = majority_vote(&r, 0.0);
        assert_eq!((v.answer, v.counted, v.reached), (None, 0, false));
        assert_eq!(v.confidence, 0.0);
    }

    #[test]
    fn dedup_keeps_first_of_each_answer_and_all_failures() {
        let r = vec![
            ok(0, "A"),
            ok(1, "a."),
            AgentResult::test_failed(2),
            ok(3, "b"),
            AgentResult::test_failed(4),
        ];
        let d = deduplicate(r);
        let idx: Vec<_> = d.iter().map(|r| r.question_index).collect();
        assert_eq!(idx, vec![0, 2, 3, 4]);
    }

    #[test]
    fn settled_only_when_no_outcome_can_change_the_verdict() {
        let mut t = Tally::default();
        t.add(0, "a");
        t.add(1, "a");
        t.add(2, "a");
        // 3 of 3 with 2 outstanding: worst 3/5 = 0.6, best 5/5: settled at 0.6.
        assert!(t.is_settled(2, 0.6));
        // At 0.7 the worst case (3/5) would flip the verdict.
        assert!(!t.is_settled(2, 0.7));
        // Lead 3 vs 0 with 3 outstanding: a tie is possible, not settled.
        assert!(!t.is_settled(3, 0.1));
        let empty = Tally::default();
        assert!(!empty.is_settled(1, 0.5));
        assert!(empty.is_settled(0, 0.5));
    }
}
