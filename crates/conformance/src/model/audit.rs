//! The model's [`AuditRecorder`], [`AuditLog`], [`Outbox`] and sink, over one world: `record`
//! and the other stores enqueue into `World::outbox`; `append_batch` and the sink materialize
//! into `World::log`.

use super::{Inner, OutboxRow, World, page_of, rules};
use credo_ports::outbox::{Claim, ClaimToken, DeadLetter, Disposition};
use credo_ports::{
    AppendOutcome, AuditEvent, AuditLog, AuditQuery, AuditRecorder, Cursor, Delivery, EncodedEvent,
    EventId, EventSink, Outbox, OutboxRecord, Page, PageRequest, StoreError, StoreResult, TenantId,
    Timestamp, UserId, envelope,
};
use std::sync::Arc;
use std::time::Duration;

/// The audit log and the `record` entry into the outbox.
pub(crate) struct ModelAudit(pub(crate) Arc<Inner>);

/// The relay-facing side of the outbox.
pub(crate) struct ModelOutbox(pub(crate) Arc<Inner>);

/// A sink that decodes and appends one message at a time into a log.
pub(crate) struct ModelSink(pub(crate) Arc<dyn AuditLog>);

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

/// A dead letter's position: `(enqueued_at, id)`.
fn dead_position(d: &DeadLetter) -> Cursor {
    Cursor {
        at: d.enqueued_at,
        id: d.message.id.0,
    }
}

/// The order key of a message: its tenant and subject. Rows of one key leave in enqueue order.
fn order_key(m: &EncodedEvent) -> (TenantId, Option<UserId>) {
    (m.tenant_id, m.subject)
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

    async fn purge_before(&self, before: Timestamp) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let n = w.log.len();
        w.log.retain(|e| e.occurred_at >= before);
        Ok((n - w.log.len()) as u64)
    }
}

impl ModelOutbox {
    /// Runs `f` on the pending row `id` if claim `token` holds it.
    fn with_held<T>(
        &self,
        token: ClaimToken,
        id: EventId,
        f: impl FnOnce(&mut OutboxRow) -> T,
    ) -> Option<T> {
        let mut w = self.0.world.lock();
        w.outbox
            .iter_mut()
            .find(|r| r.message.id == id && r.pending() && r.token == Some(token))
            .map(f)
    }
}

