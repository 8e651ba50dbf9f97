//! The pipeline cases' doubles: a recording sink that can fail, reject and be slow, and an
//! audit log that notes the order in which events arrive.

use async_trait::async_trait;
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, Delivery, EncodedEvent,
    EventId, EventSink, Page, PageRequest, StoreError, StoreResult, TenantId, Timestamp,
};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A sink that passes messages on and records, in order, those its inner sink published; it can
/// fail its first publishes as a whole, reject chosen events, and be slow.
pub(super) struct Recorder {
    inner: Arc<dyn EventSink>,
    /// Published messages, in the order their publishes returned.
    pub(super) seen: Mutex<Vec<EncodedEvent>>,
    pub(super) fail_next: AtomicU32,
    /// Events rejected (each costs one of its count) instead of passed on.
    pub(super) reject: Mutex<HashMap<EventId, u32>>,
    delay: Duration,
}

impl Recorder {
    pub(super) fn new(inner: Arc<dyn EventSink>) -> Arc<Self> {
        Self::slow(inner, Duration::ZERO)
    }

    pub(super) fn slow(inner: Arc<dyn EventSink>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: Mutex::new(Vec::new()),
            fail_next: AtomicU32::new(0),
            reject: Mutex::new(HashMap::new()),
            delay,
        })
    }

    /// Published events, first delivery of each id only, decoded.
    pub(super) fn first_deliveries(&self) -> Result<Vec<AuditEvent>, String> {
        let mut ids = HashSet::new();
        self.seen
            .lock()
            .iter()
            .filter(|m| ids.insert(m.id))
            .map(EncodedEvent::decode)
            .collect()
    }
}

#[async_trait]
impl EventSink for Recorder {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected sink failure".into()));
        }
        // Rejections follow the sink contract: later events of the key are held back.
        let mut out = vec![Delivery::Held; batch.len()];
        let mut passed = Vec::new();
        let mut stopped = HashSet::new();
        {
            let mut reject = self.reject.lock();
            for (i, m) in batch.iter().enumerate() {
                if stopped.contains(&m.order_key()) {
                    continue;
                }
                match reject.get_mut(&m.id).filter(|n| **n > 0) {
                    Some(n) => {
                        *n -= 1;
                        out[i] = Delivery::Rejected("injected rejection".into());
                        stopped.insert(m.order_key());
                    }
                    None => passed.push(i),
                }
            }
        }
        let through: Vec<EncodedEvent> = passed.iter().map(|&i| batch[i].clone()).collect();
        let deliveries = self.inner.publish(&through).await?;
        let mut seen = self.seen.lock();
        for (i, d) in passed.into_iter().zip(deliveries) {
            if d == Delivery::Published {
                seen.push(batch[i].clone());
            }
            out[i] = d;
        }
        Ok(out)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.inner.delivery_timeout()
    }
}

/// An audit log that notes the order in which event ids arrive.
pub(super) struct Witness {
    inner: Arc<dyn AuditLog>,
    pub(super) arrivals: Mutex<Vec<EventId>>,
}

impl Witness {
    pub(super) fn new(inner: Arc<dyn AuditLog>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            arrivals: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl AuditLog for Witness {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let outcome = self.inner.append_batch(events).await?;
        self.arrivals.lock().extend(ids);
        Ok(outcome)
    }
    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        self.inner.get(tenant, id).await
    }
    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.inner.query(tenant, query, page).await
    }
    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        self.inner.count(tenant, query).await
    }
    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        self.inner.purge_before(before, category, limit).await
    }
}
