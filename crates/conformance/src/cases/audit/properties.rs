//! The model-based property of the audit log: random batches, records, queries, relay passes
//! and purges, every result compared with the model's.

use super::{METADATA_SHAPES, metadata, pool_event, query};
use crate::cases::{drain, eq, event_id, tenant};
use crate::harness::Stores;
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::Timestamp;
use credo_ports::outbox::Disposition;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    Record {
        i: u16,
        t: u8,
        bad: bool,
        meta: u8,
    },
    Append {
        from: u16,
        len: u16,
        t: u8,
    },
    Drain,
    Claim {
        batch: usize,
        lease_secs: u64,
    },
    Get {
        t: u8,
        i: u16,
    },
    Query {
        t: u8,
        subject: Option<u8>,
        action: Option<u8>,
        category: Option<u8>,
        window: Option<(i64, i64)>,
        limit: usize,
    },
    Count {
        t: u8,
        subject: Option<u8>,
        action: Option<u8>,
        category: Option<u8>,
        window: Option<(i64, i64)>,
    },
    Purge {
        offset_secs: i64,
    },
    Depth,
    Advance {
        secs: u64,
    },
    /// Acks the first `n` rows of the last claim.
    Ack {
        n: usize,
    },
    /// Releases the first `n` rows of the last claim.
    Release {
        n: usize,
    },
    /// Rejects row `i` of the last claim: retried after `retry_secs`, or set aside.
    Reject {
        i: usize,
        set_aside: bool,
        retry_secs: u64,
    },
    DeadLetters {
        limit: usize,
    },
    /// Requeues the dead letters among the first `n` rows of the last claim.
    Requeue {
        n: usize,
    },
    PurgePublished {
        offset_secs: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let (i, t) = (0u16..12, 0u8..8);
    prop_oneof![
        4 => (i.clone(), t.clone(), prop::bool::weighted(0.05), prop_oneof![4 => Just(0u8), 1 => 1..METADATA_SHAPES])
            .prop_map(|(i, t, bad, meta)| Op::Record { i, t, bad, meta }),
        2 => (i.clone(), 0u16..5, t.clone()).prop_map(|(from, len, t)| Op::Append { from, len, t }),
        2 => Just(Op::Drain),
        1 => (0usize..4, 0u64..3).prop_map(|(batch, lease_secs)| Op::Claim { batch, lease_secs }),
        2 => (t.clone(), i.clone()).prop_map(|(t, i)| Op::Get { t, i }),
        3 => (t.clone(), proptest::option::of(0u8..3), proptest::option::of(0u8..4), proptest::option::of(0u8..3),
              proptest::option::of((0i64..5, 0i64..5)), 1usize..5)
            .prop_map(|(t, subject, action, category, window, limit)| Op::Query { t, subject, action, category, window, limit }),
        2 => (t.clone(), proptest::option::of(0u8..3), proptest::option::of(0u8..4), proptest::option::of(0u8..3),
              proptest::option::of((0i64..5, 0i64..5)))
            .prop_map(|(t, subject, action, category, window)| Op::Count { t, subject, action, category, window }),
        1 => (0i64..6).prop_map(|offset_secs| Op::Purge { offset_secs }),
        1 => Just(Op::Depth),
        1 => (0u64..3).prop_map(|secs| Op::Advance { secs }),
        2 => (0usize..4).prop_map(|n| Op::Ack { n }),
        1 => (0usize..4).prop_map(|n| Op::Release { n }),
        1 => (0usize..3, any::<bool>(), 0u64..3).prop_map(|(i, set_aside, retry_secs)| Op::Reject { i, set_aside, retry_secs }),
        1 => (1usize..4).prop_map(|limit| Op::DeadLetters { limit }),
        1 => (0usize..4).prop_map(|n| Op::Requeue { n }),
        1 => (-1i64..6).prop_map(|offset_secs| Op::PurgePublished { offset_secs }),
    ]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.audit_log()?, p.backend.audit_log()?);
        match op.clone() {
            Op::Record { i, t, bad, meta } => {
                let mut e = pool_event(i, t);
                if bad {
                    e.action = "Not An Action".into();
                }
                if meta > 0 {
                    e.metadata = metadata(meta);
                }
                let (mr, br) = (p.model.audit()?, p.backend.audit()?);
                same(op, mr.record(e.clone()).await, br.record(e).await)
            }
            Op::Append { from, len, t } => {
                let batch: Vec<_> = (from..from + len).map(|i| pool_event(i, t)).collect();
                same(
                    op,
                    m.append_batch(&batch).await,
                    b.append_batch(&batch).await,
                )
            }
            Op::Drain => {
                let me = drain(&p.model).await?;
                let be = drain(&p.backend).await?;
                eq("events published by a relay pass", be, me)
            }
            Op::Claim { batch, lease_secs } => {
                let lease = Duration::from_secs(lease_secs);
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                // Tokens are random: compare what was handed out, keep both for later acts.
                let (mc, bc) = (mo.claim(batch, lease).await, bo.claim(batch, lease).await);
                same(
                    op,
                    mc.clone().map(|c| c.records),
                    bc.clone().map(|c| c.records),
                )?;
                if let (Ok(mc), Ok(bc)) = (mc, bc) {
                    *p.claims.lock() = Some((mc, bc));
                }
                Ok(())
            }
            Op::Get { t, i } => same(
                op,
                m.get(tenant(t), event_id(i)).await,
                b.get(tenant(t), event_id(i)).await,
            ),
            Op::Query {
                t,
                subject,
                action,
                category,
                window,
                limit,
            } => {
                let q = query(subject, action, category, window);
                property::same_pages(
                    op,
                    limit,
                    |pg| m.query(tenant(t), q.clone(), pg),
                    |pg| b.query(tenant(t), q.clone(), pg),
                )
                .await
            }
            Op::Count {
                t,
                subject,
                action,
                category,
                window,
            } => {
                let q = query(subject, action, category, window);
                same(
                    op,
                    m.count(tenant(t), q.clone()).await,
                    b.count(tenant(t), q).await,
                )
            }
            Op::Purge { offset_secs } => {
                let before =
                    Timestamp::from_micros(Stores::START.as_micros() + offset_secs * 1_000_000);
                same(
                    op,
                    m.purge_before(before, None, NonZeroU32::MAX).await,
                    b.purge_before(before, None, NonZeroU32::MAX).await,
                )
            }
            Op::Depth => {
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                same(op, mo.depth().await, bo.depth().await)?;
                same(
                    op,
                    mo.oldest_pending_age().await,
                    bo.oldest_pending_age().await,
                )
            }
            Op::Advance { secs } => {
                p.backend.clock.advance(Duration::from_secs(secs));
                Ok(())
            }
            Op::Ack { n } | Op::Release { n } | Op::Requeue { n } => {
                let Some((mc, bc)) = p.claims.lock().clone() else {
                    return Ok(());
                };
                let ids: Vec<_> = mc.records.iter().take(n).map(|r| r.message.id).collect();
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                match op {
                    Op::Ack { .. } => same(
                        op,
                        mo.ack(mc.token, &ids).await,
                        bo.ack(bc.token, &ids).await,
                    ),
                    Op::Release { .. } => same(
                        op,
                        mo.release(mc.token, &ids).await,
                        bo.release(bc.token, &ids).await,
                    ),
                    _ => same(op, mo.requeue(&ids).await, bo.requeue(&ids).await),
                }
            }
            Op::Reject {
                i,
                set_aside,
                retry_secs,
            } => {
                let Some((mc, bc)) = p.claims.lock().clone() else {
                    return Ok(());
                };
                let Some(id) = mc.records.get(i).map(|r| r.message.id) else {
                    return Ok(());
                };
                let then = if set_aside {
                    Disposition::SetAside
                } else {
                    Disposition::RetryAfter(Duration::from_secs(retry_secs))
                };
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                same(
                    op,
                    mo.reject(mc.token, id, "rejected by the sink", then).await,
                    bo.reject(bc.token, id, "rejected by the sink", then).await,
                )
            }
            Op::DeadLetters { limit } => {
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                property::same_pages(
                    op,
                    limit,
                    |pg| mo.dead_letters(pg),
                    |pg| bo.dead_letters(pg),
                )
                .await
            }
            Op::PurgePublished { offset_secs } => {
                let before =
                    Timestamp::from_micros(p.backend.now().as_micros() + offset_secs * 1_000_000);
                let (mo, bo) = (p.model.outbox()?, p.backend.outbox()?);
                same(
                    op,
                    mo.purge_published(before, NonZeroU32::MAX).await,
                    bo.purge_published(before, NonZeroU32::MAX).await,
                )
            }
        }
    }
    .boxed()
}

pub(super) async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "audit", || property::sequence(op), apply).await
}
