//! The transactional outbox (relay-facing side), the sink events are published to, and the
//! source they are materialized from.
//!
//! ```text
//! record / store mutation ──(same transaction)──▶ Outbox ──claim──▶ relay ──▶ EventSink
//!                                                     ▲   ack / release / reject │
//!                                                     └──────────────────────────┘
//! EventSink = direct (writes the AuditLog)  or  Kafka topic ──▶ EventSource ──▶ consumer ──▶ AuditLog
//! ```

use crate::envelope::EncodedEvent;
use crate::page::{Page, PageRequest};
use crate::{EventId, StoreResult, Timestamp};
use async_trait::async_trait;
use std::num::NonZeroU32;
use std::time::Duration;

/// Identifies one claim. [`Outbox::ack`], [`Outbox::release`] and [`Outbox::reject`] act only on
/// rows this claim still holds, so a relay whose lease ran out can never confirm or give back
/// rows that another relay has claimed since.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub uuid::Uuid);

impl ClaimToken {
    /// A fresh random token.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

/// A pending outbox row handed to a relay by [`Outbox::claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// The encoded event, exactly as it was enqueued.
    pub message: EncodedEvent,
    /// When the row was enqueued (store clock).
    pub enqueued_at: Timestamp,
    /// How many times the row has been claimed, this claim included.
    pub attempts: u32,
    /// How many times a sink rejected it so far (see [`Outbox::reject`]).
    pub failures: u32,
}

/// Rows handed out by one [`Outbox::claim`], with the token that acts on them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The claim's token.
    pub token: ClaimToken,
    /// The rows, in enqueue order.
    pub records: Vec<OutboxRecord>,
}

/// What becomes of a row a sink rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Pending again once this delay has passed (store lease clock); until then it still holds
    /// back the later rows of its order key.
    RetryAfter(Duration),
    /// Set aside as a dead letter: no longer pending, listed by [`Outbox::dead_letters`], and
    /// no longer holding back the rows behind it.
    SetAside,
}

/// A row set aside after the sink kept rejecting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The encoded event, exactly as it was enqueued.
    pub message: EncodedEvent,
    /// When it was enqueued (store clock).
    pub enqueued_at: Timestamp,
    /// When it was set aside (store clock).
    pub failed_at: Timestamp,
    /// Rejections, the last included.
    pub failures: u32,
    /// The last rejection's reason.
    pub reason: String,
}

impl DeadLetter {
    /// Its position in [`Outbox::dead_letters`], ordered by `(enqueued_at, id)`.
    #[must_use]
    pub fn cursor(&self) -> crate::Cursor {
        crate::Cursor {
            at: self.enqueued_at,
            id: self.message.id.0,
        }
    }
}

/// Relay-facing side of the outbox. Rows are enqueued by the stores themselves, inside the
/// same transaction (or lock) as the change they describe.
///
/// **Order.** Every row has an order key (`tenant_id`, `subject_user_id`). A claim takes the
/// oldest `batch` pending rows that no live claim holds (the *candidates*) and hands out those
/// whose every earlier pending row of the same order key is a candidate too. So however many
/// relays claim at once, the rows of one key are held by at most one claim at a time and leave
/// in enqueue order.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Hands out pending rows as described above, oldest first; they stay held for `lease`
    /// unless acked, released or rejected. `InvalidInput` for a zero batch or lease.
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim>;
    /// Marks rows of `claim` published; returns how many it still held. Acking twice is
    /// harmless; rows another claim holds now are left alone.
    async fn ack(&self, claim: ClaimToken, ids: &[EventId]) -> StoreResult<u64>;
    /// Gives rows of `claim` back before their lease ends; returns how many it still held.
    async fn release(&self, claim: ClaimToken, ids: &[EventId]) -> StoreResult<u64>;
    /// Records that the sink rejected a row of `claim` for `reason` and disposes of it; returns
    /// whether the claim still held it.
    async fn reject(
        &self,
        claim: ClaimToken,
        id: EventId,
        reason: &str,
        then: Disposition,
    ) -> StoreResult<bool>;
    /// Number of rows not yet published nor set aside.
    async fn depth(&self) -> StoreResult<u64>;
    /// Age of the oldest row not yet published nor set aside, if any.
    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>>;
    /// Rows set aside, ordered by `(enqueued_at, id)`.
    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>>;
    /// Number of rows set aside.
    async fn dead_letter_count(&self) -> StoreResult<u64>;
    /// Makes dead letters pending again (failures cleared, enqueue position kept); returns how
    /// many were dead letters. Later events of the same key may already have been published.
    async fn requeue(&self, ids: &[EventId]) -> StoreResult<u64>;
    /// Deletes for good the dead letters among `ids` (an operator's decision after reading
    /// them: the event will never be published); returns how many were deleted. Rows that are
    /// not dead letters (pending, claimed, published) are left as they are.
    async fn purge_dead_letters(&self, ids: &[EventId]) -> StoreResult<u64>;
    /// Deletes at most `limit` published rows acked before `before`; returns how many, so
    /// fewer than `limit` means none is left. Pending rows and dead letters are kept.
    async fn purge_published(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64>;
}

