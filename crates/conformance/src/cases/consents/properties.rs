//! The model-based property of the consent store: random grants, revokes, listings and clock
//! steps over purposes that collations order differently, every result compared with the
//! model's.

use super::{SEC, grant};
use crate::cases::{tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{ConsentFilter, ConsentStatus};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::time::Duration;

/// Purposes the sequences draw from: ordinary ones; ones whose order differs between byte
/// order and a linguistic collation (which skips `-`, `_`, `.` and `:`); and ones the policy
/// refuses (upper case, a combining accent, a space).
const PURPOSES: [&str; 11] = [
    "marketing",
    "registry.check",
    "analytics:v2",
    "a-b",
    "a_b",
    "ab",
    "a.c",
    "a1",
    "Marketing",
    "marketi\u{301}ng",
    "Bad Purpose",
];

#[derive(Clone, Debug)]
enum Op {
    Grant {
        id: u8,
        t: u8,
        user: u8,
        purpose: u8,
        ttl: Option<i64>,
    },
    Revoke {
        t: u8,
        user: u8,
        purpose: u8,
    },
    Get {
        t: u8,
        user: u8,
        purpose: u8,
    },
    List {
        t: u8,
        user: u8,
        purpose: Option<u8>,
        status: Option<u8>,
    },
    RevokeAll {
        t: u8,
        user: u8,
    },
    DeleteAll {
        t: u8,
        user: u8,
    },
    Advance {
        micros: i64,
    },
    DrainEvents,
}

fn op() -> impl Strategy<Value = Op> {
    let (t, user, purpose) = (0u8..8, 0u8..2, 0..PURPOSES.len() as u8);
    prop_oneof![
        5 => (0u8..8, t.clone(), user.clone(), purpose.clone(), proptest::option::of(-1i64..4))
            .prop_map(|(id, t, user, purpose, ttl)| Op::Grant { id, t, user, purpose, ttl }),
        3 => (t.clone(), user.clone(), purpose.clone()).prop_map(|(t, user, purpose)| Op::Revoke { t, user, purpose }),
        2 => (t.clone(), user.clone(), purpose.clone()).prop_map(|(t, user, purpose)| Op::Get { t, user, purpose }),
        2 => (t.clone(), user.clone(), proptest::option::of(purpose.clone()), proptest::option::of(0u8..3))
            .prop_map(|(t, user, purpose, status)| Op::List { t, user, purpose, status }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::RevokeAll { t, user }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::DeleteAll { t, user }),
        3 => prop_oneof![Just(0i64), Just(1), Just(SEC - 1), Just(SEC)].prop_map(|micros| Op::Advance { micros }),
        1 => Just(Op::DrainEvents),
    ]
}

fn status(i: u8) -> ConsentStatus {
    [
        ConsentStatus::Active,
        ConsentStatus::Expired,
        ConsentStatus::Revoked,
    ][i as usize % 3]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.consents()?, p.backend.consents()?);
        let pur = |i: u8| PURPOSES[i as usize % PURPOSES.len()];
        match op.clone() {
            Op::Grant {
                id,
                t,
                user,
                purpose,
                ttl,
            } => {
                let g = grant(&p.backend, id, t, user, pur(purpose), ttl);
                same(op, m.grant(g.clone()).await, b.grant(g).await)
            }
            Op::Revoke { t, user, purpose } => same(
                op,
                m.revoke(tenant(t), user_id(user), pur(purpose)).await,
                b.revoke(tenant(t), user_id(user), pur(purpose)).await,
            ),
            Op::Get { t, user, purpose } => same(
                op,
                m.get(tenant(t), user_id(user), pur(purpose)).await,
                b.get(tenant(t), user_id(user), pur(purpose)).await,
            ),
            Op::List {
                t,
                user,
                purpose,
                status: st,
            } => {
                let f = ConsentFilter {
                    purpose: purpose.map(|p| pur(p).to_string()),
                    status: st.map(status),
                };
                same(
                    op,
                    m.list_for_user(tenant(t), user_id(user), f.clone()).await,
                    b.list_for_user(tenant(t), user_id(user), f).await,
                )
            }
            Op::RevokeAll { t, user } => same(
                op,
                m.revoke_all_for_user(tenant(t), user_id(user)).await,
                b.revoke_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::DeleteAll { t, user } => same(
                op,
                m.delete_all_for_user(tenant(t), user_id(user)).await,
                b.delete_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::Advance { micros } => {
                p.backend
                    .clock
                    .advance(Duration::from_micros(micros as u64));
                Ok(())
            }
            Op::DrainEvents => {
                property::same_drained_events(
                    p,
                    "audit events recorded by consent changes",
                    property::Ids::Generated,
                )
                .await
            }
        }
    }
    .boxed()
}

pub(super) async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "consents", || property::sequence(op), apply).await
}
