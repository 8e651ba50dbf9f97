//! The partitions of `audit_events` (migration 0008): ranges of its UUIDv7 ids, whose first 48
//! bits are the millisecond they were minted, so ranges of recording time. Partitions are
//! created ahead and dropped whole past retention by the maintenance runner; the catch-all
//! `audit_events_default` keeps ids outside every range.

use crate::map_err;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use credo_ports::partitions::{AuditPartition, AuditPartitions};
use credo_ports::{StoreError, StoreResult, Timestamp};
use sqlx::{PgPool, Postgres, Transaction};
use std::num::NonZeroU32;
use std::time::Duration;
use uuid::Uuid;

const DAY_MS: i64 = 86_400_000;
/// The millisecond after the last one a UUIDv7 can hold.
const END_MS: i64 = 1 << 48;

/// How long partition DDL waits for its lock before giving up until the job's next run:
/// DDL queued behind a long query would queue every insert behind itself.
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// PostgreSQL [`AuditPartitions`] over `audit_events`.
pub struct PgAuditPartitions {
    pool: PgPool,
}

impl PgAuditPartitions {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// `(name, from_ms, until_ms)` of every range partition, oldest first.
    async fn ranges(&self) -> StoreResult<Vec<(String, i64, i64)>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'audit_events'::regclass",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out: Vec<_> = rows
            .into_iter()
            .filter_map(|(name, expr)| bounds(&expr).map(|(lo, hi)| (name, lo, hi)))
            .collect();
        out.sort_by_key(|r| r.1);
        Ok(out)
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{}ms", LOCK_TIMEOUT.as_millis()))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        Ok(tx)
    }

    /// Creates the partition of `lo..hi` (ms), moving in the events the catch-all kept for it
    /// (migration 0009's function, so an application role needs no DDL right).
    async fn create(&self, lo: i64, hi: i64) -> StoreResult<()> {
        let name = partition_name(lo);
        let mut tx = self.begin().await?;
        sqlx::query("SELECT credo_audit_partition_create($1, $2, $3)")
            .bind(&name)
            .bind(id_floor(lo))
            .bind(id_floor(hi))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        tracing::info!(partition = %name, "audit partition created");
        Ok(())
    }
}

/// The smallest UUID minted in millisecond `ms` (clamped to what a UUIDv7 can hold).
fn id_floor(ms: i64) -> Uuid {
    Uuid::from_u128((ms.clamp(0, END_MS - 1) as u128) << 80)
}

/// The millisecond a bound UUID starts in.
fn id_ms(id: Uuid) -> i64 {
    (id.as_u128() >> 80) as i64
}

/// `(from_ms, until_ms)` of a range partition's bound expression (`FOR VALUES FROM ('…') TO
/// ('…')`, or `MINVALUE` / `MAXVALUE`); `None` for the catch-all (`DEFAULT`).
fn bounds(expr: &str) -> Option<(i64, i64)> {
    let rest = expr.strip_prefix("FOR VALUES FROM (")?;
    let (lo, hi) = rest.split_once(") TO (")?;
    let hi = hi.strip_suffix(')')?;
    let edge = |s: &str| -> Option<i64> {
        match s {
            "MINVALUE" => Some(0),
            "MAXVALUE" => Some(END_MS),
            quoted => Uuid::parse_str(quoted.trim_matches('\'')).ok().map(id_ms),
        }
    };
    Some((edge(lo)?, edge(hi)?))
}

/// `audit_events_pYYYYMMDD` after the first day of the range (with the time of day when the
/// range does not start at midnight UTC, as a range an operator made may not).
fn partition_name(lo: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(lo).unwrap_or_default();
    if lo.rem_euclid(DAY_MS) == 0 {
        format!("audit_events_p{}", at.format("%Y%m%d"))
    } else {
        format!("audit_events_p{}", at.format("%Y%m%d_%H%M%S%3f"))
    }
}

/// The parts of `want` that no range of `have` (sorted by start) covers.
fn missing(want: (i64, i64), have: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = want.0;
    for &(lo, hi) in have {
        if hi <= at || lo >= want.1 {
            continue;
        }
        if lo > at {
            out.push((at, lo));
        }
        at = at.max(hi);
        if at >= want.1 {
            return out;
        }
    }
    if at < want.1 {
        out.push((at, want.1));
    }
    out
}

