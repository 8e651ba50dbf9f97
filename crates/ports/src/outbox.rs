//! The transactional outbox (relay-facing side) and the sink events are published to.

use crate::{AuditEvent, EventId, StoreResult, Timestamp};
use async_trait::async_trait;
use std::time::Duration;

/// A pending outbox row handed to a relay by [`Outbox::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The event to publish (its id identifies the row).
    pub event: AuditEvent,
    /// When the row was enqueued (store clock).
    pub enqueued_at: Timestamp,
    /// How many times the row has been claimed, this claim included.
    pub attempts: u32,
}

/// Relay-facing side of the outbox. Rows are enqueued by the stores themselves, inside the
/// same transaction (or lock) as the change they describe.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Hands out up to `batch` pending rows, oldest first, that no live claim holds; they stay
    /// held for `lease` (store clock) unless acked or released.
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Vec<OutboxRecord>>;
    /// Marks rows published; returns how many were pending. Acking twice is harmless.
    async fn ack(&self, ids: &[EventId]) -> StoreResult<u64>;
    /// Gives claimed rows back before their lease ends; returns how many were released.
    async fn release(&self, ids: &[EventId]) -> StoreResult<u64>;
    /// Number of rows not yet published.
    async fn depth(&self) -> StoreResult<u64>;
    /// Age of the oldest unpublished row, if any.
    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>>;
    /// Deletes published rows acked before `before`; returns how many.
    async fn purge_published(&self, before: Timestamp) -> StoreResult<u64>;
}

/// Where the relay publishes events: directly into an `AuditStore`, or a Kafka topic.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Returns only once the whole batch is durable downstream. Consumers deduplicate by event
    /// id, so publishing a batch twice is harmless.
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()>;
}

/// The sink of deployments without Kafka: publishing materializes the batch straight into an
/// [`AuditStore`](crate::AuditStore) with its idempotent `append_batch`.
pub struct DirectSink {
    audit: std::sync::Arc<dyn crate::AuditStore>,
}

impl DirectSink {
    /// A sink writing into `audit`.
    pub fn new(audit: std::sync::Arc<dyn crate::AuditStore>) -> Self {
        Self { audit }
    }
}

#[async_trait]
impl EventSink for DirectSink {
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()> {
        self.audit.append_batch(batch.to_vec()).await.map(|_| ())
    }
}
