//! A mock agent for demos, tests and benchmarks: latency, jitter, injected faults, and
//! answers that either name the agent (the seed's format) or vote among weighted candidates.
//!
//! Every random draw is seeded from `(seed, question, agent_id, retry count)`, so a batch
//! behaves the same from run to run whatever order its calls are scheduled in.

use std::time::Duration;

use dashmap::DashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Agent, AgentError, Answer, BoxFuture};

/// What a [`MockAgent`] answers.
#[derive(Clone, Debug, PartialEq)]
pub enum MockAnswers {
    /// `Agent {agent_id} answer for '{question}'`, as in the seed: every agent differs.
    Template,
    /// One of these answers, drawn with probability proportional to its weight.
    Vote(Vec<(String, f64)>),
}

/// How a [`MockAgent`] behaves. Rates are probabilities per call in `[0, 1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct MockOptions {
    /// Base latency of each call.
    pub latency: Duration,
    /// Each call's latency is drawn uniformly from `latency ± jitter` (never below zero).
    pub jitter: Duration,
    /// Probability that a call fails with a retryable error.
    pub failure_rate: f64,
    /// Probability that a call never returns (to exercise timeouts).
    pub hang_rate: f64,
    /// Probability that a call panics (to exercise panic containment).
    pub panic_rate: f64,
    /// Seed of every draw.
    pub seed: u64,
    /// What it answers.
    pub answers: MockAnswers,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(100),
            jitter: Duration::ZERO,
            failure_rate: 0.0,
            hang_rate: 0.0,
            panic_rate: 0.0,
            seed: 42,
            answers: MockAnswers::Template,
        }
    }
}

impl MockOptions {
    /// Checks rates and weights; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("failure_rate", self.failure_rate),
            ("hang_rate", self.hang_rate),
            ("panic_rate", self.panic_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("invalid {name}: {rate} is not in [0, 1]"));
            }
        }
        if self.latency + self.jitter > crate::config::MAX_DURATION {
            return Err("invalid latency: latency + jitter exceeds 30 days".into());
        }
        if let MockAnswers::Vote(c) = &self.answers {
            if c.is_empty() {
                return Err("invalid vote answers: need at least one candidate".into());
            }
            if c.iter().any(|(_, w)| !w.is_finite() || *w < 0.0) {
                return Err("invalid vote weights: each must be finite and >= 0".into());
            }
            if c.iter().map(|(_, w)| w).sum::<f64>() <= 0.0 {
                return Err("invalid vote weights: they must not all be zero".into());
            }
        }
        Ok(())
    }
}

/// The mock agent. See [`MockOptions`].
#[derive(Debug)]
pub struct MockAgent {
    opts: MockOptions,
    /// Failed or hung calls per (question, agent_id), so that a retry draws afresh while a
    /// first attempt stays reproducible. Entries leave on success, so it stays small.
    retries: DashMap<(u64, usize), u64>,
}

impl MockAgent {
    /// A mock agent; fails with [`Error::InvalidArgument`](crate::Error) naming the field
    /// if the options are out of range.
    pub fn new(opts: MockOptions) -> Result<Self, crate::Error> {
        opts.validate().map_err(crate::Error::InvalidArgument)?;
        Ok(Self {
            opts,
            retries: DashMap::new(),
        })
    }

    /// The options it was made with.
    pub fn options(&self) -> &MockOptions {
        &self.opts
    }

    fn faults_possible(&self) -> bool {
        self.opts.failure_rate > 0.0 || self.opts.hang_rate > 0.0
    }
}

/// FNV-1a: a stable hash, so draws do not change with the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

enum Fault {
    /// Answers this.
    None(String),
    Fail,
    Hang,
    Panic,
}

impl Agent for MockAgent {
    fn fingerprint(&self) -> String {
        // Latency and jitter change when an answer comes, not what it is.
        let o = &self.opts;
        format!(
            "mock answers={:?} failure_rate={} hang_rate={} panic_rate={} seed={}",
            o.answers, o.failure_rate, o.hang_rate, o.panic_rate, o.seed
        )
    }

    fn answer<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<String, AgentError>> {
        let (latency, fault) = self.draw(question, agent_id);
        Box::pin(respond(latency, fault, agent_id))
    }

    // Written out so the executor's call costs one small allocation, not a box in a box.
    fn answer_with_usage<'a>(
        &'a self,
        question: &'a str,
        agent_id: usize,
    ) -> BoxFuture<'a, Result<Answer, AgentError>> {
        let (latency, fault) = self.draw(question, agent_id);
        Box::pin(async move {
            respond(latency, fault, agent_id)
                .await
                .map(|text| Answer { text, usage: None })
        })
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}

