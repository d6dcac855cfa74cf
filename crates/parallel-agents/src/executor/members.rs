//! Pool members: several agents (e.g. one per model or endpoint), each serving one call at
//! a time. A call leases any free member, or a consensus voter its own; the lease frees the
//! member when the call ends. The public face of a pool is [`crate::pool::AgentPool`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::agent::Agent;
use crate::error::{Error, Result};

/// One agent and whether it is serving a call.
struct Member {
    agent: Arc<dyn Agent>,
    busy: Arc<Semaphore>,
}

/// The members of a pool and who is busy.
pub(super) struct Members {
    members: Vec<Member>,
    released: Notify,
    /// Where the next scan for a free member starts, so work spreads over the pool.
    cursor: AtomicUsize,
}

/// A pool member reserved for one call; frees the member when dropped.
pub(super) struct Lease<'a> {
    pub(super) index: usize,
    pub(super) agent: &'a Arc<dyn Agent>,
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
    pub(super) fn new(agents: Vec<Arc<dyn Agent>>) -> Result<Self> {
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

    pub(super) fn len(&self) -> usize {
        self.members.len()
    }

    /// Every member's agent, in member order.
    pub(super) fn agents(&self) -> impl Iterator<Item = &Arc<dyn Agent>> {
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
    pub(super) async fn acquire_any(&self) -> Lease<'_> {
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
    pub(super) async fn acquire(&self, index: usize) -> Lease<'_> {
        let i = index % self.members.len();
        let p = Arc::clone(&self.members[i].busy)
            .acquire_owned()
            .await
            .expect("member semaphores are never closed");
        self.lease(i, p)
    }
}