/// What became of one message of a batch given to [`EventSink::publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Durable downstream.
    Published,
    /// Refused for good as it is: undecodable, invalid, too large for the broker. The reason
    /// is kept with the row.
    Rejected(String),
    /// Not attempted, because an earlier message of the same order key was rejected in this
    /// batch (delivering it would overtake that one).
    Held,
}

/// Where the relay publishes events: directly into the audit log, or a Kafka topic.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes `batch` in order and says what became of each message (one entry per message,
    /// same order). Within one order key the outcomes are some `Published`, then at most one
    /// `Rejected`, then only `Held`. `Err` means the whole batch is in doubt (broker or
    /// database unreachable): it is retried later, and consumers deduplicate by event id.
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>>;

    /// The longest one `publish` may take before it fails by itself (e.g. Kafka's
    /// `message.timeout.ms`); a relay's lease must be longer. `None`: no known bound.
    fn delivery_timeout(&self) -> Option<Duration> {
        None
    }
}

/// One message read from an [`EventSource`] (a record of a partitioned log such as Kafka).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceMessage {
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Message key, if any.
    pub key: Option<Vec<u8>>,
    /// Message headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Message value (an envelope, when well-formed).
    pub payload: Option<Vec<u8>>,
    /// When the broker says it was produced, if it says.
    pub timestamp: Option<Timestamp>,
}

impl SourceMessage {
    /// The value of the first header called `name`, if it has one.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The trace context of the call that recorded the event (its `traceparent` header);
    /// `None` when missing or malformed.
    #[must_use]
    pub fn traceparent(&self) -> Option<crate::TraceParent> {
        let v = std::str::from_utf8(self.header(crate::trace::TRACEPARENT_HEADER)?).ok()?;
        crate::TraceParent::parse(v)
    }

    /// When the event entered the outbox (its `enqueued_at_us` header); `None` when missing
    /// or malformed.
    #[must_use]
    pub fn enqueued_at(&self) -> Option<Timestamp> {
        let v = std::str::from_utf8(self.header(crate::trace::ENQUEUED_AT_HEADER)?).ok()?;
        v.parse().ok().map(Timestamp::from_micros)
    }
}

/// How far a reader is behind one partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// Messages not read yet.
    pub messages: u64,
}

/// Where the audit consumer reads encoded events from (the Kafka topic).
#[async_trait]
pub trait EventSource: Send + Sync {
    /// Waits up to `idle` for a first message and returns an empty batch if none came (so an
    /// idle reader still comes back to report that it is alive); once it holds one, takes what
    /// else arrives within `wait`, up to `max` messages in all. Cancel-safe while waiting for
    /// the first message: a call dropped then loses nothing.
    async fn next_batch(
        &self,
        max: usize,
        idle: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<SourceMessage>>;
    /// Sets `message` aside (a dead-letter topic) with `reason`; durable on return.
    async fn dead_letter(&self, message: &SourceMessage, reason: &str) -> StoreResult<()>;
    /// Marks every message of `batch` (and everything before them in their partitions)
    /// handled, so it is not read again. It may return before the mark is durable: a mark
    /// lost in a crash only means a redelivery, which the log absorbs.
    async fn commit(&self, batch: &[SourceMessage]) -> StoreResult<()>;
    /// How far this reader is behind each partition it reads (for metrics); empty when the
    /// source cannot tell.
    async fn lag(&self) -> StoreResult<Vec<PartitionLag>> {
        Ok(Vec::new())
    }
    /// Makes every mark so far durable; called once when the consumer stops.
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Unbounded;

    #[async_trait]
    impl EventSink for Unbounded {
        async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
            Ok(vec![Delivery::Published; batch.len()])
        }
    }

    /// A sink that says nothing about its delivery time declares no bound (`None`), not a
    /// zero one: relays then accept any lease.
    #[test]
    fn a_sink_declares_no_delivery_bound_by_default() {
        assert_eq!(Unbounded.delivery_timeout(), None);
    }
}
