//! Concurrent outbox histories: relays claiming, acking and releasing while events are
//! recorded.

use super::audit::history_event;
use super::{OPS, ROUNDS, Rng, TASKS};
use crate::cases::event_id;
use crate::harness::Stores;
use crate::linearizability::{History, Spec, check};
use crate::support::Ctx;
use credo_ports::{AuditEvent, ClaimToken, EventId};
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
enum OutboxOp {
    Record(u8),
    /// Claim up to n rows; the task keeps what it got for its next ack or release.
    Claim(usize),
    Ack,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum OutboxRet {
    Done,
    /// The claim's number (task * 100 + k) and the rows it got.
    Claimed(u32, BTreeSet<u8>),
    /// The claim acted on, the rows named, and how many the store confirmed.
    Acted(u32, BTreeSet<u8>, u64),
    Nothing,
    Err(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct OutboxSpec {
    /// Recorded and not published: row -> holder claim, if any.
    pending: BTreeMap<u8, Option<u32>>,
    published: BTreeSet<u8>,
}

impl Spec for OutboxSpec {
    type Op = OutboxOp;
    type Ret = OutboxRet;
    fn step(&self, op: &OutboxOp, ret: &OutboxRet) -> Option<Self> {
        let mut next = self.clone();
        match (op, ret) {
            (OutboxOp::Record(i), OutboxRet::Done) => {
                if self.pending.contains_key(i) || self.published.contains(i) {
                    return None;
                }
                next.pending.insert(*i, None);
            }
            (OutboxOp::Claim(n), OutboxRet::Claimed(claim, got)) => {
                let free: BTreeSet<u8> = self
                    .pending
                    .iter()
                    .filter(|(_, h)| h.is_none())
                    .map(|(i, _)| *i)
                    .collect();
                // Unheld rows only, at most as many as asked for. Not necessarily as many as are
                // free: `FOR UPDATE SKIP LOCKED` passes over rows that a concurrent statement
                // has locked for a moment (another claim's candidates, an ack), by design; a
                // later claim takes them (the drain cases check that nothing is left behind).
                if !got.is_subset(&free) || got.len() > *n {
                    return None;
                }
                for i in got {
                    next.pending.insert(*i, Some(*claim));
                }
            }
            (OutboxOp::Ack, OutboxRet::Acted(claim, rows, n)) => {
                let held: Vec<u8> = rows
                    .iter()
                    .copied()
                    .filter(|i| self.pending.get(i) == Some(&Some(*claim)))
                    .collect();
                if held.len() as u64 != *n {
                    return None;
                }
                for i in held {
                    next.pending.remove(&i);
                    next.published.insert(i);
                }
            }
            (OutboxOp::Release, OutboxRet::Acted(claim, rows, n)) => {
                let held: Vec<u8> = rows
                    .iter()
                    .copied()
                    .filter(|i| self.pending.get(i) == Some(&Some(*claim)))
                    .collect();
                if held.len() as u64 != *n {
                    return None;
                }
                for i in held {
                    next.pending.insert(i, None);
                }
            }
            (OutboxOp::Ack | OutboxOp::Release, OutboxRet::Nothing) => {}
            _ => return None,
        }
        Some(next)
    }
}

fn outbox_op(rng: &mut Rng, task: usize) -> OutboxOp {
    match rng.below(8) {
        // Each task records its own rows, so a row is recorded once.
        0..=2 => OutboxOp::Record((task as u8) * 10 + rng.pick(10)),
        3..=4 => OutboxOp::Claim(1 + rng.below(3) as usize),
        5..=6 => OutboxOp::Ack,
        _ => OutboxOp::Release,
    }
}

fn outbox_event(i: u8) -> AuditEvent {
    // Every row its own subject, so order keys never hold one row behind another.
    let mut e = history_event(i);
    e.subject_user_id = Some(credo_ports::UserId::from_uuid(uuid::Uuid::from_u128(
        0xab00 + u128::from(i),
    )));
    e
}

/// A task's last claim, which its next ack or release acts on.
type Held = parking_lot::Mutex<BTreeMap<usize, (u32, ClaimToken, BTreeSet<u8>)>>;

fn exec_outbox_for(
    s: Arc<Stores>,
    op: OutboxOp,
    task: usize,
    held: Arc<Held>,
    seq: u32,
) -> BoxFuture<'static, OutboxRet> {
    Box::pin(async move {
        let (Ok(outbox), Ok(audit)) = (s.outbox(), s.audit()) else {
            return OutboxRet::Err("no store");
        };
        let index = |id: EventId| (0u8..40).find(|&i| event_id(u16::from(i)) == id);
        match op {
            OutboxOp::Record(i) => match audit.record(outbox_event(i)).await {
                Ok(()) => OutboxRet::Done,
                Err(e) => OutboxRet::Err(e.kind()),
            },
            OutboxOp::Claim(n) => match outbox.claim(n, Duration::from_secs(600)).await {
                Ok(c) => {
                    let got: BTreeSet<u8> = c
                        .records
                        .iter()
                        .filter_map(|r| index(r.message.id))
                        .collect();
                    let claim = task as u32 * 100 + seq;
                    held.lock().insert(task, (claim, c.token, got.clone()));
                    OutboxRet::Claimed(claim, got)
                }
                Err(e) => OutboxRet::Err(e.kind()),
            },
            OutboxOp::Ack | OutboxOp::Release => {
                let Some((claim, token, rows)) = held.lock().remove(&task) else {
                    return OutboxRet::Nothing;
                };
                let ids: Vec<EventId> = rows.iter().map(|&i| event_id(u16::from(i))).collect();
                let r = if matches!(op, OutboxOp::Ack) {
                    outbox.ack(token, &ids).await
                } else {
                    outbox.release(token, &ids).await
                };
                match r {
                    Ok(n) => OutboxRet::Acted(claim, rows, n),
                    Err(e) => OutboxRet::Err(e.kind()),
                }
            }
        }
    })
}

pub(super) async fn concurrent_outbox_histories(ctx: &Ctx) -> Result<(), String> {
    // The generic driver knows nothing of per-task claims, so this port runs its own rounds.
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        let history: Arc<History<OutboxOp, OutboxRet>> = History::new();
        let held: Arc<Held> = Arc::default();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<OutboxOp>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| outbox_op(&mut rng, task)).collect())
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, plan)| {
                let (stores, history, barrier, held) = (
                    stores.clone(),
                    history.clone(),
                    barrier.clone(),
                    held.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut recorded = BTreeSet::new();
                    for (k, op) in plan.into_iter().enumerate() {
                        if let OutboxOp::Record(i) = op
                            && !recorded.insert(i)
                        {
                            continue;
                        }
                        let call = exec_outbox_for(
                            stores.clone(),
                            op.clone(),
                            task,
                            held.clone(),
                            k as u32,
                        );
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        check(&OutboxSpec::default(), &history.calls())
            .map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}
