//! The audit pipeline: user and consent mutations and `record` go to the outbox in the same
//! step as the change; relays move them to the sink; the log ends up holding exactly the
//! events recorded, once each, each subject's events in the order they were recorded, however
//! many relays run; a row the sink cannot take is set aside without holding up the others.

use super::{cases, consent_id, ensure, eq, event_id, ok, race, tenant, user_id, without_id};
use crate::harness::{Port, Stores};
use crate::property::{self, Pair};
use crate::support::Ctx;
use async_trait::async_trait;
use credo_pipeline::{Backoff, OutboxRelay, RelayConfig, RelayPass};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, Delivery, EncodedEvent,
    EventId, EventSink, GrantConsent, NewUser, Page, PageRequest, StoreError, StoreResult,
    TenantId, Timestamp, UserId, UserUpdate,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Pipeline;
        model_based_pipeline,
        relay_crash_after_publish_is_absorbed,
        failed_publish_releases_the_batch,
        concurrent_relays_publish_each_event_once,
        three_relays_keep_each_subject_in_order,
        a_poison_row_is_set_aside_and_holds_up_nothing,
        a_requeued_dead_letter_is_relayed,
    ]
}

/// Longer than any sink's delivery timeout (the Kafka lane's: 30 s to the broker, 30 s to settle).
const LEASE: Duration = Duration::from_secs(90);

/// A sink that passes messages on and records, in order, those its inner sink published; it can
/// fail its first publishes as a whole, reject chosen events, and be slow.
struct Recorder {
    inner: Arc<dyn EventSink>,
    /// Published messages, in the order their publishes returned.
    seen: Mutex<Vec<EncodedEvent>>,
    fail_next: AtomicU32,
    /// Events rejected (each costs one of its count) instead of passed on.
    reject: Mutex<HashMap<EventId, u32>>,
    delay: Duration,
}

impl Recorder {
    fn new(inner: Arc<dyn EventSink>) -> Arc<Self> {
        Self::slow(inner, Duration::ZERO)
    }

    fn slow(inner: Arc<dyn EventSink>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: Mutex::new(Vec::new()),
            fail_next: AtomicU32::new(0),
            reject: Mutex::new(HashMap::new()),
            delay,
        })
    }

    /// Published events, first delivery of each id only, decoded.
    fn first_deliveries(&self) -> Result<Vec<AuditEvent>, String> {
        let mut ids = HashSet::new();
        self.seen
            .lock()
            .iter()
            .filter(|m| ids.insert(m.id))
            .map(EncodedEvent::decode)
            .collect()
    }
}

#[async_trait]
impl EventSink for Recorder {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected sink failure".into()));
        }
        // Rejections follow the sink contract: later events of the key are held back.
        let mut out = vec![Delivery::Held; batch.len()];
        let mut passed = Vec::new();
        let mut stopped = HashSet::new();
        {
            let mut reject = self.reject.lock();
            for (i, m) in batch.iter().enumerate() {
                if stopped.contains(&m.order_key()) {
                    continue;
                }
                match reject.get_mut(&m.id).filter(|n| **n > 0) {
                    Some(n) => {
                        *n -= 1;
                        out[i] = Delivery::Rejected("injected rejection".into());
                        stopped.insert(m.order_key());
                    }
                    None => passed.push(i),
                }
            }
        }
        let through: Vec<EncodedEvent> = passed.iter().map(|&i| batch[i].clone()).collect();
        let deliveries = self.inner.publish(&through).await?;
        let mut seen = self.seen.lock();
        for (i, d) in passed.into_iter().zip(deliveries) {
            if d == Delivery::Published {
                seen.push(batch[i].clone());
            }
            out[i] = d;
        }
        Ok(out)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.inner.delivery_timeout()
    }
}

/// An audit log that notes the order in which event ids arrive.
struct Witness {
    inner: Arc<dyn AuditLog>,
    arrivals: Mutex<Vec<EventId>>,
}

impl Witness {
    fn new(inner: Arc<dyn AuditLog>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            arrivals: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl AuditLog for Witness {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let outcome = self.inner.append_batch(events).await?;
        self.arrivals.lock().extend(ids);
        Ok(outcome)
    }
    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        self.inner.get(tenant, id).await
    }
    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.inner.query(tenant, query, page).await
    }
    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        self.inner.count(tenant, query).await
    }
    async fn purge_before(&self, before: Timestamp) -> StoreResult<u64> {
        self.inner.purge_before(before).await
    }
}

fn relay_config(batch: usize) -> RelayConfig {
    RelayConfig {
        batch,
        lease: LEASE,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(1)),
        max_failures: 3,
        ..RelayConfig::default()
    }
}

fn relay(s: &Stores, sink: Arc<dyn EventSink>, batch: usize) -> Result<OutboxRelay, String> {
    OutboxRelay::new(s.outbox()?, sink, relay_config(batch)).map_err(|e| e.to_string())
}

