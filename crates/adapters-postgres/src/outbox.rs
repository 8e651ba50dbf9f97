use crate::time::{from_db, to_db};
use crate::{LeaseClock, map_err};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use credo_ports::outbox::{Claim, ClaimToken, DeadLetter, Disposition};
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    AuditEvent, Clock, EncodedEvent, EventId, Outbox, OutboxRecord, StoreError, StoreResult,
    TenantId, Timestamp, TraceParent, UserId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Encodes `event` (once, here) and inserts it into the outbox on `conn` (the caller's
/// transaction). An event id already present is left alone, so recording is idempotent.
pub(crate) async fn enqueue(
    conn: &mut PgConnection,
    event: &AuditEvent,
    now: Timestamp,
) -> StoreResult<()> {
    insert(conn, &EncodedEvent::encode(event), now).await
}

/// Enqueues an event given by a caller (`record`): like [`enqueue`], idempotent for an id the
/// same tenant already enqueued, but `Conflict` for an id another tenant's row holds, so one
/// tenant can never make another's event vanish as a "duplicate".
pub(crate) async fn enqueue_recorded(
    conn: &mut PgConnection,
    event: &AuditEvent,
    now: Timestamp,
) -> StoreResult<()> {
    let message = EncodedEvent::encode(event);
    // The insert and the read that explains a miss are two statements: a row purged between
    // them explains nothing, so the insert is tried again.
    for _ in 0..3 {
        if insert_rows(conn, &message, now).await? == 1 {
            return Ok(());
        }
        let owner: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM outbox WHERE event_id = $1")
                .bind(message.id.0)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?;
        match owner {
            Some(t) if t != message.tenant_id.0 => {
                return Err(StoreError::Conflict(format!(
                    "event id {} is in the outbox for another tenant",
                    message.id
                )));
            }
            Some(_) => return Ok(()),
            None => continue,
        }
    }
    Err(StoreError::Unavailable(
        format!(
            "event {} was enqueued and purged concurrently three times; retry",
            message.id
        )
        .into(),
    ))
}

/// Inserts an encoded event as it is.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    message: &EncodedEvent,
    now: Timestamp,
) -> StoreResult<()> {
    insert_rows(conn, message, now).await.map(|_| ())
}

