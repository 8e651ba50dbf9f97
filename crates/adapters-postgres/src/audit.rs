use crate::error::corrupt;
use crate::map_err;
use crate::outbox::enqueue_recorded;
use crate::time::{bad_enum, from_db, to_db};
use async_trait::async_trait;
use credo_ports::audit::prepare_batch;
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, AuditRecorder, Clock, EventId,
    StoreResult, TenantId, Timestamp, UserId, validate,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::num::NonZeroU32;
use std::sync::Arc;

/// PostgreSQL audit recorder ([`AuditRecorder`]: `record` inserts an outbox row, durable on
/// return) and audit log ([`AuditLog`]: the `audit_events` table, filled by `append_batch` with
/// `ON CONFLICT (tenant_id, id) DO NOTHING`: event ids deduplicate per tenant).
pub struct PgAuditStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgAuditStore {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn category(s: &str) -> StoreResult<AuditCategory> {
    match s {
        "compliance" => Ok(AuditCategory::Compliance),
        "security" => Ok(AuditCategory::Security),
        "operations" => Ok(AuditCategory::Operations),
        other => Err(bad_enum("audit_events.category", other)),
    }
}

fn event(r: &PgRow) -> StoreResult<AuditEvent> {
    let cat: String = r.try_get("category").map_err(map_err)?;
    let metadata: serde_json::Value = r.try_get("metadata").map_err(map_err)?;
    let serde_json::Value::Object(metadata) = metadata else {
        return Err(corrupt("audit_events.metadata", "not a JSON object"));
    };
    Ok(AuditEvent {
        id: EventId(r.try_get("id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(map_err)?),
        occurred_at: from_db(r.try_get("occurred_at").map_err(map_err)?),
        category: category(&cat)?,
        action: r.try_get("action").map_err(map_err)?,
        actor: r.try_get("actor").map_err(map_err)?,
        subject_user_id: r
            .try_get::<Option<uuid::Uuid>, _>("subject_user_id")
            .map_err(map_err)?
            .map(UserId),
        purpose: r.try_get("purpose").map_err(map_err)?,
        decision: r.try_get("decision").map_err(map_err)?,
        reason: r.try_get("reason").map_err(map_err)?,
        request_id: r.try_get("request_id").map_err(map_err)?,
        metadata,
    })
}

// Filters are bound as nullable parameters, so one static statement serves every query.
macro_rules! filter {
    () => {
        "tenant_id = $1
         AND ($2::uuid IS NULL OR subject_user_id = $2)
         AND ($3::text IS NULL OR action = $3)
         AND ($4::text IS NULL OR category = $4)
         AND ($5::timestamptz IS NULL OR occurred_at >= $5)
         AND ($6::timestamptz IS NULL OR occurred_at < $6)"
    };
}

/// The statement of [`AuditLog::query`]: `$1` tenant, `$2`..`$6` the filters, `$7`/`$8` the
/// cursor, `$9` the limit.
pub(crate) const QUERY_SQL: &str = concat!(
    "SELECT * FROM audit_events WHERE ",
    filter!(),
    " AND ($7::timestamptz IS NULL OR (occurred_at, id) > ($7, $8::uuid))
     ORDER BY occurred_at, id LIMIT $9"
);

#[async_trait]
impl AuditRecorder for PgAuditStore {
    async fn record(&self, event: AuditEvent) -> StoreResult<()> {
        event.validate()?;
        let now = self.clock.now();
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        enqueue_recorded(&mut conn, &event, now).await
    }
}

#[async_trait]
impl AuditLog for PgAuditStore {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let (mut events, repeats) = prepare_batch(events)?;
        // Rows go in key order: two batches that share events then take their key locks in
        // one order, never in opposite orders (which deadlocked concurrent consumers).
        events.sort_by_key(|e| (e.tenant_id.0, e.id.0));
        if events.is_empty() {
            return Ok(AppendOutcome {
                inserted: 0,
                duplicates: repeats,
            });
        }
        // One statement over arrays: the batch is written whole or not at all.
        let mut cols: (
            Vec<uuid::Uuid>,
            Vec<uuid::Uuid>,
            Vec<_>,
            Vec<&str>,
            Vec<&str>,
        ) = Default::default();
        let mut opt: (
            Vec<Option<&str>>,
            Vec<Option<uuid::Uuid>>,
            Vec<Option<&str>>,
            Vec<Option<&str>>,
        ) = Default::default();
        let mut more: (
            Vec<Option<&str>>,
            Vec<Option<&str>>,
            Vec<sqlx::types::Json<&serde_json::Map<String, serde_json::Value>>>,
        ) = Default::default();
        for e in &events {
            cols.0.push(e.id.0);
            cols.1.push(e.tenant_id.0);
            cols.2.push(to_db(e.occurred_at));
            cols.3.push(e.category.as_str());
            cols.4.push(e.action.as_str());
            opt.0.push(e.actor.as_deref());
            opt.1.push(e.subject_user_id.map(|u| u.0));
            opt.2.push(e.purpose.as_deref());
            opt.3.push(e.decision.as_deref());
            more.0.push(e.reason.as_deref());
            more.1.push(e.request_id.as_deref());
            more.2.push(sqlx::types::Json(&e.metadata));
        }
        let r = sqlx::query(
            "INSERT INTO audit_events (id, tenant_id, occurred_at, category, action, actor, subject_user_id,
                                       purpose, decision, reason, request_id, metadata)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
                                  $7::uuid[], $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[])
             ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(cols.0)
        .bind(cols.1)
        .bind(cols.2)
        .bind(cols.3)
        .bind(cols.4)
        .bind(opt.0)
        .bind(opt.1)
        .bind(opt.2)
        .bind(opt.3)
        .bind(more.0)
        .bind(more.1)
        .bind(more.2)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        let inserted = r.rows_affected();
        Ok(AppendOutcome {
            inserted,
            duplicates: repeats + (events.len() as u64 - inserted),
        })
    }

    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        let row = sqlx::query("SELECT * FROM audit_events WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(event).transpose()
    }

    async fn query(
        &self,
        tenant: TenantId,
        q: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        page.validate()?;
        if let Some(a) = &q.action {
            validate::action(a)?;
        }
        let (after_at, after_id) = match page.after {
            Some(c) => (Some(to_db(c.at)), Some(c.id)),
            None => (None, None),
        };
        let rows = sqlx::query(QUERY_SQL)
            .bind(tenant.0)
            .bind(q.subject_user_id.map(|u| u.0))
            .bind(q.action.as_deref())
            .bind(q.category.map(|c| c.as_str()))
            .bind(q.from.map(to_db))
            .bind(q.until.map(to_db))
            .bind(after_at)
            .bind(after_id)
            .bind(page.limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows.iter().map(event).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, AuditEvent::cursor))
    }

    async fn count(&self, tenant: TenantId, q: AuditQuery) -> StoreResult<u64> {
        if let Some(a) = &q.action {
            validate::action(a)?;
        }
        const SQL: &str = concat!("SELECT count(*) FROM audit_events WHERE ", filter!());
        let n: i64 = sqlx::query_scalar(SQL)
            .bind(tenant.0)
            .bind(q.subject_user_id.map(|u| u.0))
            .bind(q.action.as_deref())
            .bind(q.category.map(|c| c.as_str()))
            .bind(q.from.map(to_db))
            .bind(q.until.map(to_db))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        // Events are immutable: no recheck is needed, and no concurrent write revives one.
        // Through the retention function: an application role may not delete otherwise
        // (migration 0009).
        let n: i64 = sqlx::query_scalar("SELECT credo_audit_purge($1, $2, $3)")
            .bind(to_db(before))
            .bind(category.map(|c| c.as_str()))
            .bind(i32::try_from(limit.get()).unwrap_or(i32::MAX))
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }
}