/// Every materialized event of the first three tenants, in log order.
async fn log(s: &Stores) -> Result<Vec<AuditEvent>, String> {
    let audit = s.audit_log()?;
    let mut all = Vec::new();
    for t in 0..3 {
        let mut after = None;
        loop {
            let page = ok(
                "query",
                audit
                    .query(
                        tenant(t),
                        AuditQuery::default(),
                        PageRequest { after, limit: 1000 },
                    )
                    .await,
            )?;
            all.extend(page.items);
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    Ok(all)
}

/// Per subject, the order in which `ids` name its events.
fn per_subject(
    ids: &[EventId],
    subject: &HashMap<EventId, UserId>,
) -> HashMap<UserId, Vec<EventId>> {
    let mut out: HashMap<UserId, Vec<EventId>> = HashMap::new();
    for id in ids {
        if let Some(s) = subject.get(id) {
            out.entry(*s).or_default().push(*id);
        }
    }
    out
}

fn recorded_event(i: u16, t: u8) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant(t),
        Stores::START,
        AuditCategory::Security,
        "auth.login_failed",
    );
    // One id space per tenant: recording another tenant's id is a conflict (see
    // `audit/event_ids_deduplicate_per_tenant`); re-recording one's own is idempotent.
    e.id = event_id(i + 100 * u16::from(t));
    e.subject_user_id = Some(user_id((i % 3) as u8));
    e
}

#[derive(Clone, Debug)]
enum Op {
    CreateUser {
        id: u8,
        t: u8,
    },
    UpdateUser {
        id: u8,
        t: u8,
    },
    DeleteUser {
        id: u8,
        t: u8,
    },
    Grant {
        t: u8,
        user: u8,
        purpose: u8,
    },
    Revoke {
        t: u8,
        user: u8,
        purpose: u8,
    },
    Record {
        i: u16,
        t: u8,
    },
    /// A row no sink can take (not an envelope, larger than a Kafka message may be), about a
    /// user of tenant `t`.
    Poison {
        i: u16,
        t: u8,
        user: u8,
    },
    RelayPass {
        batch: usize,
    },
    /// A relay that claims and publishes, then dies before acking.
    CrashAfterPublish {
        batch: usize,
    },
    Advance {
        secs: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let (id, t) = (0u8..4, 0u8..2);
    prop_oneof![
        3 => (id.clone(), t.clone()).prop_map(|(id, t)| Op::CreateUser { id, t }),
        2 => (id.clone(), t.clone()).prop_map(|(id, t)| Op::UpdateUser { id, t }),
        1 => (id.clone(), t.clone()).prop_map(|(id, t)| Op::DeleteUser { id, t }),
        3 => (t.clone(), 0u8..3, 0u8..2).prop_map(|(t, user, purpose)| Op::Grant { t, user, purpose }),
        2 => (t.clone(), 0u8..3, 0u8..2).prop_map(|(t, user, purpose)| Op::Revoke { t, user, purpose }),
        3 => (0u16..10, t.clone()).prop_map(|(i, t)| Op::Record { i, t }),
        1 => (0u16..4, t.clone(), 0u8..3).prop_map(|(i, t, user)| Op::Poison { i, t, user }),
        2 => (1usize..4).prop_map(|batch| Op::RelayPass { batch }),
        1 => (1usize..4).prop_map(|batch| Op::CrashAfterPublish { batch }),
        1 => (0u64..40).prop_map(|secs| Op::Advance { secs }),
    ]
}

/// The recording sink of each side, for the length of one generated sequence.
struct Sides {
    model: Arc<Recorder>,
    backend: Arc<Recorder>,
}

fn sides(p: &Pair) -> Result<Sides, String> {
    Ok(Sides {
        model: Recorder::new(p.model.sink()?),
        backend: Recorder::new(p.backend.sink()?),
    })
}

/// Applies one operation to one side; results are not compared here (the stores' own suites
/// do that), only what reaches the log.
async fn apply_one(s: &Stores, rec: &Arc<Recorder>, op: &Op) -> Result<(), String> {
    let purpose = |i: u8| ["marketing", "analytics"][usize::from(i)];
    match op.clone() {
        Op::CreateUser { id, t } => {
            let mut u = NewUser::new(tenant(t), &format!("u{id}@example.com"), "F", "L");
            u.id = user_id(id);
            let _ = s.users()?.create(u).await;
        }
        Op::UpdateUser { id, t } => {
            let upd = UserUpdate {
                first_name: Some("G".into()),
                ..Default::default()
            };
            let _ = s.users()?.update(tenant(t), user_id(id), upd, None).await;
        }
        Op::DeleteUser { id, t } => {
            let _ = s.users()?.delete(tenant(t), user_id(id)).await;
        }
        Op::Grant {
            t,
            user,
            purpose: p,
        } => {
            let g = GrantConsent {
                id: consent_id(user * 2 + p + 10 * t),
                tenant_id: tenant(t),
                user_id: user_id(user),
                purpose: purpose(p).into(),
                expires_at: None,
            };
            let _ = s.consents()?.grant(g).await;
        }
        Op::Revoke {
            t,
            user,
            purpose: p,
        } => {
            let _ = s
                .consents()?
                .revoke(tenant(t), user_id(user), purpose(p))
                .await;
        }
        Op::Record { i, t } => ok("record", s.audit()?.record(recorded_event(i, t)).await)?,
        Op::Poison { i, t, user } => {
            let poison = poison_row(event_id(2000 + i), tenant(t), user_id(user));
            ok("raw insert", (s.raw_outbox()?)(poison).await)?;
        }
        Op::RelayPass { batch } => {
            ok("relay pass", relay(s, rec.clone(), batch)?.pass().await)?;
        }
        Op::CrashAfterPublish { batch } => {
            let claim = ok("claim", s.outbox()?.claim(batch, LEASE).await)?;
            let messages: Vec<_> = claim.records.into_iter().map(|r| r.message).collect();
            ok("publish", rec.publish(&messages).await)?;
        }
        Op::Advance { secs } => s.clock.advance(Duration::from_secs(secs)),
    }
    Ok(())
}

fn apply<'a>(p: &'a Pair<Sides>, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let sides = &p.state;
        // Both sides share one clock: advance it once.
        if let Op::Advance { secs } = op {
            p.backend.clock.advance(Duration::from_secs(*secs));
            return Ok(());
        }
        apply_one(&p.model, &sides.model, op).await?;
        apply_one(&p.backend, &sides.backend, op).await?;
        // After each step, a full drain (leases ended) must leave both logs identical.
        check_drained(p).await
    }
    .boxed()
}

