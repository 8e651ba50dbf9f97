//! Unit tests of the model's audit recorder, audit log, outbox and sink, through the public
//! handles of a fresh model.

use super::super::test_support::{T0, model};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditQuery, Delivery, Disposition, EncodedEvent,
    PageRequest, TenantId, Timestamp, UserId,
};
use std::num::NonZeroU32;
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
    assert_eq!(
        outbox
            .purge_published(acked_at, NonZeroU32::MAX)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        outbox
            .purge_published(
                acked_at.saturating_add(Duration::from_micros(1)),
                NonZeroU32::MAX
            )
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
            .purge_before(T0.saturating_add(secs(1)), None, NonZeroU32::MAX)
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
