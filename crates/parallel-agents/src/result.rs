//! [`AgentResult`]: what one call produced, and how it ended.

use std::sync::Arc;
use std::time::Duration;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The agent answered.
    Ok,
    /// The agent returned an error (after any retries), or panicked.
    Failed,
    /// The last attempt ran past `agent_timeout`.
    TimedOut,
    /// The call was cancelled (batch cancel, error budget, consensus early stop, shutdown)
    /// or never started because of that.
    Cancelled,
}

impl Outcome {
    /// Lower-case name, as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The result of one call.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentResult {
    /// The question's id: the one the host gave it (`submit_with_ids`), else its index
    /// in decimal. Unique within a batch.
    pub id: Arc<str>,
    /// Logical agent slot: question index (single agent), voter index (consensus) or pool
    /// member index (pool).
    pub agent_id: usize,
    /// Position of the question in the batch (voter index in a consensus round).
    pub question_index: usize,
    /// The question asked.
    pub question: Arc<str>,
    /// The answer, when `outcome` is `Ok`.
    pub answer: Option<String>,
    /// `outcome == Outcome::Ok`, kept for the seed's API.
    pub success: bool,
    /// Why it did not succeed, when it did not.
    pub error: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// From the first attempt's start to the end, backoff included; zero if never started.
    pub duration: Duration,
    /// Attempts made (0 if it never started).
    pub attempts: u32,
    /// Whether a straggler hedge (a duplicate call) was started for it.
    pub hedged: bool,
    /// Whether the hedge answered first.
    pub hedge_won: bool,
    /// Tokens the answering call used, for agents that report it.
    pub usage: Option<crate::agent::TokenUsage>,
    /// Whether a rerun could succeed: a failure the agent called retryable (429, 5xx,
    /// connection errors, ...) or a timeout. Always false for `Ok`.
    pub retryable: bool,
    /// Whether this result was read back from the journal instead of running the agent
    /// (see [`crate::config::JournalConfig`]).
    pub replayed: bool,
}

impl AgentResult {
    /// A result for a call that never started.
    pub fn not_started(index: usize, question: Arc<str>, why: &str) -> Self {
        Self {
            id: Arc::from(index.to_string()),
            agent_id: index,
            question_index: index,
            question,
            answer: None,
            success: false,
            error: Some(why.to_owned()),
            outcome: Outcome::Cancelled,
            duration: Duration::ZERO,
            attempts: 0,
            hedged: false,
            hedge_won: false,
            usage: None,
            retryable: false,
            replayed: false,
        }
    }

    #[cfg(test)]
    pub(crate) fn test_ok(index: usize, answer: &str) -> Self {
        Self {
            answer: Some(answer.to_owned()),
            success: true,
            error: None,
            outcome: Outcome::Ok,
            attempts: 1,
            duration: Duration::from_millis(1),
            ..Self::not_started(index, Arc::from("q"), "")
        }
    }

    #[cfg(test)]
    pub(crate) fn test_failed(index: usize) -> Self {
        Self {
            outcome: Outcome::Failed,
            error: Some("boom".into()),
            attempts: 1,
            duration: Duration::from_millis(1),
            ..Self::not_started(index, Arc::from("q"), "")
        }
    }
}