async fn check_drained(p: &Pair<Sides>) -> Result<(), String> {
    let sides = &p.state;
    // Draining after every step is what a continuously running relay does; leases of crashed
    // claims end first.
    p.backend.clock.advance(LEASE);
    // Poison rows wait out their retry delays (at most 1.5 s) until they are set aside.
    for round in 0.. {
        let mut pending = 0;
        for (s, rec) in [(&p.model, &sides.model), (&p.backend, &sides.backend)] {
            ok("drain", relay(s, rec.clone(), 7)?.drain().await)?;
            pending += ok("depth", s.outbox()?.depth().await)?;
        }
        if pending == 0 {
            break;
        }
        ensure(round < 5, || {
            format!("{pending} rows still pending after {round} rounds")
        })?;
        p.backend.clock.advance(Duration::from_secs(2));
    }
    eq(
        "dead letters",
        ok("count", p.backend.outbox()?.dead_letter_count().await)?,
        ok("count", p.model.outbox()?.dead_letter_count().await)?,
    )?;
    let strip = |v: Vec<AuditEvent>| v.into_iter().map(without_id).collect::<Vec<_>>();
    eq(
        "events published, in recording order",
        strip(sides.backend.first_deliveries()?),
        strip(sides.model.first_deliveries()?),
    )?;
    let (ml, bl) = (log(&p.model).await?, log(&p.backend).await?);
    let ids: HashSet<EventId> = bl.iter().map(|e| e.id).collect();
    eq("no event materialized twice", ids.len(), bl.len())?;
    let published: HashSet<EventId> = sides
        .backend
        .first_deliveries()?
        .iter()
        .map(|e| e.id)
        .collect();
    eq("log holds exactly the published events", ids, published)?;
    let sorted = |v: Vec<AuditEvent>| {
        let mut v = strip(v);
        v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        v
    };
    eq(
        "materialized log (as a multiset, ids aside)",
        sorted(bl),
        sorted(ml),
    )
}

async fn model_based_pipeline(ctx: &Ctx) -> Result<(), String> {
    property::check_with(
        ctx,
        "pipeline",
        || proptest::collection::vec(op(), 1..25),
        sides,
        apply,
    )
    .await
}

async fn relay_crash_after_publish_is_absorbed(ctx: &Ctx) -> Result<(), String> {
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

async fn failed_publish_releases_the_batch(ctx: &Ctx) -> Result<(), String> {
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

async fn concurrent_relays_publish_each_event_once(ctx: &Ctx) -> Result<(), String> {
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
async fn record_interleaved(
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
fn same_order_per_subject(
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
async fn three_relays_keep_each_subject_in_order(ctx: &Ctx) -> Result<(), String> {
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
fn poison_row(id: EventId, tenant_id: TenantId, subject: UserId) -> EncodedEvent {
    EncodedEvent {
        id,
        tenant_id,
        subject: Some(subject),
        event_type: "auth.login_failed".into(),
        schema_version: 1,
        payload: "x".repeat(1_200_000),
    }
}

/// One row that no sink can take (not an envelope, and larger than a Kafka message may be)
/// among 10,000 good ones: every good row reaches the log in order, the bad one is retried,
/// then set aside, counted and listed, and it holds up nothing for good.
async fn a_poison_row_is_set_aside_and_holds_up_nothing(ctx: &Ctx) -> Result<(), String> {
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
async fn a_requeued_dead_letter_is_relayed(ctx: &Ctx) -> Result<(), String> {
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
