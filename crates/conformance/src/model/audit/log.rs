//! The model's [`AuditRecorder`] and [`AuditLog`]: `record` enqueues into `World::outbox`;
//! `append_batch` materializes into `World::log`, which queries read.

use crate::model::{Inner, World, page_of, remove_up_to, rules};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, AuditRecorder, Cursor, EventId,
    Page, PageRequest, StoreError, StoreResult, TenantId, Timestamp,
};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The audit log and the `record` entry into the outbox.
pub(crate) struct ModelAudit(pub(crate) Arc<Inner>);

/// Materializes `events` into the log: validates the whole batch first (one bad event writes
/// nothing), then takes the events in order, skipping every one whose `(tenant, id)` the log
/// already holds, from before or from earlier in this batch (the first occurrence wins).
fn append(w: &mut World, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
    for e in events {
        rules::audit_event(e)?;
    }
    let mut out = AppendOutcome {
        inserted: 0,
        duplicates: 0,
    };
    for e in events {
        if w.log
            .iter()
            .any(|x| x.tenant_id == e.tenant_id && x.id == e.id)
        {
            out.duplicates += 1;
        } else {
            w.log.push(e.clone());
            out.inserted += 1;
        }
    }
    Ok(out)
}

/// Rejects a malformed action filter.
fn validate_query(q: &AuditQuery) -> StoreResult<()> {
    if let Some(a) = &q.action {
        rules::action(a)?;
    }
    Ok(())
}

/// True when `e` meets every criterion `q` sets: its subject, its action, its category, and
/// `from <= occurred_at < until`.
pub(crate) fn matches(e: &AuditEvent, q: &AuditQuery) -> bool {
    if let Some(subject) = q.subject_user_id
        && e.subject_user_id != Some(subject)
    {
        return false;
    }
    if let Some(action) = &q.action
        && &e.action != action
    {
        return false;
    }
    if let Some(category) = q.category
        && e.category != category
    {
        return false;
    }
    if let Some(from) = q.from
        && e.occurred_at < from
    {
        return false;
    }
    if let Some(until) = q.until
        && e.occurred_at >= until
    {
        return false;
    }
    true
}

/// An event's position in queries: `(occurred_at, id)`.
fn position(e: &AuditEvent) -> Cursor {
    Cursor {
        at: e.occurred_at,
        id: e.id.0,
    }
}

#[async_trait::async_trait]
impl AuditRecorder for ModelAudit {
    async fn record(&self, event: AuditEvent) -> StoreResult<()> {
        let now = self.0.now();
        rules::audit_event(&event)?;
        let mut w = self.0.world.lock();
        // Idempotent: a row of this tenant with this id means it is already durable. Another
        // tenant's row with this id is a conflict, never a silent drop.
        if w.outbox
            .iter()
            .any(|r| r.message.id == event.id && r.message.tenant_id != event.tenant_id)
        {
            return Err(StoreError::Conflict(
                "event id taken by another tenant".into(),
            ));
        }
        w.enqueue(event, now);
        Ok(())
    }
}

#[async_trait::async_trait]
impl AuditLog for ModelAudit {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        append(&mut self.0.world.lock(), events)
    }

    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        let w = self.0.world.lock();
        Ok(w.log
            .iter()
            .find(|e| e.tenant_id == tenant && e.id == id)
            .cloned())
    }

    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        rules::page(&page)?;
        validate_query(&query)?;
        let w = self.0.world.lock();
        let mut events: Vec<AuditEvent> = w
            .log
            .iter()
            .filter(|e| e.tenant_id == tenant && matches(e, &query))
            .filter(|e| page.after.is_none_or(|after| position(e) > after))
            .cloned()
            .collect();
        events.sort_by_key(position);
        Ok(page_of(events, page.limit, position))
    }

    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        validate_query(&query)?;
        let w = self.0.world.lock();
        Ok(w.log
            .iter()
            .filter(|e| e.tenant_id == tenant && matches(e, &query))
            .count() as u64)
    }

    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        Ok(remove_up_to(&mut w.log, limit, |e| {
            e.occurred_at < before && category.is_none_or(|c| e.category == c)
        }))
    }
}
