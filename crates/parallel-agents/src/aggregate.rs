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
    /// Answers counted: successful results whose normalised answer is not empty. An empty
    /// or whitespace/punctuation-only answer says nothing, so it is no vote.
    pub counted: usize,
    /// `votes / counted`, 0 when nothing was counted.
    pub confidence: f64,
    /// Whether `confidence >= threshold` (never with zero answers counted).
    pub reached: bool,
    /// Votes per normalised answer, most first (ties in winner order).
    pub tally: Vec<(String, usize)>,
}

/// One distinct normalised answer in a [`Tally`].
#[derive(Debug)]
struct Entry {
    votes: usize,
    /// Lowest voter index that gave this answer (the tie-break).
    first: usize,
    /// The answer as that voter wrote it.
    text: String,
}

impl Entry {
    /// Whether this entry ranks above `other`: more votes, or as many from a lower voter.
    fn beats(&self, other: &Entry) -> bool {
        (self.votes, std::cmp::Reverse(self.first)) > (other.votes, std::cmp::Reverse(other.first))
    }
}

/// Running tally of normalised answers; ties go to the answer whose first vote came from
/// the lowest voter index, so the winner never depends on completion order.
///
/// A vote costs O(1) amortised (plus normalising its text): the leader and the best
/// runner-up count are kept up to date as votes arrive, because a round asks for the
/// verdict after every result.
#[derive(Default, Debug)]
pub struct Tally {
    /// normalised answer -> its entry
    entries: HashMap<String, Entry>,
    counted: usize,
    /// Key of the leading entry.
    leader: Option<String>,
    /// Most votes of any entry other than the leader.
    second: usize,
}

impl Tally {
    /// Counts one answer from voter `index`. An answer that normalises to nothing (empty,
    /// whitespace or punctuation only) is not a vote and is not counted.
    pub fn add(&mut self, index: usize, answer: &str) {
        let key = normalize_answer(answer);
        if key.is_empty() {
            return;
        }
        self.counted += 1;
        let votes = match self.entries.get_mut(&key) {
            Some(e) => {
                e.votes += 1;
                if index < e.first {
                    e.first = index;
                    e.text = answer.to_owned();
                }
                e.votes
            }
            None => {
                let e = Entry {
                    votes: 1,
                    first: index,
                    text: answer.to_owned(),
                };
                self.entries.insert(key.clone(), e);
                1
            }
        };
        // Votes only grow, so only the entry just voted for can overtake the leader; if it
        // does, the old leader (which had the most votes of the rest) becomes runner-up.
        match &self.leader {
            Some(l) if *l == key => {}
            Some(l) => {
                let (e, lead) = (&self.entries[&key], &self.entries[l]);
                if e.beats(lead) {
                    self.second = lead.votes;
                    self.leader = Some(key);
                } else {
                    self.second = self.second.max(votes);
                }
            }
            None => self.leader = Some(key),
        }
    }

    /// Answers counted so far.
    pub fn counted(&self) -> usize {
        self.counted
    }

    fn lead(&self) -> Option<&Entry> {
        self.leader.as_ref().map(|k| &self.entries[k])
    }

    /// The verdict so far, with the full tally (sorted: O(k log k) in distinct answers,
    /// so ask for it once, at the end; [`is_settled`](Self::is_settled) is the cheap check).
    pub fn vote(&self, threshold: f64) -> Vote {
        let mut ranked: Vec<_> = self.entries.iter().collect();
        ranked.sort_by(|a, b| b.1.votes.cmp(&a.1.votes).then(a.1.first.cmp(&b.1.first)));
        let tally = ranked
            .iter()
            .map(|(k, e)| ((*k).clone(), e.votes))
            .collect();
        match self.lead() {
            None => Vote {
                answer: None,
                votes: 0,
                counted: 0,
                confidence: 0.0,
                reached: false,
                tally,
            },
            Some(e) => {
                let confidence = e.votes as f64 / self.counted as f64;
                Vote {
                    answer: Some(e.text.clone()),
                    votes: e.votes,
                    counted: self.counted,
                    confidence,
                    reached: confidence >= threshold,
                    tally,
                }
            }
        }
    }

