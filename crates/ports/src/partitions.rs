//! Whole-partition retention of a partitioned audit log.
//!
//! A backend that keeps its [`AuditLog`](crate::AuditLog) in partitions by recording time
//! (PostgreSQL: `audit_events` by range of its UUIDv7 ids) implements this so that the
//! maintenance runner creates partitions before they are needed and drops whole ones past
//! retention, instead of deleting their rows one by one.

use crate::{StoreResult, Timestamp};
use async_trait::async_trait;
use std::num::NonZeroU32;

/// One partition: the events whose ids were minted in `from..until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPartition {
    /// The backend's name for it (PostgreSQL: the table).
    pub name: String,
    /// The first instant of its range.
    pub from: Timestamp,
    /// The first instant past its range.
    pub until: Timestamp,
}

/// Creates and drops the time partitions of an audit log.
///
/// ```
/// use credo_ports::partitions::AuditPartitions;
/// use credo_ports::{NonZeroU32, StoreResult, Timestamp};
/// use std::time::Duration;
///
/// /// One maintenance pass: partitions for the coming four weeks, then retention of 7 years.
/// async fn pass(p: &dyn AuditPartitions, now: Timestamp) -> StoreResult<(u32, u64)> {
///     let week = NonZeroU32::new(7).unwrap();
///     let created = p.create_ahead(now, week, 4).await?;
///     let seven_years = Duration::from_secs(2_557 * 86_400);
///     let dropped = p
///         .drop_before(now.saturating_sub(seven_years), NonZeroU32::new(16).unwrap())
///         .await?;
///     Ok((created, dropped))
/// }
/// ```
#[async_trait]
pub trait AuditPartitions: Send + Sync {
    /// Makes sure partitions of `period_days` days (aligned on the Unix epoch) exist for the
    /// period holding `now` and the `ahead` periods after it, creating the missing ranges
    /// only (a range an existing partition covers is left as it is, so changing the period
    /// takes effect after the partitions already made). Events already kept for a new range
    /// (minted ahead of it) move into it. Returns how many partitions it created.
    async fn create_ahead(
        &self,
        now: Timestamp,
        period_days: NonZeroU32,
        ahead: u32,
    ) -> StoreResult<u32>;

    /// Drops, oldest first, at most `limit` partitions whose range ends at or before `before`
    /// and whose events all occurred before `before`; a partition still holding a later event
    /// is kept (its events are left to row purges). Returns how many it dropped, so fewer
    /// than `limit` means none is left to drop.
    async fn drop_before(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64>;

    /// The time partitions, oldest first (not the catch-all for ids outside every range).
    async fn partitions(&self) -> StoreResult<Vec<AuditPartition>>;
}
