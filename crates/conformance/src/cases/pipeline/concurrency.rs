//! Concurrency cases of the pipeline: concurrent relays publish each event once and keep each
//! subject's events in recording order.

use super::doubles::{Recorder, Witness};
use super::{log, per_subject, recorded_event, relay};
use crate::cases::{eq, ok, race, tenant, user_id};
use crate::harness::Stores;
use crate::support::Ctx;
use credo_pipeline::OutboxRelay;
use credo_ports::{AuditCategory, AuditEvent, EventId, EventSink, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn concurrent_relays_publish_each_event_once(ctx: &Ctx) -> Result<(), String> {
    const EVENTS: u16 = 300;
    let s = ctx.fresh().await?;
    for i in 0..EVENTS {
        ok(
            "record",
            s.audit()?.record(recorded_event(i, (i % 2) as u8)).await,
        )?;
    }
    let rec = Recorder::new(s.sink()?);
    let total = drain_concurrently(&s, rec.clone(), 4, 9).await?;
    eq("published by all relays together", total, u64::from(EVENTS))?;
    eq(
        "deliveries (none twice)",
        rec.seen.lock().len(),
        usize::from(EVENTS),
    )?;
    eq("materialized", log(&s).await?.len(), usize::from(EVENTS))
}

/// `relays` relays drain the outbox at once through `sink`; returns the events they published.
/// A relay stops when every candidate's key is held by another, so the last one running
/// publishes the rest; a final pass checks that nothing is left behind.
async fn drain_concurrently(
    s: &Stores,
    sink: Arc<dyn EventSink>,
    relays: usize,
    batch: usize,
) -> Result<u64, String> {
    let relays: Vec<Arc<OutboxRelay>> = (0..relays)
        .map(|_| relay(s, sink.clone(), batch).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let drained = race(relays.len(), |i| {
        let r = relays[i].clone();
        async move { r.drain().await }
    })
    .await?;
    let mut total = 0;
    for d in drained {
        total += ok("drain", d)?;
    }
    eq(
        "left for a final pass",
        ok("final drain", relays[0].drain().await)?,
        0,
    )?;
    Ok(total)
}

/// Records `per_subject` events for each of `subjects` subjects of tenants 0 and 1,
/// interleaved; returns them in recording order and each event's subject.
pub(super) async fn record_interleaved(
    s: &Stores,
    subjects: u8,
    per_subject: u16,
) -> Result<(Vec<AuditEvent>, HashMap<EventId, UserId>), String> {
    let audit = s.audit()?;
    let mut recorded = Vec::new();
    for _ in 0..per_subject {
        for subject in 0..subjects {
            let mut e = AuditEvent::new(
                tenant(subject % 2),
                s.now(),
                AuditCategory::Security,
                "auth.login_failed",
            );
            // `event_id` is unique below 4,096 only.
            e.id = EventId::new();
            e.subject_user_id = Some(user_id(subject));
            ok("record", audit.record(e.clone()).await)?;
            recorded.push(e);
        }
    }
    let subject_of = recorded
        .iter()
        .map(|e| (e.id, e.subject_user_id.expect("every event has a subject")))
        .collect();
    Ok((recorded, subject_of))
}

/// Per subject, `seen` (ids in arrival order, first arrival of each) equals recording order.
pub(super) fn same_order_per_subject(
    what: &str,
    seen: &[EventId],
    recorded: &[AuditEvent],
    subject_of: &HashMap<EventId, UserId>,
) -> Result<(), String> {
    let mut first = HashSet::new();
    let seen: Vec<EventId> = seen
        .iter()
        .copied()
        .filter(|id| first.insert(*id))
        .collect();
    let ids: Vec<EventId> = recorded.iter().map(|e| e.id).collect();
    let (got, want) = (
        per_subject(&seen, subject_of),
        per_subject(&ids, subject_of),
    );
    for (subject, expected) in &want {
        eq(
            &format!("{what}, subject {subject}"),
            got.get(subject).cloned().unwrap_or_default(),
            expected.clone(),
        )?;
    }
    Ok(())
}

/// Three relays drain one outbox through a slow sink: each subject's events reach the sink
/// and the log in recording order.
pub(super) async fn three_relays_keep_each_subject_in_order(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let (recorded, subject_of) = record_interleaved(&s, 8, 40).await?;
    let witness = Witness::new(s.audit_log()?);
    let rec = Recorder::slow(s.sink_into(witness.clone())?, Duration::from_millis(2));
    let total = drain_concurrently(&s, rec.clone(), 3, 7).await?;
    eq("published once each", total, recorded.len() as u64)?;
    eq("outbox empty", ok("depth", s.outbox()?.depth().await)?, 0)?;
    let entered: Vec<EventId> = rec.seen.lock().iter().map(|m| m.id).collect();
    same_order_per_subject("order into the sink", &entered, &recorded, &subject_of)?;
    let arrived = witness.arrivals.lock().clone();
    same_order_per_subject("order into the log", &arrived, &recorded, &subject_of)?;
    eq("materialized", log(&s).await?.len(), recorded.len())
}
