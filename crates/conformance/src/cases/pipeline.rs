//! The audit pipeline: user and consent mutations and `record` go to the outbox in the same
//! step as the change; a relay moves them to the sink; the log ends up holding exactly the
//! events recorded, once each, published in the order they were recorded.

use super::{cases, consent_id, ensure, eq, event_id, ok, race, tenant, user_id, without_id};
use crate::harness::{Port, Stores};
use crate::property::{self, Pair};
use crate::runner::Ctx;
use async_trait::async_trait;
use credo_ports::relay::{OutboxRelay, RelayConfig};
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, EventId, EventSink, GrantConsent, NewUser, PageRequest,
    StoreError, StoreResult, UserUpdate,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Pipeline;
        model_based_pipeline,
        relay_crash_after_publish_is_absorbed,
        failed_publish_releases_the_batch,
        concurrent_relays_publish_each_event_once,
    ]
}

const LEASE: Duration = Duration::from_secs(30);

/// A sink that records every batch it is given (in order) before passing it on, and can fail
/// its first publishes.
struct Recorder {
    inner: Arc<dyn EventSink>,
    seen: Mutex<Vec<AuditEvent>>,
    fail_next: AtomicU32,
}

impl Recorder {
    fn new(inner: Arc<dyn EventSink>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            seen: Mutex::new(Vec::new()),
            fail_next: AtomicU32::new(0),
        })
    }

    /// Published events, first delivery of each id only.
    fn first_deliveries(&self) -> Vec<AuditEvent> {
        let mut ids = HashSet::new();
        self.seen
            .lock()
            .iter()
            .filter(|e| ids.insert(e.id))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl EventSink for Recorder {
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("injected sink failure".into()));
        }
        self.seen.lock().extend(batch.iter().cloned());
        self.inner.publish(batch).await
    }
}

fn relay(s: &Stores, sink: Arc<dyn EventSink>, batch: usize) -> Result<OutboxRelay, String> {
    let config = RelayConfig {
        batch,
        lease: LEASE,
        ..RelayConfig::default()
    };
    OutboxRelay::new(s.outbox()?, sink, config).map_err(|e| e.to_string())
}

/// Every materialized event of the first three tenants, in log order.
async fn log(s: &Stores) -> Result<Vec<AuditEvent>, String> {
    let audit = s.audit()?;
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

fn recorded_event(i: u16, t: u8) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant(t),
        Stores::START,
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.id = event_id(i);
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

fn sides(p: &Pair) -> Result<Arc<Sides>, String> {
    let mut scratch = p.scratch.lock();
    if let Some(s) = scratch
        .as_ref()
        .and_then(|s| s.clone().downcast::<Sides>().ok())
    {
        return Ok(s);
    }
    let s = Arc::new(Sides {
        model: Recorder::new(p.model.sink()?),
        backend: Recorder::new(p.backend.sink()?),
    });
    *scratch = Some(s.clone());
    Ok(s)
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
        Op::RelayPass { batch } => {
            ok("relay pass", relay(s, rec.clone(), batch)?.pass().await)?;
        }
        Op::CrashAfterPublish { batch } => {
            let rows = ok("claim", s.outbox()?.claim(batch, LEASE).await)?;
            let events: Vec<_> = rows.into_iter().map(|r| r.event).collect();
            ok("publish", rec.publish(&events).await)?;
        }
        Op::Advance { secs } => s.clock.advance(Duration::from_secs(secs)),
    }
    Ok(())
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let sides = sides(p)?;
        // Both sides share one clock: advance it once.
        if let Op::Advance { secs } = op {
            p.backend.clock.advance(Duration::from_secs(*secs));
            return Ok(());
        }
        apply_one(&p.model, &sides.model, op).await?;
        apply_one(&p.backend, &sides.backend, op).await?;
        // After each step, a full drain (leases ended) must leave both logs identical.
        check_drained(p, &sides).await
    }
    .boxed()
}

async fn check_drained(p: &Pair, sides: &Sides) -> Result<(), String> {
    // Draining after every step is what a continuously running relay does; leases of crashed
    // claims end first.
    p.backend.clock.advance(LEASE);
    for (s, rec) in [(&p.model, &sides.model), (&p.backend, &sides.backend)] {
        ok("drain", relay(s, rec.clone(), 7)?.drain().await)?;
        eq(
            "outbox depth after drain",
            ok("depth", s.outbox()?.depth().await)?,
            0,
        )?;
    }
    let strip = |v: Vec<AuditEvent>| v.into_iter().map(without_id).collect::<Vec<_>>();
    eq(
        "events published, in recording order",
        strip(sides.backend.first_deliveries()),
        strip(sides.model.first_deliveries()),
    )?;
    let (ml, bl) = (log(&p.model).await?, log(&p.backend).await?);
    let ids: HashSet<EventId> = bl.iter().map(|e| e.id).collect();
    eq("no event materialized twice", ids.len(), bl.len())?;
    let published: HashSet<EventId> = sides
        .backend
        .first_deliveries()
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
    property::check(
        ctx,
        "pipeline",
        || proptest::collection::vec(op(), 1..25),
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
    // The relay dies after publishing 8 and before acking them.
    let rows = ok("claim", s.outbox()?.claim(8, LEASE).await)?;
    let events: Vec<_> = rows.into_iter().map(|r| r.event).collect();
    ok("publish", rec.publish(&events).await)?;
    let other = relay(&s, rec.clone(), 5)?;
    eq(
        "a second relay skips rows under a live claim",
        ok("drain", other.drain().await)?,
        12,
    )?;
    s.clock.advance(LEASE);
    eq(
        "after the lease the crashed batch is published again",
        ok("drain", other.drain().await)?,
        8,
    )?;
    eq("deliveries (8 twice)", rec.seen.lock().len(), 28)?;
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
    }
    eq("then it goes through", ok("drain", r.drain().await)?, 5)?;
    let recorded: Vec<_> = (0..5).map(|i| recorded_event(i, 1)).collect();
    eq(
        "in recording order",
        rec.first_deliveries(),
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
    let relays: Vec<Arc<OutboxRelay>> = (0..4)
        .map(|_| relay(&s, rec.clone(), 9).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let published = race(4, |i| {
        let r = relays[i].clone();
        async move { r.drain().await }
    })
    .await?;
    let total: u64 = published
        .into_iter()
        .map(|r| ok("drain", r))
        .sum::<Result<u64, _>>()?;
    eq("published by all relays together", total, u64::from(EVENTS))?;
    eq(
        "deliveries (none twice)",
        rec.seen.lock().len(),
        usize::from(EVENTS),
    )?;
    eq("materialized", log(&s).await?.len(), usize::from(EVENTS))
}
