//! Agent pools: several agents (e.g. one per model or endpoint), each serving one call at a
//! time; work goes to whichever is free.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::agent::Agent;
use crate::config::ParallelConfig;
use crate::error::{Error, Result};
use crate::executor::ParallelAgentExecutor;
use crate::result::AgentResult;

struct Member {
    agent: Arc<dyn Agent>,
    busy: Arc<Semaphore>,
}

/// The members of a pool and who is busy. Used by the executor; see [`AgentPool`].
pub(crate) struct Members {
    members: Vec<Member>,
    released: Notify,
    /// Where the next scan for a free member starts, so work spreads over the pool.
    cursor: AtomicUsize,
}

/// A pool member reserved for one call; frees the member when dropped.
pub(crate) struct Lease<'a> {
    pub(crate) index: usize,
    pub(crate) agent: &'a Arc<dyn Agent>,
    permit: Option<OwnedSemaphorePermit>,
    released: &'a Notify,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // Free the member *before* waking a waiter: fields drop after this body, and a
        // waiter that re-scanned too early would sleep with no wake-up left to come.
        drop(self.permit.take());
        self.released.notify_one();
    }
}

impl Members {
    pub(crate) fn new(agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
        if agents.is_empty() {
            return Err(Error::InvalidArgument(
                "a pool needs at least one agent".into(),
            ));
        }
        Ok(Self {
            members: agents
                .into_iter()
                .map(|agent| Member {
                    agent,
                    busy: Arc::new(Semaphore::new(1)),
                })
                .collect(),
            released: Notify::new(),
            cursor: AtomicUsize::new(0),
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Every member's agent, in member order.
    pub(crate) fn agents(&self) -> impl Iterator<Item = &Arc<dyn Agent>> {
        self.members.iter().map(|m| &m.agent)
    }

    fn lease(&self, index: usize, permit: OwnedSemaphorePermit) -> Lease<'_> {
        Lease {
            index,
            agent: &self.members[index].agent,
            permit: Some(permit),
            released: &self.released,
        }
    }

    /// Waits for any free member.
    pub(crate) async fn acquire_any(&self) -> Lease<'_> {
        let n = self.members.len();
        loop {
            let notified = self.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let start = self.cursor.fetch_add(1, Ordering::Relaxed);
            for k in 0..n {
                let i = (start + k) % n;
                if let Ok(p) = Arc::clone(&self.members[i].busy).try_acquire_owned() {
                    return self.lease(i, p);
                }
            }
            notified.await;
        }
    }

    /// Waits for member `index` (consensus asks distinct members).
    pub(crate) async fn acquire(&self, index: usize) -> Lease<'_> {
        let i = index % self.members.len();
        let p = Arc::clone(&self.members[i].busy)
            .acquire_owned()
            .await
            .expect("member semaphores are never closed");
        self.lease(i, p)
    }
}

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
