//! Outbox at the edges: retention bounds anywhere, ages at clocks on the edges.

use super::audit::edge_event;
use super::{any_instant, clock_instant, set_clock};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::Timestamp;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;

#[derive(Clone, Debug)]
enum OutboxOp {
    Clock(Timestamp),
    Record,
    Drain,
    Purge { before: Timestamp },
    Depth,
    OldestAge,
}

fn outbox_op() -> BoxedStrategy<OutboxOp> {
    prop_oneof![
        2 => clock_instant().prop_map(OutboxOp::Clock),
        3 => Just(OutboxOp::Record),
        2 => Just(OutboxOp::Drain),
        3 => any_instant().prop_map(|before| OutboxOp::Purge { before }),
        1 => Just(OutboxOp::Depth),
        1 => Just(OutboxOp::OldestAge),
    ]
    .boxed()
}

fn apply_outbox<'a>(p: &'a Pair, op: &'a OutboxOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.outbox()?, p.backend.outbox()?);
        match op.clone() {
            OutboxOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            OutboxOp::Record => {
                let e = edge_event(None, p.backend.now(), 0);
                same(
                    op,
                    p.model.audit()?.record(e.clone()).await,
                    p.backend.audit()?.record(e).await,
                )
            }
            OutboxOp::Drain => {
                property::same_drained_events(p, "drain", property::Ids::Given).await
            }
            OutboxOp::Purge { before } => same(
                op,
                m.purge_published(before, NonZeroU32::MAX).await,
                b.purge_published(before, NonZeroU32::MAX).await,
            ),
            OutboxOp::Depth => same(op, m.depth().await, b.depth().await),
            OutboxOp::OldestAge => same(
                op,
                m.oldest_pending_age().await,
                b.oldest_pending_age().await,
            ),
        }
    }
    .boxed()
}

pub(super) async fn outbox_bounds_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_outbox",
        || proptest::collection::vec(outbox_op(), 1..30),
        apply_outbox,
    )
    .await
}
