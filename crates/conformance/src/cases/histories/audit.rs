//! Concurrent audit-log histories: idempotent materialization of overlapping batches.

use super::{Rng, rounds};
use crate::cases::{event_id, tenant};
use crate::harness::Stores;
use crate::linearizability::{Spec, check};
use crate::support::Ctx;
use credo_ports::{AuditCategory, AuditEvent};
use futures_util::future::BoxFuture;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum AuditOp {
    Append(Vec<u8>),
    Get(u8),
    Count,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AuditRet {
    Appended(u64, u64),
    Found(bool),
    Count(u64),
    Err(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct AuditSpec {
    ids: BTreeSet<u8>,
}

impl Spec for AuditSpec {
    type Op = AuditOp;
    type Ret = AuditRet;
    fn step(&self, op: &AuditOp, ret: &AuditRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            AuditOp::Append(batch) => {
                let (mut inserted, mut duplicates) = (0, 0);
                for id in batch {
                    if next.ids.insert(*id) {
                        inserted += 1;
                    } else {
                        duplicates += 1;
                    }
                }
                AuditRet::Appended(inserted, duplicates)
            }
            AuditOp::Get(id) => AuditRet::Found(self.ids.contains(id)),
            AuditOp::Count => AuditRet::Count(self.ids.len() as u64),
        };
        (expected == *ret).then_some(next)
    }
}

fn audit_op(rng: &mut Rng, _task: usize) -> AuditOp {
    match rng.below(8) {
        0..=4 => AuditOp::Append((0..1 + rng.below(4)).map(|_| rng.pick(8)).collect()),
        5..=6 => AuditOp::Get(rng.pick(8)),
        _ => AuditOp::Count,
    }
}

pub(super) fn history_event(i: u8) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant(0),
        Stores::START,
        AuditCategory::Security,
        "auth.history",
    );
    e.id = event_id(u16::from(i));
    e
}

fn exec_audit(s: Arc<Stores>, op: AuditOp) -> BoxFuture<'static, AuditRet> {
    Box::pin(async move {
        let Ok(log) = s.audit_log() else {
            return AuditRet::Err("no store");
        };
        match op {
            AuditOp::Append(ids) => {
                let batch: Vec<AuditEvent> = ids.iter().map(|&i| history_event(i)).collect();
                match log.append_batch(&batch).await {
                    Ok(o) => AuditRet::Appended(o.inserted, o.duplicates),
                    Err(e) => AuditRet::Err(e.kind()),
                }
            }
            AuditOp::Get(i) => match log.get(tenant(0), event_id(u16::from(i))).await {
                Ok(found) => AuditRet::Found(found.is_some()),
                Err(e) => AuditRet::Err(e.kind()),
            },
            AuditOp::Count => match log.count(tenant(0), Default::default()).await {
                Ok(n) => AuditRet::Count(n),
                Err(e) => AuditRet::Err(e.kind()),
            },
        }
    })
}

pub(super) async fn concurrent_audit_log_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, audit_op, exec_audit, |_, calls| {
        Box::pin(async move { check(&AuditSpec::default(), calls) })
    })
    .await
}
