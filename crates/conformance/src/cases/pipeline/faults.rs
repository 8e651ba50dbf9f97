//! Fault cases of the pipeline: a relay crash after publishing, a failed publish, a poison row
//! set aside, and a re-queued dead letter.

use super::concurrency::{record_interleaved, same_order_per_subject};
use super::doubles::{Recorder, Witness};
use super::{LEASE, log, recorded_event, relay};
use crate::cases::{ensure, eq, event_id, ok, tenant, user_id};
use crate::harness::Stores;
use crate::support::Ctx;
use credo_pipeline::{OutboxRelay, RelayPass};
use credo_ports::{EncodedEvent, EventId, EventSink, PageRequest, TenantId, UserId};
use std::sync::atomic::Ordering;
use std::time::Duration;

pub(super) async fn relay_crash_after_publish_is_absorbed(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let audit = s.audit()?;
    for i in 0..20 {
        ok("record", audit.record(recorded_event(i, 0)).await)?;
    }
    let rec = Recorder::new(s.sink()?);
    // The relay dies after publishing 8 (of all three subjects) and before acking them.
    let claim = ok("claim", s.outbox()?.claim(8, LEASE).await)?;
    let messages: Vec<_> = claim.records.into_iter().map(|r| r.message).collect();
    ok("publish", rec.publish(&messages).await)?;
    let other = relay(&s, rec.clone(), 5)?;
    eq(
        "a second relay waits: every subject's next event is behind a live claim",
        ok("drain", other.drain().await)?,
        0,
    )?;
    s.clock.advance(LEASE);
    eq(
        "after the lease the crashed batch is published again, then the rest",
        ok("drain", other.drain().await)?,
        20,
    )?;
    eq("deliveries (8 twice)", rec.seen.lock().len(), 28)?;
    let recorded: Vec<_> = (0..20).map(|i| recorded_event(i, 0)).collect();
    eq(
        "first deliveries in recording order",
        rec.first_deliveries()?,
        recorded,
    )?;
    eq("materialized once each", log(&s).await?.len(), 20)?;
    eq("outbox empty", ok("depth", s.outbox()?.depth().await)?, 0)
}

pub(super) async fn failed_publish_releases_the_batch(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    for i in 0..5 {
        ok("record", s.audit()?.record(recorded_event(i, 1)).await)?;
    }
    let rec = Recorder::new(s.sink()?);
    rec.fail_next.store(2, Ordering::SeqCst);
    let r = relay(&s, rec.clone(), 10)?;
    for attempt in 0..2 {
        let e = r
            .pass()
            .await
            .err()
            .ok_or("an injected failure was not reported")?;
        ensure(e.is_retryable(), || {
            format!("attempt {attempt}: {e:?} should be retryable")
        })?;
        // Released at once: claimable again without waiting for the lease.
        eq(
            "claimable again",
            ok("depth", s.outbox()?.depth().await)?,
            5,
        )?;
        eq(
            "nothing set aside for a failure of the whole batch",
            ok("dead letters", s.outbox()?.dead_letter_count().await)?,
            0,
        )?;
    }
    eq("then it goes through", ok("drain", r.drain().await)?, 5)?;
    let recorded: Vec<_> = (0..5).map(|i| recorded_event(i, 1)).collect();
    eq(
        "in recording order",
        rec.first_deliveries()?,
        recorded.clone(),
    )?;
    eq("log", log(&s).await?, recorded)
}

/// Passes until one makes no progress, then lets the retry delays run out (store clock) and
/// goes on, until nothing is pending; returns the totals.
async fn settle(s: &Stores, relay: &OutboxRelay) -> Result<RelayPass, String> {
    let mut total = RelayPass::default();
    for _ in 0..1000 {
        let pass = ok("relay pass", relay.pass().await)?;
        total.claimed += pass.claimed;
        total.published += pass.published;
        total.rejected += pass.rejected;
        total.dead_lettered += pass.dead_lettered;
        if pass.published + pass.rejected == 0 {
            if ok("depth", s.outbox()?.depth().await)? == 0 {
                return Ok(total);
            }
            s.clock.advance(Duration::from_secs(2));
        }
    }
    Err(format!("the outbox did not settle: {total:?}"))
}

