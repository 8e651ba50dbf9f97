//! The model's [`AuditStore`], [`Outbox`] and direct [`EventSink`], over one world: `record`
//! and the other stores enqueue into `World::outbox`; `append_batch` and the sink materialize
//! into `World::log`.

use super::{Inner, World};
use credo_ports::audit::prepare_batch;
use credo_ports::{
    AppendOutcome, AuditEvent, AuditQuery, AuditStore, EventId, EventSink, Outbox, OutboxRecord,
    Page, PageRequest, StoreError, StoreResult, TenantId, Timestamp, validate,
};
use std::sync::Arc;
use std::time::Duration;

/// The audit log and the `record` entry into the outbox.
pub(crate) struct ModelAudit(pub(crate) Arc<Inner>);

/// The relay-facing side of the outbox.
pub(crate) struct ModelOutbox(pub(crate) Arc<Inner>);

/// A sink that materializes straight into the model's audit log.
pub(crate) struct ModelSink(pub(crate) Arc<Inner>);

/// Materializes `events` into the log: validates the whole batch first, then skips every id
/// already present (in any tenant) or repeated within the batch.
fn append(w: &mut World, events: Vec<AuditEvent>) -> StoreResult<AppendOutcome> {
    let (unique, repeats) = prepare_batch(events)?;
    let mut out = AppendOutcome {
        inserted: 0,
        duplicates: repeats,
    };
    for e in unique {
        if w.log.iter().any(|x| x.id == e.id) {
            out.duplicates += 1;
        } else {
            w.log.push(e);
            out.inserted += 1;
        }
    }
    Ok(out)
}

/// Rejects a malformed action filter.
fn validate_query(q: &AuditQuery) -> StoreResult<()> {
    if let Some(a) = &q.action {
        validate::action(a)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl AuditStore for ModelAudit {
    async fn record(&self, event: AuditEvent) -> StoreResult<()> {
        let now = self.0.now();
        event.validate()?;
        let mut w = self.0.world.lock();
        // Idempotent: a row with this id, published or not, means it is already durable.
        if !w.outbox.iter().any(|r| r.event.id == event.id) {
            w.enqueue(event, now);
        }
        Ok(())
    }

    async fn append_batch(&self, events: Vec<AuditEvent>) -> StoreResult<AppendOutcome> {
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
        page.validate()?;
        validate_query(&query)?;
        let w = self.0.world.lock();
        let mut events: Vec<AuditEvent> = w
            .log
            .iter()
            .filter(|e| e.tenant_id == tenant && e.matches(&query))
            .filter(|e| page.after.is_none_or(|after| e.cursor() > after))
            .cloned()
            .collect();
        events.sort_by_key(AuditEvent::cursor);
        events.truncate(page.limit + 1);
        Ok(Page::from_overfetch(events, page.limit, AuditEvent::cursor))
    }

    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        validate_query(&query)?;
        let w = self.0.world.lock();
        Ok(w.log
            .iter()
            .filter(|e| e.tenant_id == tenant && e.matches(&query))
            .count() as u64)
    }

    async fn purge_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let n = w.log.len();
        w.log.retain(|e| e.occurred_at >= before);
        Ok((n - w.log.len()) as u64)
    }
}