    /// Whether `outstanding` more results, whatever they turn out to be (a vote for any
    /// answer, or a failure or empty answer that is not counted), can no longer change
    /// the winner or the reached/not-reached verdict. O(1).
    pub fn is_settled(&self, outstanding: usize, threshold: f64) -> bool {
        if outstanding == 0 {
            return true;
        }
        let lead = self.lead().map_or(0, |e| e.votes);
        let second = self.second;
        // Strictly ahead even if every outstanding vote goes to the runner-up (or to a new
        // answer): ties could flip on voter order, so they do not count as settled.
        if lead == 0 || lead <= second.saturating_add(outstanding) {
            return false;
        }
        let (c, r) = (self.counted as f64, outstanding as f64);
        let worst = lead as f64 / (c + r);
        let best = (lead as f64 + r) / (c + r);
        (worst >= threshold) == (best >= threshold)
    }
}

/// Counts the successful results' non-empty answers, using each result's `question_index`
/// as its voter index.
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

    #[test]
    fn empty_answers_are_not_votes() {
        let r: Vec<_> = ["", "  ", "\t\n", "...", ""]
            .iter()
            .enumerate()
            .map(|(i, a)| ok(i, a))
            .collect();
        let v = majority_vote(&r, 0.6);
        assert_eq!(
            (v.answer, v.votes, v.counted, v.reached),
            (None, 0, 0, false)
        );
        assert!(v.tally.is_empty());
        // Beside real answers they do not dilute the confidence either.
        let r = vec![
            ok(0, ""),
            ok(1, "Paris"),
            ok(2, " "),
            ok(3, "paris"),
            ok(4, "Lyon"),
        ];
        let v = majority_vote(&r, 0.6);
        assert_eq!(v.answer.as_deref(), Some("Paris"));
        assert_eq!((v.votes, v.counted), (2, 3));
        assert!(v.reached);
    }

    /// The verdict and settledness the way they were computed before the running leader:
    /// by ranking every entry.
    fn reference(
        votes: &[(usize, usize)],
        outstanding: usize,
        threshold: f64,
    ) -> (Option<usize>, bool) {
        let mut m: HashMap<usize, (usize, usize)> = HashMap::new();
        for &(i, a) in votes {
            let e = m.entry(a).or_insert((0, i));
            e.0 += 1;
            e.1 = e.1.min(i);
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
        let lead = v.first().map_or(0, |x| x.1 .0);
        let second = v.get(1).map_or(0, |x| x.1 .0);
        let settled = outstanding == 0
            || (lead > 0 && lead > second + outstanding && {
                let (c, r) = (votes.len() as f64, outstanding as f64);
                (lead as f64 / (c + r) >= threshold) == ((lead as f64 + r) / (c + r) >= threshold)
            });
        (v.first().map(|x| x.0), settled)
    }

    #[test]
    fn running_leader_agrees_with_ranking_everything() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for round in 0..300 {
            let n = rng.random_range(1..40);
            let kinds = rng.random_range(1..6);
            let mut order: Vec<usize> = (0..n).collect();
            // Completion order is not voter order.
            for i in (1..n).rev() {
                order.swap(i, rng.random_range(0..=i));
            }
            let threshold = [0.0, 0.3, 0.5, 0.6, 1.0][round % 5];
            let mut t = Tally::default();
            let mut seen = Vec::new();
            for (k, &i) in order.iter().enumerate() {
                let a = rng.random_range(0..kinds);
                t.add(i, &format!("answer {a}"));
                seen.push((i, a));
                let outstanding = n - k - 1;
                let (winner, settled) = reference(&seen, outstanding, threshold);
                let v = t.vote(threshold);
                assert_eq!(v.answer, winner.map(|a| format!("answer {a}")), "{seen:?}");
                assert_eq!(t.is_settled(outstanding, threshold), settled, "{seen:?}");
            }
        }
    }

    #[test]
    fn a_vote_costs_the_same_however_many_answers_differ() {
        // Ranking every entry on each vote made this quadratic (20,000 voters: 11.7 s in a
        // release build); with the running leader 200,000 take well under a second.
        let mut t = Tally::default();
        let start = std::time::Instant::now();
        for i in 0..200_000 {
            t.add(i, &format!("answer {i}"));
            let outstanding = 200_000 - i - 1;
            assert_eq!(t.is_settled(outstanding, 0.6), outstanding == 0);
        }
        assert_eq!(t.counted(), 200_000);
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    }
}
