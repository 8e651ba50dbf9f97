//! The model-based property of the pipeline: random records, mutations and relay passes on
//! both sides, the drained logs compared with the model's.

use super::doubles::Recorder;
use super::faults::poison_row;
use super::{LEASE, log, recorded_event, relay};
use crate::cases::{consent_id, ensure, eq, event_id, ok, tenant, user_id, without_id};
use crate::harness::Stores;
use crate::property::{self, Pair};
use crate::support::Ctx;
use credo_ports::{AuditEvent, EventId, EventSink, GrantConsent, NewUser, UserUpdate};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

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

pub(super) async fn model_based_pipeline(ctx: &Ctx) -> Result<(), String> {
    property::check_with(
        ctx,
        "pipeline",
        || proptest::collection::vec(op(), 1..25),
        sides,
        apply,
    )
    .await
}
