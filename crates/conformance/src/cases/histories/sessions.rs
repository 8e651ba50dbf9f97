//! Concurrent session histories: two users with three session ids each; partitioned by user.

use super::{Rng, rounds};
use crate::cases::{session_id, tenant, user_id};
use crate::harness::Stores;
use crate::linearizability::{Spec, check_partitioned};
use crate::support::Ctx;
use credo_ports::{Device, NewSession, SessionStatus, StoreResult};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
enum SessionOp {
    Create(u8),
    Get(u8),
    Touch(u8),
    Activate(u8),
    Revoke(u8),
    RevokeAll(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SessionRet {
    Session(SessionStatus, u64),
    Absent,
    Count(u64),
    Err(&'static str),
}

fn owner(id: u8) -> u8 {
    id / 3
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct SessionSpec {
    /// id -> (status, version)
    sessions: BTreeMap<u8, (SessionStatus, u64)>,
}

impl Spec for SessionSpec {
    type Op = SessionOp;
    type Ret = SessionRet;
    fn step(&self, op: &SessionOp, ret: &SessionRet) -> Option<Self> {
        use SessionStatus::*;
        let mut next = self.clone();
        let current = |id: &u8| self.sessions.get(id).copied();
        let expected = match op {
            SessionOp::Create(id) => match current(id) {
                Some(_) => SessionRet::Err("Conflict"),
                None => {
                    next.sessions.insert(*id, (PendingConsent, 1));
                    SessionRet::Session(PendingConsent, 1)
                }
            },
            SessionOp::Get(id) => match current(id) {
                Some((st, v)) => SessionRet::Session(st, v),
                None => SessionRet::Absent,
            },
            // The clock stands still: last_seen_at cannot move forward, so nothing changes.
            SessionOp::Touch(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((Revoked, _)) => SessionRet::Err("InvalidState"),
                Some((st, v)) => SessionRet::Session(st, v),
            },
            SessionOp::Activate(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((PendingConsent, v)) => {
                    next.sessions.insert(*id, (Active, v + 1));
                    SessionRet::Session(Active, v + 1)
                }
                Some(_) => SessionRet::Err("InvalidState"),
            },
            SessionOp::Revoke(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((Revoked, _)) => SessionRet::Err("InvalidState"),
                Some((_, v)) => {
                    next.sessions.insert(*id, (Revoked, v + 1));
                    SessionRet::Session(Revoked, v + 1)
                }
            },
            SessionOp::RevokeAll(user) => {
                let mut n = 0;
                for (id, (st, v)) in next.sessions.iter_mut() {
                    if owner(*id) == *user && *st != Revoked {
                        *st = Revoked;
                        *v += 1;
                        n += 1;
                    }
                }
                SessionRet::Count(n)
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn session_op(rng: &mut Rng, _task: usize) -> SessionOp {
    let id = rng.pick(6);
    match rng.below(12) {
        0..=2 => SessionOp::Create(id),
        3..=4 => SessionOp::Get(id),
        5 => SessionOp::Touch(id),
        6..=7 => SessionOp::Activate(id),
        8..=10 => SessionOp::Revoke(id),
        _ => SessionOp::RevokeAll(owner(id)),
    }
}

fn session_ret(r: StoreResult<credo_ports::Session>) -> SessionRet {
    match r {
        Ok(s) => SessionRet::Session(s.status, s.version),
        Err(e) => SessionRet::Err(e.kind()),
    }
}

fn exec_session(s: Arc<Stores>, op: SessionOp) -> BoxFuture<'static, SessionRet> {
    Box::pin(async move {
        let Ok(st) = s.sessions() else {
            return SessionRet::Err("no store");
        };
        let t = tenant(0);
        match op {
            SessionOp::Create(id) => {
                let new = NewSession {
                    id: session_id(id),
                    tenant_id: t,
                    user_id: user_id(owner(id)),
                    client_id: "history".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::PendingConsent,
                    device: Device::default(),
                    expires_at: s.now().saturating_add(Duration::from_secs(3600)),
                };
                session_ret(st.create(new).await)
            }
            SessionOp::Get(id) => match st.get(t, session_id(id)).await {
                Ok(Some(x)) => SessionRet::Session(x.status, x.version),
                Ok(None) => SessionRet::Absent,
                Err(e) => SessionRet::Err(e.kind()),
            },
            SessionOp::Touch(id) => session_ret(st.touch(t, session_id(id)).await),
            SessionOp::Activate(id) => session_ret(st.activate(t, session_id(id)).await),
            SessionOp::Revoke(id) => session_ret(st.revoke(t, session_id(id)).await),
            SessionOp::RevokeAll(user) => match st.revoke_all_for_user(t, user_id(user)).await {
                Ok(n) => SessionRet::Count(n),
                Err(e) => SessionRet::Err(e.kind()),
            },
        }
    })
}

pub(super) async fn concurrent_session_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, session_op, exec_session, |_, calls| {
        Box::pin(async move {
            check_partitioned(
                calls,
                |op: &SessionOp| match op {
                    SessionOp::RevokeAll(user) => *user,
                    SessionOp::Create(id)
                    | SessionOp::Get(id)
                    | SessionOp::Touch(id)
                    | SessionOp::Activate(id)
                    | SessionOp::Revoke(id) => owner(*id),
                },
                |_| SessionSpec::default(),
            )
        })
    })
    .await
}
