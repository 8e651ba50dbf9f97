//! Maintenance job leases in process memory: one process is one instance, so this only keeps
//! two runners of one process (or two `Storage`s over one set of stores) apart.

use async_trait::async_trait;
use credo_ports::leases::{validate_lease, validate_names};
use credo_ports::{Clock, JobLeases, StoreResult, Timestamp};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// [`JobLeases`] in a map, timed by the stores' clock.
pub struct InMemoryLeases {
    clock: Arc<dyn Clock>,
    /// Job -> (holder, end of the lease).
    held: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl InMemoryLeases {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            held: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl JobLeases for InMemoryLeases {
    async fn acquire(&self, job: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        validate_lease(job, holder, ttl)?;
        let now = self.clock.now();
        let mut held = self.held.lock();
        if let Some((current, until)) = held.get(job)
            && current != holder
            && *until > now
        {
            return Ok(false);
        }
        held.insert(
            job.to_string(),
            (holder.to_string(), now.saturating_add(ttl)),
        );
        Ok(true)
    }

    async fn release(&self, job: &str, holder: &str) -> StoreResult<()> {
        validate_names(job, holder)?;
        let mut held = self.held.lock();
        if held.get(job).is_some_and(|(current, _)| current == holder) {
            held.remove(job);
        }
        Ok(())
    }
}
