//! The model-based property of the session store: random operation sequences over sessions
//! and token revocations, every result compared with the model's.

use super::{SEC, new_session};
use crate::cases::{session_id, tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::Timestamp;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;

#[derive(Clone, Debug)]
enum Op {
    Create {
        id: u8,
        t: u8,
        user: u8,
        ttl: i64,
        pending: bool,
        no_scopes: bool,
    },
    Get {
        t: u8,
        id: u8,
    },
    Touch {
        t: u8,
        id: u8,
    },
    Refresh {
        t: u8,
        id: u8,
    },
    Activate {
        t: u8,
        id: u8,
    },
    Revoke {
        t: u8,
        id: u8,
    },
    RevokeAll {
        t: u8,
        user: u8,
    },
    List {
        t: u8,
        user: u8,
    },
    Purge,
    RevokeToken {
        t: u8,
        jti: u8,
        ttl: i64,
    },
    IsTokenRevoked {
        t: u8,
        jti: u8,
    },
    Advance {
        micros: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let (id, t, user) = (0u8..6, 0u8..8, 0u8..3);
    prop_oneof![
        4 => (id.clone(), t.clone(), user.clone(), -1i64..4, any::<bool>(), prop::bool::weighted(0.05))
            .prop_map(|(id, t, user, ttl, pending, no_scopes)| Op::Create { id, t, user, ttl, pending, no_scopes }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Get { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Touch { t, id }),
        1 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Refresh { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Activate { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Revoke { t, id }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::RevokeAll { t, user }),
        2 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::List { t, user }),
        1 => Just(Op::Purge),
        2 => (t.clone(), 0u8..3, -1i64..4).prop_map(|(t, jti, ttl)| Op::RevokeToken { t, jti, ttl }),
        2 => (t.clone(), 0u8..3).prop_map(|(t, jti)| Op::IsTokenRevoked { t, jti }),
        3 => prop_oneof![4 => prop_oneof![Just(0i64), Just(1), Just(SEC - 1), Just(SEC), Just(-SEC)], 1 => prop_oneof![Just(86_400 * SEC), Just(366 * 86_400 * SEC), Just(-86_400 * SEC), Just(-30 * 366 * 86_400 * SEC)]].prop_map(|micros| Op::Advance { micros }),
    ]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.sessions()?, p.backend.sessions()?);
        let jti = |j: u8| format!("jti-{j}");
        match op.clone() {
            Op::Create {
                id,
                t,
                user,
                ttl,
                pending,
                no_scopes,
            } => {
                let mut s = new_session(&p.backend, id, t, user, ttl, pending);
                if no_scopes {
                    s.scopes.clear();
                }
                same(op, m.create(s.clone()).await, b.create(s).await)
            }
            Op::Get { t, id } => same(
                op,
                m.get(tenant(t), session_id(id)).await,
                b.get(tenant(t), session_id(id)).await,
            ),
            Op::Touch { t, id } => same(
                op,
                m.touch(tenant(t), session_id(id)).await,
                b.touch(tenant(t), session_id(id)).await,
            ),
            Op::Refresh { t, id } => same(
                op,
                m.mark_refreshed(tenant(t), session_id(id)).await,
                b.mark_refreshed(tenant(t), session_id(id)).await,
            ),
            Op::Activate { t, id } => same(
                op,
                m.activate(tenant(t), session_id(id)).await,
                b.activate(tenant(t), session_id(id)).await,
            ),
            Op::Revoke { t, id } => same(
                op,
                m.revoke(tenant(t), session_id(id)).await,
                b.revoke(tenant(t), session_id(id)).await,
            ),
            Op::RevokeAll { t, user } => same(
                op,
                m.revoke_all_for_user(tenant(t), user_id(user)).await,
                b.revoke_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::List { t, user } => same(
                op,
                m.list_for_user(tenant(t), user_id(user)).await,
                b.list_for_user(tenant(t), user_id(user)).await,
            ),
            // Exact: a purge that removes too little is as wrong as one that removes too much
            // (harnesses keep server-side expiry out of the way while a case runs).
            Op::Purge => same(
                op,
                m.purge_expired(NonZeroU32::MAX).await,
                b.purge_expired(NonZeroU32::MAX).await,
            ),
            Op::RevokeToken { t, jti: j, ttl } => {
                let exp = Timestamp::from_micros(p.backend.now().as_micros() + ttl * SEC);
                same(
                    op,
                    m.revoke_token(tenant(t), &jti(j), exp).await,
                    b.revoke_token(tenant(t), &jti(j), exp).await,
                )
            }
            Op::IsTokenRevoked { t, jti: j } => same(
                op,
                m.is_token_revoked(tenant(t), &jti(j)).await,
                b.is_token_revoked(tenant(t), &jti(j)).await,
            ),
            Op::Advance { micros } => {
                let now = p.backend.now().as_micros();
                p.backend.clock.set(Timestamp::from_micros(now + micros));
                Ok(())
            }
        }
    }
    .boxed()
}

pub(super) async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "sessions", || property::sequence(op), apply).await
}