#[async_trait::async_trait]
impl Outbox for ModelOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim> {
        let now = self.0.now();
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let token = ClaimToken::new();
        let mut w = self.0.world.lock();
        let mut pending: Vec<OutboxRow> =
            w.outbox.iter().filter(|r| r.pending()).cloned().collect();
        pending.sort_by_key(|r| r.seq);
        // Candidates: the oldest `batch` pending rows no live claim holds.
        let candidates: Vec<u64> = pending
            .iter()
            .filter(|r| r.claimed_until.is_none_or(|c| c <= now))
            .take(batch)
            .map(|r| r.seq)
            .collect();
        // Handed out: candidates with no earlier pending row of their key outside the candidates.
        let eligible: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&seq| {
                let row = pending.iter().find(|r| r.seq == seq).unwrap();
                let key = order_key(&row.message);
                !pending.iter().any(|o| {
                    o.seq < seq && order_key(&o.message) == key && !candidates.contains(&o.seq)
                })
            })
            .collect();
        let mut records = Vec::new();
        for seq in eligible {
            let r = w.outbox.iter_mut().find(|r| r.seq == seq).unwrap();
            r.claimed_until = Some(now.saturating_add(lease));
            r.token = Some(token);
            r.attempts += 1;
            records.push(OutboxRecord {
                message: r.message.clone(),
                enqueued_at: r.enqueued_at,
                attempts: r.attempts,
                failures: r.failures,
            });
        }
        Ok(Claim { token, records })
    }

    async fn ack(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.0.now();
        let mut n = 0;
        for id in ids {
            let acked = self.with_held(token, *id, |r| {
                r.published_at = Some(now);
                r.claimed_until = None;
                r.token = None;
            });
            n += u64::from(acked.is_some());
        }
        Ok(n)
    }

    async fn release(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let mut n = 0;
        for id in ids {
            let released = self.with_held(token, *id, |r| {
                r.claimed_until = None;
                r.token = None;
            });
            n += u64::from(released.is_some());
        }
        Ok(n)
    }

    async fn reject(
        &self,
        token: ClaimToken,
        id: EventId,
        reason: &str,
        then: Disposition,
    ) -> StoreResult<bool> {
        let now = self.0.now();
        let rejected = self.with_held(token, id, |r| {
            r.token = None;
            r.failures += 1;
            r.last_error = Some(reason.to_string());
            match then {
                Disposition::RetryAfter(d) => r.claimed_until = Some(now.saturating_add(d)),
                Disposition::SetAside => {
                    r.claimed_until = None;
                    r.dead_at = Some(now);
                }
            }
        });
        Ok(rejected.is_some())
    }

    async fn depth(&self) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.outbox.iter().filter(|r| r.pending()).count() as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.0.now();
        let w = self.0.world.lock();
        Ok(w.outbox
            .iter()
            .filter(|r| r.pending())
            .map(|r| r.enqueued_at)
            .min()
            .map(|oldest| now.duration_since(oldest)))
    }

    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>> {
        rules::page(&page)?;
        let w = self.0.world.lock();
        let mut dead: Vec<DeadLetter> = w
            .outbox
            .iter()
            .filter_map(|r| {
                Some(DeadLetter {
                    message: r.message.clone(),
                    enqueued_at: r.enqueued_at,
                    failed_at: r.dead_at?,
                    failures: r.failures,
                    reason: r.last_error.clone().unwrap_or_default(),
                })
            })
            .filter(|d| page.after.is_none_or(|after| dead_position(d) > after))
            .collect();
        dead.sort_by_key(dead_position);
        Ok(page_of(dead, page.limit, dead_position))
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.outbox.iter().filter(|r| r.dead_at.is_some()).count() as u64)
    }

    async fn requeue(&self, ids: &[EventId]) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let mut n = 0;
        for r in w.outbox.iter_mut() {
            if ids.contains(&r.message.id) && r.dead_at.is_some() {
                r.dead_at = None;
                r.failures = 0;
                r.last_error = None;
                r.claimed_until = None;
                r.token = None;
                n += 1;
            }
        }
        Ok(n)
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
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let mut out = Vec::with_capacity(batch.len());
        let mut stopped = Vec::new();
        for m in batch {
            if stopped.contains(&order_key(m)) {
                out.push(Delivery::Held);
                continue;
            }
            let event = envelope::decode(Some(m.payload.as_bytes()));
            let written = match event {
                Err(reason) => Err(reason),
                Ok(e) if e.id != m.id || e.tenant_id != m.tenant_id => {
                    Err("payload and row disagree".to_string())
                }
                Ok(e) => match self.0.append_batch(&[e]).await {
                    // Unavailable is the one retryable error: the whole batch is in doubt.
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    other => other.map(|_| ()).map_err(|e| e.to_string()),
                },
            };
            match written {
                Ok(()) => out.push(Delivery::Published),
                Err(reason) => {
                    stopped.push(order_key(m));
                    out.push(Delivery::Rejected(reason));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{
        AppendOutcome, AuditCategory, AuditEvent, AuditQuery, Delivery, Disposition, EncodedEvent,
        PageRequest, TenantId, Timestamp, UserId,
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
        // Three subjects, so no row waits for another's key.
        let events: Vec<_> = (0..3)
            .map(|_| {
                let mut e = ev(t, T0, "login.ok");
                e.subject_user_id = Some(UserId::new());
                e
            })
            .collect();
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
        assert_eq!(ids(&first), [events[0].id, events[1].id], "oldest first");
        assert!(first.records.iter().all(|r| r.attempts == 1));
        assert_eq!(first.records[0].enqueued_at, T0);
        // Held rows are skipped by the next claim.
        let second = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(ids(&second), [events[2].id]);
        assert!(outbox.claim(10, secs(10)).await.unwrap().records.is_empty());

        // Release gives back only rows the claim holds.
        assert_eq!(
            outbox.release(second.token, &[events[1].id]).await.unwrap(),
            0,
            "another claim's row"
        );
        assert_eq!(
            outbox
                .release(first.token, &[events[1].id, events[1].id])
                .await
                .unwrap(),
            1
        );
        let again = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(ids(&again), [events[1].id]);
        assert_eq!(again.records[0].attempts, 2);

        // Ack twice is harmless; unknown ids and other claims' rows are ignored.
        let unknown = ev(t, T0, "x.y").id;
        assert_eq!(
            outbox
                .ack(first.token, &[events[0].id, unknown, events[1].id])
                .await
                .unwrap(),
            1
        );
        assert_eq!(outbox.ack(first.token, &[events[0].id]).await.unwrap(), 0);
        assert_eq!(outbox.depth().await.unwrap(), 2);
        // A published row is still known: recording it again does not re-enqueue.
        audit.record(events[0].clone()).await.unwrap();
        assert_eq!(outbox.depth().await.unwrap(), 2);

        // The lease lapses at exactly claimed_until: the row may be claimed again, and the
        // old claim can no longer act on it.
        clock.advance(secs(10));
        let expired = outbox.claim(10, secs(10)).await.unwrap();
        let seen: Vec<_> = expired
            .records
            .iter()
            .map(|r| (r.message.id, r.attempts))
            .collect();
        assert_eq!(seen, [(events[1].id, 3), (events[2].id, 2)]);
        assert_eq!(outbox.ack(again.token, &[events[1].id]).await.unwrap(), 0);

        let acked_at = clock_now(&clock);
        assert_eq!(
            outbox
                .ack(expired.token, &[events[1].id, events[2].id])
                .await
                .unwrap(),
            2
        );
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

    #[tokio::test]
    async fn one_key_is_held_by_one_claim_and_rejections_hold_it_back() {
        let (m, clock) = model();
        let (audit, outbox) = (m.audit(), m.outbox());
        let t = TenantId::new();
        let (a, b) = (UserId::new(), UserId::new());
        let events: Vec<_> = [a, a, b, a]
            .into_iter()
            .map(|s| {
                let mut e = ev(t, T0, "login.ok");
                e.subject_user_id = Some(s);
                e
            })
            .collect();
        for e in &events {
            audit.record(e.clone()).await.unwrap();
        }
        // The candidates are rows 0 and 1; row 3 of key a is not handed out beyond them.
        let first = outbox.claim(2, secs(10)).await.unwrap();
        assert_eq!(ids(&first), [events[0].id, events[1].id]);
        // Rows 2 (key b) and 3 are candidates now, but 3 waits for a's held rows.
        let second = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(ids(&second), [events[2].id]);
        // A rejected row keeps holding its key during its retry delay...
        assert!(
            outbox
                .reject(
                    first.token,
                    events[0].id,
                    "bad",
                    Disposition::RetryAfter(secs(5))
                )
                .await
                .unwrap()
        );
        assert_eq!(
            outbox.release(first.token, &[events[1].id]).await.unwrap(),
            1
        );
        assert!(outbox.claim(10, secs(10)).await.unwrap().records.is_empty());
        // ...is retried after it...
        clock.advance(secs(5));
        let retry = outbox.claim(1, secs(10)).await.unwrap();
        assert_eq!(ids(&retry), [events[0].id]);
        assert_eq!(retry.records[0].failures, 1);
        // ...and once set aside no longer holds the key back.
        assert!(
            outbox
                .reject(
                    retry.token,
                    events[0].id,
                    "still bad",
                    Disposition::SetAside
                )
                .await
                .unwrap()
        );
        assert_eq!(outbox.depth().await.unwrap(), 3);
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 1);
        let rest = outbox.claim(10, secs(10)).await.unwrap();
        assert_eq!(ids(&rest), [events[1].id, events[3].id]);
        let dead = outbox.dead_letters(PageRequest::first(10)).await.unwrap();
        assert_eq!(dead.items.len(), 1);
        assert_eq!(
            (
                dead.items[0].message.id,
                dead.items[0].failures,
                dead.items[0].reason.as_str()
            ),
            (events[0].id, 2, "still bad")
        );
        assert_eq!(
            outbox.requeue(&[events[0].id, events[1].id]).await.unwrap(),
            1
        );
        assert_eq!(outbox.dead_letter_count().await.unwrap(), 0);
        assert_eq!(outbox.depth().await.unwrap(), 4);
    }

    fn ids(c: &credo_ports::Claim) -> Vec<credo_ports::EventId> {
        c.records.iter().map(|r| r.message.id).collect()
    }

    fn clock_now(c: &credo_ports::ManualClock) -> Timestamp {
        credo_ports::Clock::now(c)
    }

    #[tokio::test]
    async fn append_batch_is_idempotent_and_all_or_nothing() {
        let (m, _) = model();
        let audit = m.audit_log();
        let (t, other) = (TenantId::new(), TenantId::new());
        let a = ev(t, T0, "a.b");
        let b = ev(other, T0, "a.b");
        assert_eq!(
            audit
                .append_batch(&[a.clone(), a.clone(), b.clone()])
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
                .append_batch(&[a.clone(), b.clone(), c.clone()])
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
                .append_batch(&[d.clone(), bad])
                .await
                .unwrap_err()
                .kind(),
            "InvalidInput"
        );
        assert_eq!(audit.get(t, d.id).await.unwrap(), None, "nothing written");
        assert_eq!(audit.get(t, a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(audit.get(other, a.id).await.unwrap(), None);
        // The sink decodes and appends.
        let sink = (m.sinks())(m.audit_log());
        let encoded = [EncodedEvent::encode(&a), EncodedEvent::encode(&d)];
        assert_eq!(
            sink.publish(&encoded).await.unwrap(),
            [Delivery::Published, Delivery::Published]
        );
        assert_eq!(audit.count(t, AuditQuery::default()).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn query_paginates_filters_and_purges() {
        let (m, _) = model();
        let audit = m.audit_log();
        let t = TenantId::new();
        let mut batch = Vec::new();
        for i in 0..9u64 {
            // Three events per instant, so ties on occurred_at are broken by id.
            let at = T0.saturating_add(secs(i / 3));
            let action = if i % 2 == 0 { "even.x" } else { "odd.x" };
            batch.push(ev(t, at, action));
        }
        batch.push(ev(TenantId::new(), T0, "even.x"));
        audit.append_batch(&batch).await.unwrap();
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
        let claim = m.outbox().claim(10, secs(1)).await.unwrap();
        assert_eq!(claim.records.len(), 1);
        let message = claim.records[0].message.clone();
        assert_eq!(message.event_type, "user.created");
        assert_eq!(message.subject, Some(u.id));
        (m.sinks())(m.audit_log())
            .publish(std::slice::from_ref(&message))
            .await
            .unwrap();
        let event = message.decode().unwrap();
        assert_eq!(m.audit_log().get(t, event.id).await.unwrap(), Some(event));
    }
}