/// Inserts an encoded event unless its id is there; returns the rows inserted (0 or 1).
async fn insert_rows(
    conn: &mut PgConnection,
    message: &EncodedEvent,
    now: Timestamp,
) -> StoreResult<u64> {
    let r = sqlx::query(
        "INSERT INTO outbox (event_id, tenant_id, subject_user_id, event_type, schema_version,
                             envelope, enqueued_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(message.id.0)
    .bind(message.tenant_id.0)
    .bind(message.subject.map(|u| u.0))
    .bind(&message.event_type)
    .bind(i32::try_from(message.schema_version).unwrap_or(i32::MAX))
    .bind(&message.payload)
    .bind(to_db(now))
    .bind(message.traceparent.map(|t| t.to_string()))
    .execute(conn)
    .await
    .map_err(map_err)?;
    Ok(r.rows_affected())
}

/// PostgreSQL [`Outbox`], on a small pool of its own.
///
/// A claim is one statement: it finds the order keys with a row under a live lease (`held`),
/// locks the oldest pending, unheld rows of the other keys with `FOR UPDATE SKIP LOCKED` (the
/// candidates), keeps those with no earlier pending row of their order key outside the
/// candidates (rows another claim locked a moment ago), and stamps them with the claim's token
/// and lease. A held key's rows take no place in the batch, so a relay that died holding rows
/// stalls only its own keys until the lease ends. Leases are measured on the
/// database's clock by default ([`LeaseClock`]), so relays on hosts whose clocks disagree still
/// agree on when a lease ends.
pub struct PgOutbox {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    lease_clock: LeaseClock,
}

impl PgOutbox {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>, lease_clock: LeaseClock) -> Self {
        Self {
            pool,
            clock,
            lease_clock,
        }
    }

    /// The lease clock's "now" as a parameter: `NULL` lets the statement use the server's.
    fn lease_now(&self) -> Option<DateTime<Utc>> {
        match self.lease_clock {
            LeaseClock::Database => None,
            LeaseClock::Store => Some(to_db(self.clock.now())),
        }
    }

    /// Sets a row that cannot be read aside at once, so it never stalls the claims behind it.
    async fn set_unreadable_aside(&self, seq: i64, reason: &str) -> StoreResult<()> {
        tracing::warn!(
            seq,
            reason,
            "postgres outbox: setting an unreadable row aside"
        );
        sqlx::query(
            "UPDATE outbox SET dead_at = $2, last_error = $3, failures = failures + 1,
                               claim_token = NULL, claimed_until = NULL
             WHERE seq = $1",
        )
        .bind(seq)
        .bind(to_db(self.clock.now()))
        .bind(format!("unreadable outbox row: {reason}"))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}

fn ids(ids: &[EventId]) -> Vec<uuid::Uuid> {
    ids.iter().map(|i| i.0).collect()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn message(r: &PgRow) -> StoreResult<EncodedEvent> {
    let version: i32 = r.try_get("schema_version").map_err(map_err)?;
    Ok(EncodedEvent {
        id: EventId(r.try_get("event_id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(map_err)?),
        subject: r
            .try_get::<Option<uuid::Uuid>, _>("subject_user_id")
            .map_err(map_err)?
            .map(UserId),
        event_type: r.try_get("event_type").map_err(map_err)?,
        schema_version: u32::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| StoreError::Corrupt(format!("schema_version {version}").into()))?,
        payload: r.try_get("envelope").map_err(map_err)?,
        // A malformed value (written by hand) only loses the trace, never the event.
        traceparent: r
            .try_get::<Option<String>, _>("traceparent")
            .map_err(map_err)?
            .and_then(|t| TraceParent::parse(&t)),
        enqueued_at: None,
    })
}

fn count(r: &PgRow, column: &str) -> StoreResult<u32> {
    let n: i32 = r.try_get(column).map_err(map_err)?;
    Ok(n.max(0) as u32)
}

#[async_trait]
impl Outbox for PgOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim> {
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let token = ClaimToken::new();
        // The order key of a row without a subject is its tenant with the nil UUID.
        const SQL: &str = "WITH lease_now AS (SELECT COALESCE($1::timestamptz, now()) AS t),
             held AS MATERIALIZED (
                 SELECT DISTINCT tenant_id, COALESCE(subject_user_id, '00000000-0000-0000-0000-000000000000') AS okey
                 FROM outbox
                 WHERE published_at IS NULL AND dead_at IS NULL AND claimed_until IS NOT NULL
                   AND claimed_until > (SELECT t FROM lease_now)
             ),
             candidates AS (
                 SELECT seq, tenant_id, COALESCE(subject_user_id, '00000000-0000-0000-0000-000000000000') AS okey FROM outbox o
                 WHERE published_at IS NULL AND dead_at IS NULL
                   AND (claimed_until IS NULL OR claimed_until <= (SELECT t FROM lease_now))
                   AND (o.tenant_id, COALESCE(o.subject_user_id, '00000000-0000-0000-0000-000000000000'))
                       NOT IN (SELECT tenant_id, okey FROM held)
                 ORDER BY seq LIMIT $2
                 FOR UPDATE SKIP LOCKED
             ),
             oldest AS (
                 SELECT seq FROM outbox WHERE published_at IS NULL AND dead_at IS NULL
                 ORDER BY seq LIMIT 1
             ),
             blocked AS MATERIALIZED (
                 SELECT k.tenant_id, k.okey, first.seq AS from_seq
                 FROM (SELECT DISTINCT tenant_id, okey FROM candidates) k
                 CROSS JOIN LATERAL (
                     SELECT o.seq FROM outbox o
                     WHERE o.tenant_id = k.tenant_id
                       AND COALESCE(o.subject_user_id, '00000000-0000-0000-0000-000000000000') = k.okey
                       AND o.seq >= (SELECT seq FROM oldest)
                       AND o.published_at IS NULL AND o.dead_at IS NULL
                       AND o.seq NOT IN (SELECT seq FROM candidates)
                     ORDER BY o.seq LIMIT 1
                 ) first
             ),
             picked AS (
                 SELECT c.seq FROM candidates c
                 LEFT JOIN blocked b ON b.tenant_id = c.tenant_id AND b.okey = c.okey
                 WHERE b.from_seq IS NULL OR c.seq < b.from_seq
             )
             UPDATE outbox o
             SET claimed_until = (SELECT t FROM lease_now) + $3 * interval '1 microsecond',
                 claim_token = $4, attempts = o.attempts + 1
             FROM picked WHERE o.seq = picked.seq
             RETURNING o.seq, o.event_id, o.tenant_id, o.subject_user_id, o.event_type,
                       o.schema_version, o.envelope, o.enqueued_at, o.attempts, o.failures,
                       o.traceparent";
        // `held` is read through the partial index `outbox_held` (live leases only) and tested
        // with `NOT IN`, which PostgreSQL runs as a hashed subplan: one probe per candidate
        // (`NOT EXISTS` became a nested loop over `held` per candidate: 30 ms for 500
        // candidates and 500 held keys). Neither column can be NULL, so `NOT IN` means "not
        // one of them".
        // Runs on the outbox's own sessions, which plan without sorts or JIT
        // (`PgStores::connect`): a queue table's statistics lag behind it, and with stale ones
        // the planner bitmap-scanned and sorted every pending row per claim, or costed a
        // generic plan past `jit_above_cost` (JIT made each claim take ~200 ms). Without sorts
        // only an index's own order can serve the `ORDER BY`s, so the scans stop at `batch`
        // rows and at the first row of each key. `blocked` is
        // MATERIALIZED so that it runs once per claim, not once per candidate, and each of its
        // per-key probes starts at the oldest pending row instead of stepping over the index
        // entries that published rows leave behind until vacuum.
        let rows = sqlx::query(SQL)
            .bind(self.lease_now())
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .bind(micros(lease))
            .bind(token.0)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let seq: i64 = r.try_get("seq").map_err(map_err)?;
            let record = message(&r).and_then(|message| {
                Ok(OutboxRecord {
                    message,
                    enqueued_at: from_db(r.try_get("enqueued_at").map_err(map_err)?),
                    attempts: count(&r, "attempts")?,
                    failures: count(&r, "failures")?,
                })
            });
            match record {
                Ok(record) => out.push((seq, record)),
                Err(e) => self.set_unreadable_aside(seq, &e.to_string()).await?,
            }
        }
        // UPDATE ... RETURNING has no order: restore enqueue order.
        out.sort_by_key(|(seq, _)| *seq);
        Ok(Claim {
            token,
            records: out.into_iter().map(|(_, r)| r).collect(),
        })
    }

    async fn ack(&self, token: ClaimToken, event_ids: &[EventId]) -> StoreResult<u64> {
        if event_ids.is_empty() {
            return Ok(0);
        }
        let r = sqlx::query(
            "UPDATE outbox SET published_at = $1, claimed_until = NULL, claim_token = NULL
             WHERE event_id = ANY($2) AND claim_token = $3
               AND published_at IS NULL AND dead_at IS NULL",
        )
        .bind(to_db(self.clock.now()))
        .bind(ids(event_ids))
        .bind(token.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn release(&self, token: ClaimToken, event_ids: &[EventId]) -> StoreResult<u64> {
        if event_ids.is_empty() {
            return Ok(0);
        }
        let r = sqlx::query(
            "UPDATE outbox SET claimed_until = NULL, claim_token = NULL
             WHERE event_id = ANY($1) AND claim_token = $2
               AND published_at IS NULL AND dead_at IS NULL",
        )
        .bind(ids(event_ids))
        .bind(token.0)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn reject(
        &self,
        token: ClaimToken,
        id: EventId,
        reason: &str,
        then: Disposition,
    ) -> StoreResult<bool> {
        let (set_aside, delay) = match then {
            Disposition::SetAside => (true, Duration::ZERO),
            Disposition::RetryAfter(d) => (false, d),
        };
        let r = sqlx::query(
            "UPDATE outbox SET
                 claim_token = NULL,
                 failures = failures + 1,
                 last_error = $3,
                 dead_at = CASE WHEN $4 THEN $5::timestamptz END,
                 claimed_until = CASE WHEN $4 THEN NULL
                     ELSE COALESCE($6::timestamptz, now()) + $7 * interval '1 microsecond' END
             WHERE event_id = $1 AND claim_token = $2
               AND published_at IS NULL AND dead_at IS NULL",
        )
        .bind(id.0)
        .bind(token.0)
        .bind(reason)
        .bind(set_aside)
        .bind(to_db(self.clock.now()))
        .bind(self.lease_now())
        .bind(micros(delay))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn depth(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.clock.now();
        let oldest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT min(enqueued_at) FROM outbox WHERE published_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(oldest.map(|t| now.duration_since(from_db(t))))
    }

    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>> {
        page.validate()?;
        let rows = sqlx::query(
            "SELECT event_id, tenant_id, subject_user_id, event_type, schema_version, envelope,
                    enqueued_at, dead_at, failures, last_error, traceparent
             FROM outbox
             WHERE dead_at IS NOT NULL
               AND ($1::timestamptz IS NULL OR (enqueued_at, event_id) > ($1, $2::uuid))
             ORDER BY enqueued_at, event_id LIMIT $3",
        )
        .bind(page.after.map(|c| to_db(c.at)))
        .bind(page.after.map(|c| c.id))
        .bind(page.limit as i64 + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(DeadLetter {
                    message: message(r)?,
                    enqueued_at: from_db(r.try_get("enqueued_at").map_err(map_err)?),
                    failed_at: from_db(r.try_get("dead_at").map_err(map_err)?),
                    failures: count(r, "failures")?,
                    reason: r
                        .try_get::<Option<String>, _>("last_error")
                        .map_err(map_err)?
                        .unwrap_or_default(),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, DeadLetter::cursor))
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE dead_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn requeue(&self, event_ids: &[EventId]) -> StoreResult<u64> {
        let r = sqlx::query(
            "UPDATE outbox SET dead_at = NULL, failures = 0, last_error = NULL,
                               claimed_until = NULL, claim_token = NULL
             WHERE event_id = ANY($1) AND dead_at IS NOT NULL",
        )
        .bind(ids(event_ids))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn purge_dead_letters(&self, event_ids: &[EventId]) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM outbox WHERE event_id = ANY($1) AND dead_at IS NOT NULL")
            .bind(ids(event_ids))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn purge_published(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64> {
        let r = sqlx::query(
            // Condition repeated outside, rechecked on the row's latest version.
            "DELETE FROM outbox WHERE seq IN (
                 SELECT seq FROM outbox WHERE published_at < $1 LIMIT $2
             ) AND published_at < $1",
        )
        .bind(to_db(before))
        .bind(i64::from(limit.get()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }
}
