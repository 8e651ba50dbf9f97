use crate::time::{from_db, to_db};
use crate::{error::corrupt, map_err};
use async_trait::async_trait;
use credo_ports::{
    AuditEvent, Clock, EventId, Outbox, OutboxRecord, StoreError, StoreResult, Timestamp,
};
use sqlx::{PgConnection, PgPool, Row};
use std::sync::Arc;
use std::time::Duration;

/// Inserts `event` into the outbox on `conn` (the caller's transaction). An event id already
/// present is left alone, so recording is idempotent.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    event: &AuditEvent,
    now: Timestamp,
) -> StoreResult<()> {
    let payload = serde_json::to_value(event).map_err(|e| corrupt("audit event", e))?;
    sqlx::query(
        "INSERT INTO outbox (event_id, tenant_id, event_type, payload, enqueued_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.id.0)
    .bind(event.tenant_id.0)
    .bind(&event.action)
    .bind(payload)
    .bind(to_db(now))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// PostgreSQL [`Outbox`]. A claim is one statement: it locks pending, unheld rows with
/// `FOR UPDATE SKIP LOCKED` and sets their lease, so concurrent relays never get the same row.
pub struct PgOutbox {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgOutbox {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn ids(ids: &[EventId]) -> Vec<uuid::Uuid> {
    ids.iter().map(|i| i.0).collect()
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Vec<OutboxRecord>> {
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let now = self.clock.now();
        let rows = sqlx::query(
            "WITH picked AS (
                 SELECT seq FROM outbox
                 WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $1)
                 ORDER BY seq LIMIT $2
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox o SET claimed_until = $3, attempts = o.attempts + 1
             FROM picked WHERE o.seq = picked.seq
             RETURNING o.seq, o.payload, o.enqueued_at, o.attempts",
        )
        .bind(to_db(now))
        .bind(i64::try_from(batch).unwrap_or(i64::MAX))
        .bind(to_db(now.saturating_add(lease)))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let seq: i64 = r.try_get("seq").map_err(map_err)?;
            let payload: serde_json::Value = r.try_get("payload").map_err(map_err)?;
            let event: AuditEvent =
                serde_json::from_value(payload).map_err(|e| corrupt("outbox payload", e))?;
            let attempts: i32 = r.try_get("attempts").map_err(map_err)?;
            out.push((
                seq,
                OutboxRecord {
                    event,
                    enqueued_at: from_db(r.try_get("enqueued_at").map_err(map_err)?),
                    attempts: attempts.max(0) as u32,
                },
            ));
        }
        // UPDATE ... RETURNING has no order: restore enqueue order.
        out.sort_by_key(|(seq, _)| *seq);
        Ok(out.into_iter().map(|(_, r)| r).collect())
    }

    async fn ack(&self, event_ids: &[EventId]) -> StoreResult<u64> {
        let now = self.clock.now();
        let r = sqlx::query(
            "UPDATE outbox SET published_at = $1, claimed_until = NULL
             WHERE event_id = ANY($2) AND published_at IS NULL",
        )
        .bind(to_db(now))
        .bind(ids(event_ids))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn release(&self, event_ids: &[EventId]) -> StoreResult<u64> {
        let now = self.clock.now();
        let r = sqlx::query(
            "UPDATE outbox SET claimed_until = NULL
             WHERE event_id = ANY($2) AND published_at IS NULL AND claimed_until > $1",
        )
        .bind(to_db(now))
        .bind(ids(event_ids))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn depth(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.clock.now();
        let oldest: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT min(enqueued_at) FROM outbox WHERE published_at IS NULL")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(oldest.map(|t| now.duration_since(from_db(t))))
    }

    async fn purge_published(&self, before: Timestamp) -> StoreResult<u64> {
        // Batched so a large backlog never holds one huge transaction.
        let mut total = 0;
        loop {
            let r = sqlx::query(
                "DELETE FROM outbox WHERE seq IN (
                     SELECT seq FROM outbox WHERE published_at < $1 LIMIT 5000
                 )",
            )
            .bind(to_db(before))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
            total += r.rows_affected();
            if r.rows_affected() < 5000 {
                return Ok(total);
            }
        }
    }
}
