//! # parallel-agents
//!
//! Run many AI-agent calls at once — bounded concurrency, per-call timeouts, retries,
//! rate limits, streaming, deduplication, consensus voting and honest metrics — from Rust
//! or, through the C ABI of the `parallel-agents-ffi` crate, from C, C++, Go and anything
//! with a C FFI.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use parallel_agents::{MockAgent, MockOptions, ParallelAgentExecutor, ParallelConfig};
//!
//! let agent = Arc::new(MockAgent::new(MockOptions {
//!     latency: Duration::from_millis(5),
//!     ..Default::default()
//! }).unwrap());
//! let exec = ParallelAgentExecutor::new(ParallelConfig::default(), agent).unwrap();
//! let results = parallel_agents::runtime::block_on(
//!     "example",
//!     exec.execute_parallel(vec!["What is 2 + 2?".into(), "Who wrote Hamlet?".into()]),
//! ).unwrap().unwrap();
//! assert!(results.iter().all(|r| r.success));
//! assert_eq!(results[1].answer.as_deref(), Some("Agent 1 answer for 'Who wrote Hamlet?'"));
//! ```
//!
//! Every executor runs on one global Tokio runtime ([`runtime`]), started on first use;
//! the async methods may be awaited from any runtime or executor.

pub mod agent;
pub mod aggregate;
pub mod config;
pub mod error;
pub mod executor;
pub mod journal;
pub mod metrics;
pub mod pool;
pub mod ratelimit;
pub mod result;
pub mod runtime;
pub mod shared_batch;
mod sync;

pub use agent::mock::MockAnswers;
pub use agent::{
    Agent, AgentError, Answer, BoxFuture, CallbackAgent, MockAgent, MockOptions, TokenUsage,
};
pub use aggregate::{deduplicate, majority_vote, normalize_answer, Vote};
pub use config::{ConfigError, JournalConfig, ParallelConfig, RateLimit, RetryPolicy};
pub use error::{panic_message, Error, Result};
pub use executor::{Batch, BatchProbe, ConsensusResult, ParallelAgentExecutor};
pub use metrics::{ExecutionMetrics, MetricsRecorder};
pub use pool::AgentPool;
pub use ratelimit::RateLimiter;
pub use result::{AgentResult, Outcome};

/// Compiles and runs the README's Rust examples as doctests.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