#[async_trait::async_trait]
impl Outbox for ModelOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Vec<OutboxRecord>> {
        let now = self.0.now();
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let until = now.saturating_add(lease);
        let mut w = self.0.world.lock();
        let mut rows: Vec<_> = w
            .outbox
            .iter_mut()
            .filter(|r| r.published_at.is_none() && r.claimed_until.is_none_or(|c| c <= now))
            .collect();
        rows.sort_by_key(|r| r.seq);
        Ok(rows
            .into_iter()
            .take(batch)
            .map(|r| {
                r.claimed_until = Some(until);
                r.attempts += 1;
                OutboxRecord {
                    event: r.event.clone(),
                    enqueued_at: r.enqueued_at,
                    attempts: r.attempts,
                }
            })
            .collect())
    }

    async fn ack(&self, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let mut n = 0;
        for id in ids {
            if let Some(r) = w
                .outbox
                .iter_mut()
                .find(|r| r.event.id == *id && r.published_at.is_none())
            {
                r.published_at = Some(now);
                r.claimed_until = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release(&self, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let mut n = 0;
        for id in ids {
            if let Some(r) = w.outbox.iter_mut().find(|r| {
                r.event.id == *id
                    && r.published_at.is_none()
                    && r.claimed_until.is_some_and(|c| c > now)
            }) {
                r.claimed_until = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn depth(&self) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.outbox.iter().filter(|r| r.published_at.is_none()).count() as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.0.now();
        let w = self.0.world.lock();
        Ok(w.outbox
            .iter()
            .filter(|r| r.published_at.is_none())
            .map(|r| r.enqueued_at)
            .min()
            .map(|oldest| now.duration_since(oldest)))
    }

    async fn purge_published(&self, before: Timestamp) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let n = w.outbox.len();
        w.outbox
            .retain(|r| r.published_at.is_none_or(|p| p >= before));
        Ok((n - w.outbox.len()) as u64)
    }
}

#[async_trait::async_trait]
impl EventSink for ModelSink {
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()> {
        append(&mut self.0.world.lock(), batch.to_vec()).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{
        AppendOutcome, AuditCategory, AuditEvent, AuditQuery, PageRequest, TenantId, Timestamp,
    };
    use std::time::Duration;

    fn ev(t: TenantId, at: Timestamp, action: &str) -> AuditEvent {
        AuditEvent::new(t, at, AuditCategory::Security, action)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test]
    async fn outbox_claim_lease_ack_release() {
        let (m, clock) = model();
        let (audit, outbox) = (m.audit(), m.outbox());
        let t = TenantId::new();
        let events: Vec<_> = (0..3).map(|_| ev(t, T0, "login.ok")).collect();
        for e in &events {
            audit.record(e.clone()).await.unwrap();
            clock.advance(secs(1));
        }
        // Recording the same id again is a no-op.
        audit.record(events[0].clone()).await.unwrap();
        assert_eq!(outbox.depth().await.unwrap(), 3);
        assert_eq!(outbox.oldest_pending_age().await.unwrap(), Some(secs(3)));
        assert_eq!(
            outbox.claim(0, secs(1)).await.unwrap_err().kind(),
            "InvalidInput"
        );
        assert_eq!(
            outbox.claim(1, Duration::ZERO).await.unwrap_err().kind(),
            "InvalidInput"
        );

        let first = outbox.claim(2, secs(10)).await.unwrap();
        let ids: Vec<_> = first.iter().map(|r| r.event.id).collect();
        assert_eq!(ids, [events[0].id, events[1].id], "oldest first");
        assert!(first.iter().all(|r| r.attempts == 1));
        assert_eq!(first[0].enqueued_at, T0);
        // Held rows are skipped by the next claim.
        let second = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].event.id, events[2].id);
        assert!(outbox.claim(10, secs(10)).await.unwrap().is_empty());

        // Release gives back only held, unpublished rows.
        assert_eq!(
            outbox.release(&[events[1].id, events[1].id]).await.unwrap(),
            1
        );
        let again = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].event.id, again[0].attempts), (events[1].id, 2));

        // Ack twice is harmless; unknown ids are ignored.
        let unknown = ev(t, T0, "x.y").id;
        assert_eq!(outbox.ack(&[events[0].id, unknown]).await.unwrap(), 1);
        assert_eq!(outbox.ack(&[events[0].id]).await.unwrap(), 0);
        assert_eq!(outbox.release(&[events[0].id]).await.unwrap(), 0);
        assert_eq!(outbox.depth().await.unwrap(), 2);
        // A published row is still known: recording it again does not re-enqueue.
        audit.record(events[0].clone()).await.unwrap();
        assert_eq!(outbox.depth().await.unwrap(), 2);

        // The lease lapses at exactly claimed_until: the row may be claimed again.
        clock.advance(secs(10));
        assert_eq!(outbox.release(&[events[1].id]).await.unwrap(), 0);
        let expired = outbox.claim(10, secs(10)).await.unwrap();
        let ids: Vec<_> = expired.iter().map(|r| (r.event.id, r.attempts)).collect();
        assert_eq!(ids, [(events[1].id, 3), (events[2].id, 2)]);

        let acked_at = clock_now(&clock);
        assert_eq!(outbox.ack(&[events[1].id, events[2].id]).await.unwrap(), 2);
        assert_eq!(outbox.depth().await.unwrap(), 0);
        assert_eq!(outbox.oldest_pending_age().await.unwrap(), None);
        assert_eq!(outbox.purge_published(acked_at).await.unwrap(), 1);
        assert_eq!(
            outbox
                .purge_published(acked_at.saturating_add(Duration::from_micros(1)))
                .await
                .unwrap(),
            2
        );
    }

    fn clock_now(c: &credo_ports::ManualClock) -> Timestamp {
        credo_ports::Clock::now(c)
    }

    #[tokio::test]
    async fn append_batch_is_idempotent_and_all_or_nothing() {
        let (m, _) = model();
        let audit = m.audit();
        let (t, other) = (TenantId::new(), TenantId::new());
        let a = ev(t, T0, "a.b");
        let b = ev(other, T0, "a.b");
        assert_eq!(
            audit
                .append_batch(vec![a.clone(), a.clone(), b.clone()])
                .await
                .unwrap(),
            AppendOutcome {
                inserted: 2,
                duplicates: 1
            }
        );
        let c = ev(t, T0, "a.c");
        assert_eq!(
            audit
                .append_batch(vec![a.clone(), b.clone(), c.clone()])
                .await
                .unwrap(),
            AppendOutcome {
                inserted: 1,
                duplicates: 2
            }
        );
        let mut bad = ev(t, T0, "a.d");
        bad.action = "BAD".into();
        let d = ev(t, T0, "a.d");
        assert_eq!(
            audit
                .append_batch(vec![d.clone(), bad])
                .await
                .unwrap_err()
                .kind(),
            "InvalidInput"
        );
        assert_eq!(audit.get(t, d.id).await.unwrap(), None, "nothing written");
        assert_eq!(audit.get(t, a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(audit.get(other, a.id).await.unwrap(), None);
        // The sink is append_batch.
        m.sink().publish(&[a.clone(), d.clone()]).await.unwrap();
        assert_eq!(audit.count(t, AuditQuery::default()).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn query_paginates_filters_and_purges() {
        let (m, _) = model();
        let audit = m.audit();
        let t = TenantId::new();
        let mut batch = Vec::new();
        for i in 0..9u64 {
            // Three events per instant, so ties on occurred_at are broken by id.
            let at = T0.saturating_add(secs(i / 3));
            let action = if i % 2 == 0 { "even.x" } else { "odd.x" };
            batch.push(ev(t, at, action));
        }
        batch.push(ev(TenantId::new(), T0, "even.x"));
        audit.append_batch(batch.clone()).await.unwrap();
        let mut expected: Vec<_> = batch.into_iter().filter(|e| e.tenant_id == t).collect();
        expected.sort_by_key(AuditEvent::cursor);

        let mut seen = Vec::new();
        let mut page = PageRequest::first(4);
        loop {
            let p = audit.query(t, AuditQuery::default(), page).await.unwrap();
            seen.extend(p.items);
            match p.next {
                Some(c) => page.after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, expected);

        let q = AuditQuery {
            action: Some("even.x".into()),
            from: Some(T0.saturating_add(secs(1))),
            ..AuditQuery::default()
        };
        let evens = audit.query(t, q.clone(), PageRequest::first(100)).await;
        let evens = evens.unwrap();
        assert!(evens.next.is_none());
        assert_eq!(evens.items.len(), 3);
        assert_eq!(audit.count(t, q).await.unwrap(), 3);
        let bad = AuditQuery {
            action: Some("Nope".into()),
            ..AuditQuery::default()
        };
        assert_eq!(
            audit.count(t, bad).await.unwrap_err().kind(),
            "InvalidInput"
        );

        assert_eq!(
            audit
                .purge_before(T0.saturating_add(secs(1)))
                .await
                .unwrap(),
            4
        );
        assert_eq!(audit.count(t, AuditQuery::default()).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn store_mutations_enqueue_into_the_shared_outbox() {
        let (m, _) = model();
        let t = TenantId::new();
        let u = m
            .users()
            .create(credo_ports::NewUser::new(t, "a@example.com", "A", "B"))
            .await
            .unwrap();
        let rows = m.outbox().claim(10, secs(1)).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event.action, "user.created");
        assert_eq!(rows[0].event.subject_user_id, Some(u.id));
        let events: Vec<_> = rows.into_iter().map(|r| r.event).collect();
        m.sink().publish(&events).await.unwrap();
        assert_eq!(
            m.audit().get(t, events[0].id).await.unwrap().as_ref(),
            Some(&events[0])
        );
    }
}