fn to_ms(t: Timestamp) -> i64 {
    t.as_micros().div_euclid(1000)
}

fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_micros(ms.saturating_mul(1000)).clamp_bound()
}

#[async_trait]
impl AuditPartitions for PgAuditPartitions {
    async fn create_ahead(
        &self,
        now: Timestamp,
        period_days: NonZeroU32,
        ahead: u32,
    ) -> StoreResult<u32> {
        let period = i64::from(period_days.get()) * DAY_MS;
        let now = to_ms(now);
        if !(0..END_MS).contains(&now) {
            return Err(StoreError::invalid(
                "now",
                "outside the time a UUIDv7 can hold (1970 to 10889)",
            ));
        }
        let first = now.div_euclid(period) * period;
        let until = first
            .saturating_add(period.saturating_mul(i64::from(ahead) + 1))
            .min(END_MS);
        let have: Vec<_> = self
            .ranges()
            .await?
            .into_iter()
            .map(|(_, lo, hi)| (lo, hi))
            .collect();
        let mut created = 0;
        let mut lo = first;
        while lo < until {
            let hi = (lo + period).min(until);
            for (a, b) in missing((lo, hi), &have) {
                self.create(a, b).await?;
                created += 1;
            }
            lo = hi;
        }
        Ok(created)
    }

    async fn drop_before(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64> {
        let cutoff = to_ms(before);
        let mut dropped = 0;
        for (name, _, hi) in self.ranges().await? {
            if hi > cutoff || dropped >= u64::from(limit.get()) {
                break;
            }
            let mut tx = self.begin().await?;
            let gone: bool = sqlx::query_scalar("SELECT credo_audit_partition_drop($1, $2)")
                .bind(&name)
                .bind(crate::time::to_db(before))
                .fetch_one(&mut *tx)
                .await
                .map_err(map_err)?;
            if !gone {
                // Backdated or far-future `occurred_at`: row purges take its events in time.
                tracing::info!(partition = %name, "audit partition past retention holds a later event; kept");
                continue;
            }
            tx.commit().await.map_err(map_err)?;
            tracing::info!(partition = %name, "audit partition dropped");
            dropped += 1;
        }
        Ok(dropped)
    }

    async fn partitions(&self) -> StoreResult<Vec<AuditPartition>> {
        Ok(self
            .ranges()
            .await?
            .into_iter()
            .map(|(name, lo, hi)| AuditPartition {
                name,
                from: from_ms(lo),
                until: from_ms(hi),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_are_what_no_partition_covers() {
        assert_eq!(missing((0, 10), &[]), vec![(0, 10)]);
        assert_eq!(missing((0, 10), &[(0, 10)]), vec![]);
        assert_eq!(missing((0, 10), &[(-5, 3), (7, 20)]), vec![(3, 7)]);
        assert_eq!(missing((0, 10), &[(2, 4), (4, 6)]), vec![(0, 2), (6, 10)]);
        assert_eq!(missing((0, 10), &[(10, 20), (-10, 0)]), vec![(0, 10)]);
    }

    #[test]
    fn bounds_round_trip_through_the_catalog_text() {
        let (lo, hi) = (1_764_547_200_000, 1_765_152_000_000);
        let expr = format!(
            "FOR VALUES FROM ('{}') TO ('{}')",
            id_floor(lo),
            id_floor(hi)
        );
        assert_eq!(bounds(&expr), Some((lo, hi)));
        assert_eq!(bounds("DEFAULT"), None);
        assert_eq!(
            bounds(&format!(
                "FOR VALUES FROM (MINVALUE) TO ('{}')",
                id_floor(hi)
            )),
            Some((0, hi))
        );
        // A UUIDv7 minted at `lo` sorts inside the range.
        let minted = Uuid::from_u128(((lo as u128) << 80) | (0x7u128 << 76) | 0xabc);
        assert!(id_floor(lo) <= minted && minted < id_floor(hi));
        assert_eq!(partition_name(lo), "audit_events_p20251201");
        assert_eq!(partition_name(lo + 1), "audit_events_p20251201_000000001");
    }
}
