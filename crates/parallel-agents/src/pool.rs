//! Agent pools: several agents (e.g. one per model or endpoint), each serving one call at a
//! time; work goes to whichever is free. A pool is an executor over its members (see
//! [`ParallelAgentExecutor::new_pool`]); how calls lease members is the executor's business.

use std::sync::Arc;

use crate::agent::Agent;
use crate::config::ParallelConfig;
use crate::error::Result;
use crate::executor::ParallelAgentExecutor;
use crate::result::AgentResult;

/// The seed's agent pool: a fixed set of agents behind one executor. Each member serves
/// one call at a time, so at most `min(size, max_concurrency)` calls run at once.
pub struct AgentPool {
    executor: ParallelAgentExecutor,
}

impl AgentPool {
    /// A pool of the given agents.
    pub fn new(agents: Vec<Arc<dyn Agent>>, config: ParallelConfig) -> Result<Self> {
        Ok(Self {
            executor: ParallelAgentExecutor::new_pool(config, agents)?,
        })
    }

    /// Pool size.
    pub fn size(&self) -> usize {
        self.executor.pool_size()
    }

    /// Answers every question; results in question order, `agent_id` = the member that
    /// answered.
    pub async fn execute_batch(&self, questions: Vec<String>) -> Result<Vec<AgentResult>> {
        self.executor.execute_parallel(questions).await
    }

    /// The executor behind the pool (consensus, streaming, metrics).
    pub fn executor(&self) -> &ParallelAgentExecutor {
        &self.executor
    }
}
