//! Sessions and token revocations at the edges: expiries anywhere, clocks at the edges.

use super::{At, SEC, at, clock_instant, set_clock};
use crate::cases::{session_id, tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{Device, NewSession, SessionStatus, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;

#[derive(Clone, Debug)]
enum SessionOp {
    Clock(Timestamp),
    Advance(i64),
    Create { id: u8, user: u8, expires: At },
    Get { id: u8 },
    Touch { id: u8 },
    Revoke { id: u8 },
    RevokeAll { user: u8 },
    List { user: u8 },
    Purge,
    RevokeToken { jti: u8, expires: At },
    IsTokenRevoked { jti: u8 },
}

fn session_op() -> BoxedStrategy<SessionOp> {
    let (id, user, jti) = (0u8..4, 0u8..2, 0u8..3);
    // The clock starts anywhere and then only moves forward: Redis trims a user's index of
    // sessions expired by more than the configured grace, so a clock that jumps back further
    // than that is outside the contract (it is the skew the grace exists for).
    prop_oneof![
        2 => prop_oneof![Just(1i64), Just(SEC), Just(86_400 * SEC), Just(3650 * 86_400 * SEC)]
            .prop_map(SessionOp::Advance),
        4 => (id.clone(), user.clone(), at())
            .prop_map(|(id, user, expires)| SessionOp::Create { id, user, expires }),
        2 => id.clone().prop_map(|id| SessionOp::Get { id }),
        1 => id.clone().prop_map(|id| SessionOp::Touch { id }),
        1 => id.clone().prop_map(|id| SessionOp::Revoke { id }),
        1 => user.clone().prop_map(|user| SessionOp::RevokeAll { user }),
        2 => user.prop_map(|user| SessionOp::List { user }),
        1 => Just(SessionOp::Purge),
        3 => (jti.clone(), at()).prop_map(|(jti, expires)| SessionOp::RevokeToken { jti, expires }),
        2 => jti.prop_map(|jti| SessionOp::IsTokenRevoked { jti }),
    ]
    .boxed()
}

fn apply_session<'a>(p: &'a Pair, op: &'a SessionOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.sessions()?, p.backend.sessions()?);
        let t = tenant(0);
        let now = p.backend.now();
        let jti = |j: u8| format!("edge-jti-{j}");
        match op.clone() {
            SessionOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            SessionOp::Advance(d) => {
                let next = now
                    .as_micros()
                    .saturating_add(d)
                    .min(Timestamp::MAX.as_micros());
                set_clock(p, Timestamp::from_micros(next));
                Ok(())
            }
            SessionOp::Create { id, user, expires } => {
                let s = NewSession {
                    id: session_id(id),
                    tenant_id: t,
                    user_id: user_id(user),
                    client_id: "edge-client".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::Active,
                    device: Device::default(),
                    expires_at: expires.resolve(now),
                };
                same(op, m.create(s.clone()).await, b.create(s).await)
            }
            SessionOp::Get { id } => same(
                op,
                m.get(t, session_id(id)).await,
                b.get(t, session_id(id)).await,
            ),
            SessionOp::Touch { id } => same(
                op,
                m.touch(t, session_id(id)).await,
                b.touch(t, session_id(id)).await,
            ),
            SessionOp::Revoke { id } => same(
                op,
                m.revoke(t, session_id(id)).await,
                b.revoke(t, session_id(id)).await,
            ),
            SessionOp::RevokeAll { user } => same(
                op,
                m.revoke_all_for_user(t, user_id(user)).await,
                b.revoke_all_for_user(t, user_id(user)).await,
            ),
            SessionOp::List { user } => same(
                op,
                m.list_for_user(t, user_id(user)).await,
                b.list_for_user(t, user_id(user)).await,
            ),
            SessionOp::Purge => same(
                op,
                m.purge_expired(NonZeroU32::MAX).await,
                b.purge_expired(NonZeroU32::MAX).await,
            ),
            SessionOp::RevokeToken { jti: j, expires } => {
                let exp = expires.resolve(now);
                same(
                    op,
                    m.revoke_token(t, &jti(j), exp).await,
                    b.revoke_token(t, &jti(j), exp).await,
                )
            }
            SessionOp::IsTokenRevoked { jti: j } => same(
                op,
                m.is_token_revoked(t, &jti(j)).await,
                b.is_token_revoked(t, &jti(j)).await,
            ),
        }
    }
    .boxed()
}

pub(super) async fn session_times_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_sessions",
        || {
            (
                clock_instant(),
                proptest::collection::vec(session_op(), 1..30),
            )
                .prop_map(|(start, mut ops)| {
                    ops.insert(0, SessionOp::Clock(start));
                    ops
                })
        },
        apply_session,
    )
    .await
}
