use crate::InMemoryOutbox;
use async_trait::async_trait;
use credo_ports::audit::prepare_batch;
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, AuditRecorder, EventId,
    StoreResult, TenantId, Timestamp, validate,
};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::ops::Bound;
use std::sync::Arc;
use uuid::Uuid;

type Key = (TenantId, Timestamp, EventId);

#[derive(Default)]
struct Log {
    /// Per tenant: event ids deduplicate per tenant.
    by_id: HashMap<(TenantId, EventId), Key>,
    ordered: BTreeMap<Key, AuditEvent>,
}

/// In-memory audit log ([`AuditLog`]) and recorder ([`AuditRecorder`]): `record` enqueues into
/// the outbox; the log is filled by `append_batch` (through a relay and a sink), ordered by
/// `(tenant, occurred_at, id)`.
pub struct InMemoryAuditStore {
    outbox: Arc<InMemoryOutbox>,
    log: RwLock<Log>,
}

impl InMemoryAuditStore {
    pub(crate) fn len(&self) -> usize {
        self.log.read().ordered.len()
    }

    pub(crate) fn new(outbox: Arc<InMemoryOutbox>) -> Self {
        Self {
            outbox,
            log: RwLock::new(Log::default()),
        }
    }

    fn tenant_range(
        tenant: TenantId,
        after: Option<(Timestamp, EventId)>,
    ) -> (Bound<Key>, Bound<Key>) {
        let start = match after {
            Some((at, id)) => Bound::Excluded((tenant, at, id)),
            None => Bound::Included((
                tenant,
                Timestamp::from_micros(i64::MIN),
                EventId::from_uuid(Uuid::nil()),
            )),
        };
        (
            start,
            Bound::Included((
                tenant,
                Timestamp::from_micros(i64::MAX),
                EventId::from_uuid(Uuid::max()),
            )),
        )
    }
}

#[async_trait]
impl AuditRecorder for InMemoryAuditStore {
    async fn record(&self, event: AuditEvent) -> StoreResult<()> {
        event.validate()?;
        self.outbox.enqueue_recorded(event)
    }
}

#[async_trait]
impl AuditLog for InMemoryAuditStore {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let (events, repeats) = prepare_batch(events)?;
        let mut log = self.log.write();
        let mut out = AppendOutcome {
            inserted: 0,
            duplicates: repeats,
        };
        for e in events {
            if log.by_id.contains_key(&(e.tenant_id, e.id)) {
                out.duplicates += 1;
                continue;
            }
            let key = (e.tenant_id, e.occurred_at, e.id);
            log.by_id.insert((e.tenant_id, e.id), key);
            log.ordered.insert(key, e.clone());
            out.inserted += 1;
        }
        Ok(out)
    }

    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        let log = self.log.read();
        Ok(log.by_id.get(&(tenant, id)).map(|k| log.ordered[k].clone()))
    }

    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        page.validate()?;
        if let Some(a) = &query.action {
            validate::action(a)?;
        }
        let after = page.after.map(|c| (c.at, EventId::from_uuid(c.id)));
        let log = self.log.read();
        let items = log
            .ordered
            .range(Self::tenant_range(tenant, after))
            .map(|(_, e)| e)
            .filter(|e| e.matches(&query))
            .take(page.limit + 1)
            .cloned()
            .collect();
        Ok(Page::from_overfetch(items, page.limit, AuditEvent::cursor))
    }

    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        if let Some(a) = &query.action {
            validate::action(a)?;
        }
        let log = self.log.read();
        Ok(log
            .ordered
            .range(Self::tenant_range(tenant, None))
            .filter(|(_, e)| e.matches(&query))
            .count() as u64)
    }

    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        let mut log = self.log.write();
        let doomed: Vec<Key> = log
            .ordered
            .iter()
            .filter(|(k, e)| k.1 < before && category.is_none_or(|c| e.category == c))
            .map(|(k, _)| *k)
            .take(limit.get() as usize)
            .collect();
        for k in &doomed {
            log.ordered.remove(k);
            log.by_id.remove(&(k.0, k.2));
        }
        Ok(doomed.len() as u64)
    }
}
