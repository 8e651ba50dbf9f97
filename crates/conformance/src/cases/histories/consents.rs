//! Concurrent consent histories: one user, two purposes; every change must also leave exactly
//! its audit event.

use super::{Rng, rounds};
use crate::cases::{consent_id, tenant, user_id};
use crate::harness::Stores;
use crate::linearizability::{Call, Spec, check};
use crate::support::Ctx;
use credo_ports::{GrantConsent, StoreResult};
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum ConsentOp {
    Grant(u8),
    Revoke(u8),
    Get(u8),
    RevokeAll,
    DeleteAll,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ConsentRet {
    /// version, revoked
    Consent(u64, bool),
    Absent,
    Count(u64),
    Err(&'static str),
}

const CONSENT_PURPOSES: [&str; 2] = ["marketing", "analytics"];

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct ConsentSpec {
    /// purpose -> (version, revoked)
    consents: BTreeMap<u8, (u64, bool)>,
}

impl Spec for ConsentSpec {
    type Op = ConsentOp;
    type Ret = ConsentRet;
    fn step(&self, op: &ConsentOp, ret: &ConsentRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            ConsentOp::Grant(p) => {
                let v = self.consents.get(p).map_or(1, |(v, _)| v + 1);
                next.consents.insert(*p, (v, false));
                ConsentRet::Consent(v, false)
            }
            ConsentOp::Revoke(p) => match self.consents.get(p) {
                None => ConsentRet::Err("NotFound"),
                Some((_, true)) => ConsentRet::Err("InvalidState"),
                Some((v, false)) => {
                    next.consents.insert(*p, (v + 1, true));
                    ConsentRet::Consent(v + 1, true)
                }
            },
            ConsentOp::Get(p) => match self.consents.get(p) {
                Some(&(v, revoked)) => ConsentRet::Consent(v, revoked),
                None => ConsentRet::Absent,
            },
            ConsentOp::RevokeAll => {
                let mut n = 0;
                for (v, revoked) in next.consents.values_mut() {
                    if !*revoked {
                        *v += 1;
                        *revoked = true;
                        n += 1;
                    }
                }
                ConsentRet::Count(n)
            }
            ConsentOp::DeleteAll => {
                let n = next.consents.len() as u64;
                next.consents.clear();
                ConsentRet::Count(n)
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn consent_op(rng: &mut Rng, _task: usize) -> ConsentOp {
    let p = rng.pick(2);
    match rng.below(10) {
        0..=3 => ConsentOp::Grant(p),
        4..=5 => ConsentOp::Revoke(p),
        6..=7 => ConsentOp::Get(p),
        8 => ConsentOp::RevokeAll,
        _ => ConsentOp::DeleteAll,
    }
}

fn consent_ret(r: StoreResult<credo_ports::Consent>) -> ConsentRet {
    match r {
        Ok(c) => ConsentRet::Consent(c.version, c.revoked_at.is_some()),
        Err(e) => ConsentRet::Err(e.kind()),
    }
}

fn exec_consent(s: Arc<Stores>, op: ConsentOp) -> BoxFuture<'static, ConsentRet> {
    Box::pin(async move {
        let Ok(st) = s.consents() else {
            return ConsentRet::Err("no store");
        };
        let (t, u) = (tenant(0), user_id(0));
        let count = |r: StoreResult<u64>| match r {
            Ok(n) => ConsentRet::Count(n),
            Err(e) => ConsentRet::Err(e.kind()),
        };
        match op {
            ConsentOp::Grant(p) => consent_ret(
                st.grant(GrantConsent {
                    id: consent_id(p),
                    tenant_id: t,
                    user_id: u,
                    purpose: CONSENT_PURPOSES[p as usize].into(),
                    expires_at: None,
                })
                .await,
            ),
            ConsentOp::Revoke(p) => {
                consent_ret(st.revoke(t, u, CONSENT_PURPOSES[p as usize]).await)
            }
            ConsentOp::Get(p) => match st.get(t, u, CONSENT_PURPOSES[p as usize]).await {
                Ok(Some(c)) => ConsentRet::Consent(c.version, c.revoked_at.is_some()),
                Ok(None) => ConsentRet::Absent,
                Err(e) => ConsentRet::Err(e.kind()),
            },
            ConsentOp::RevokeAll => count(st.revoke_all_for_user(t, u).await),
            ConsentOp::DeleteAll => count(st.delete_all_for_user(t, u).await),
        }
    })
}

/// The audit events a consent history must have left, by action, from its results alone
/// (whatever the order): every change is audited exactly once.
fn expected_consent_events(calls: &[Call<ConsentOp, ConsentRet>]) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for c in calls {
        let (action, n) = match (&c.op, &c.ret) {
            (ConsentOp::Grant(_), ConsentRet::Consent(..)) => ("consent.granted", 1),
            (ConsentOp::Revoke(_), ConsentRet::Consent(..)) => ("consent.revoked", 1),
            (ConsentOp::RevokeAll, ConsentRet::Count(n)) => ("consent.revoked", *n),
            (ConsentOp::DeleteAll, ConsentRet::Count(n)) => ("consent.deleted", *n),
            _ => continue,
        };
        *m.entry(action).or_insert(0) += n;
    }
    m.retain(|_, n| *n > 0);
    m
}

pub(super) async fn concurrent_consent_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, consent_op, exec_consent, |stores, calls| {
        Box::pin(async move {
            check(&ConsentSpec::default(), calls)?;
            // Nothing may change without its audit event, nor be audited without a change.
            let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
            for e in crate::cases::drain(stores).await? {
                let action = match e.action.as_str() {
                    "consent.granted" => "consent.granted",
                    "consent.revoked" => "consent.revoked",
                    "consent.deleted" => "consent.deleted",
                    other => return Err(format!("unexpected audit action {other:?}")),
                };
                *seen.entry(action).or_insert(0) += 1;
            }
            let want = expected_consent_events(calls);
            crate::cases::eq("audit events by action", seen, want)
        })
    })
    .await
}