impl MockAgent {
    /// Everything about one call, drawn up front: the future then holds only its sleep
    /// and its outcome (it is part of the memory of every call in flight).
    fn draw(&self, question: &str, agent_id: usize) -> (Duration, Fault) {
        let qh = fnv1a(question.as_bytes());
        let key = (qh, agent_id);
        let retry = if self.faults_possible() {
            self.retries.get(&key).map(|v| *v).unwrap_or(0)
        } else {
            0
        };
        let mut rng = SmallRng::seed_from_u64(
            self.opts.seed
                ^ qh.rotate_left(17)
                ^ (agent_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                ^ retry.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
        );
        let latency = draw_latency(&mut rng, self.opts.latency, self.opts.jitter);
        let answer = match &self.opts.answers {
            MockAnswers::Template => format!("Agent {agent_id} answer for '{question}'"),
            MockAnswers::Vote(c) => pick_weighted(&mut rng, c).to_owned(),
        };
        let roll: f64 = rng.random();
        let fault = if roll < self.opts.failure_rate {
            Fault::Fail
        } else if roll < self.opts.failure_rate + self.opts.hang_rate {
            Fault::Hang
        } else if roll < self.opts.failure_rate + self.opts.hang_rate + self.opts.panic_rate {
            Fault::Panic
        } else {
            Fault::None(answer)
        };
        if matches!(fault, Fault::Fail | Fault::Hang) {
            *self.retries.entry(key).or_insert(0) += 1;
        } else if retry > 0 {
            self.retries.remove(&key);
        }
        (latency, fault)
    }
}

/// Waits out the call's latency, then gives its outcome.
async fn respond(latency: Duration, fault: Fault, agent_id: usize) -> Result<String, AgentError> {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Fault::None(answer) => Ok(answer),
        Fault::Fail => Err(AgentError::retryable(format!(
            "mock failure (injected) for agent {agent_id}"
        ))),
        Fault::Hang => std::future::pending().await,
        Fault::Panic => panic!("mock panic (injected) for agent {agent_id}"),
    }
}

fn draw_latency(rng: &mut SmallRng, base: Duration, jitter: Duration) -> Duration {
    if jitter.is_zero() {
        return base;
    }
    let j = jitter.as_secs_f64();
    let s = base.as_secs_f64() + rng.random_range(-j..=j);
    Duration::from_secs_f64(s.max(0.0))
}

fn pick_weighted<'c>(rng: &mut SmallRng, candidates: &'c [(String, f64)]) -> &'c str {
    let total: f64 = candidates.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (a, w) in candidates {
        if x < *w {
            return a;
        }
        x -= w;
    }
    // Rounding can leave x a hair above the last weight.
    &candidates
        .iter()
        .rev()
        .find(|(_, w)| *w > 0.0)
        .unwrap_or(&candidates[0])
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn template_answer_names_agent_and_question() {
        let a = MockAgent::new(MockOptions {
            latency: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
        let got = block(a.answer("What is 2 + 2?", 3)).unwrap();
        assert_eq!(got, "Agent 3 answer for 'What is 2 + 2?'");
    }

    #[test]
    fn vote_mode_is_reproducible_and_follows_weights() {
        let opts = MockOptions {
            latency: Duration::ZERO,
            answers: MockAnswers::Vote(vec![("Paris".into(), 0.8), ("Lyon".into(), 0.2)]),
            ..Default::default()
        };
        let a = MockAgent::new(opts.clone()).unwrap();
        let b = MockAgent::new(opts).unwrap();
        let mut paris = 0;
        for id in 0..1000 {
            let x = block(a.answer("capital?", id)).unwrap();
            assert_eq!(x, block(b.answer("capital?", id)).unwrap());
            paris += usize::from(x == "Paris");
        }
        assert!((700..=900).contains(&paris), "paris = {paris}");
    }

    #[test]
    fn bad_options_are_rejected() {
        for o in [
            MockOptions {
                failure_rate: 1.5,
                ..Default::default()
            },
            MockOptions {
                hang_rate: f64::NAN,
                ..Default::default()
            },
            MockOptions {
                answers: MockAnswers::Vote(vec![]),
                ..Default::default()
            },
            MockOptions {
                answers: MockAnswers::Vote(vec![("a".into(), 0.0)]),
                ..Default::default()
            },
        ] {
            assert!(MockAgent::new(o).is_err());
        }
    }

    #[test]
    fn a_retry_draws_afresh() {
        let a = MockAgent::new(MockOptions {
            latency: Duration::ZERO,
            failure_rate: 0.5,
            ..Default::default()
        })
        .unwrap();
        // Some question fails first and later succeeds: retries are not doomed to repeat.
        let recovered = (0..50).any(|id| {
            block(a.answer("q", id)).is_err() && (0..20).any(|_| block(a.answer("q", id)).is_ok())
        });
        assert!(recovered);
    }
}