/// A row no sink can take: not an envelope, and larger than a Kafka message may be (librdkafka's
/// default `message.max.bytes` is 1,000,000).
pub(super) fn poison_row(id: EventId, tenant_id: TenantId, subject: UserId) -> EncodedEvent {
    EncodedEvent {
        id,
        tenant_id,
        subject: Some(subject),
        event_type: "auth.login_failed".into(),
        schema_version: 1,
        payload: "x".repeat(1_200_000),
        traceparent: None,
        enqueued_at: None,
    }
}

/// One row that no sink can take (not an envelope, and larger than a Kafka message may be)
/// among 10,000 good ones: every good row reaches the log in order, the bad one is retried,
/// then set aside, counted and listed, and it holds up nothing for good.
pub(super) async fn a_poison_row_is_set_aside_and_holds_up_nothing(
    ctx: &Ctx,
) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let (mut recorded, mut subject_of) = record_interleaved(&s, 20, 250).await?;
    let poison = poison_row(EventId::new(), tenant(1), user_id(3));
    ok("raw insert", (s.raw_outbox()?)(poison.clone()).await)?;
    let (more, more_subjects) = {
        let audit = s.audit()?;
        let mut more = Vec::new();
        for i in 0..5000u16 {
            let mut e = recorded_event(0, (i % 2) as u8);
            e.id = EventId::new();
            e.subject_user_id = Some(user_id((i % 20) as u8));
            ok("record", audit.record(e.clone()).await)?;
            more.push(e);
        }
        let subjects: Vec<_> = more
            .iter()
            .map(|e| (e.id, e.subject_user_id.unwrap()))
            .collect();
        (more, subjects)
    };
    recorded.extend(more);
    subject_of.extend(more_subjects);
    let witness = Witness::new(s.audit_log()?);
    let relay = relay(&s, s.sink_into(witness.clone())?, 500)?;
    let total = settle(&s, &relay).await?;
    eq("published", total.published, recorded.len() as u64)?;
    eq("rejections (max_failures 3)", total.rejected, 3)?;
    eq("set aside", total.dead_lettered, 1)?;
    let outbox = s.outbox()?;
    eq("counted", ok("count", outbox.dead_letter_count().await)?, 1)?;
    let dead = ok("list", outbox.dead_letters(PageRequest::first(10)).await)?;
    eq("listed", dead.items.len(), 1)?;
    eq(
        "the poison row, unchanged",
        (&dead.items[0].message, dead.items[0].failures),
        (&poison, 3),
    )?;
    ensure(!dead.items[0].reason.is_empty(), || {
        "the reason is kept".into()
    })?;
    let arrived = witness.arrivals.lock().clone();
    same_order_per_subject("order into the log", &arrived, &recorded, &subject_of)?;
    eq("materialized", log(&s).await?.len(), recorded.len())
}

/// A row set aside after repeated rejections is relayed once an operator re-queues it.
pub(super) async fn a_requeued_dead_letter_is_relayed(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    for i in 0..6 {
        ok("record", s.audit()?.record(recorded_event(i, 0)).await)?;
    }
    let rec = Recorder::new(s.sink()?);
    let bad = recorded_event(1, 0);
    rec.reject.lock().insert(bad.id, 3);
    let r = relay(&s, rec.clone(), 10)?;
    let total = settle(&s, &r).await?;
    eq("set aside after 3 rejections", total.dead_lettered, 1)?;
    let outbox = s.outbox()?;
    let dead = ok("list", outbox.dead_letters(PageRequest::first(10)).await)?;
    eq(
        "listed",
        dead.items.iter().map(|d| d.message.id).collect::<Vec<_>>(),
        vec![bad.id],
    )?;
    eq(
        "requeue",
        ok("requeue", outbox.requeue(&[bad.id]).await)?,
        1,
    )?;
    eq("relayed", ok("drain", r.drain().await)?, 1)?;
    eq(
        "no dead letters",
        ok("count", outbox.dead_letter_count().await)?,
        0,
    )?;
    let mut logged: Vec<EventId> = log(&s).await?.iter().map(|e| e.id).collect();
    logged.sort();
    let mut all: Vec<EventId> = (0..6).map(event_id).collect();
    all.sort();
    eq("every event in the log", logged, all)
}
