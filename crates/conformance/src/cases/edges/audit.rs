//! Audit log at the edges: occurred_at anywhere, query/count/retention bounds anywhere, JSON
//! numbers at their edges in the metadata.

use super::{any_instant, page_limit};
use crate::cases::{event_id, tenant};
use crate::property::{self, Pair, same, same_pages};
use crate::support::Ctx;
use credo_ports::{AuditCategory, AuditEvent, AuditQuery, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use serde_json::json;
use std::num::NonZeroU32;

#[derive(Clone, Debug)]
enum AuditOp {
    Append {
        i: u16,
        at: Timestamp,
        number: u8,
    },
    Record {
        at: Timestamp,
    },
    Drain,
    Query {
        from: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: usize,
    },
    Count {
        from: Option<Timestamp>,
        until: Option<Timestamp>,
    },
    Purge {
        before: Timestamp,
    },
}

/// JSON numbers that `jsonb` and serde_json must carry unchanged.
fn edge_number(i: u8) -> serde_json::Value {
    match i % 10 {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(f64::MAX),
        4 => json!(f64::MIN_POSITIVE),
        5 => json!(5e-324),
        6 => json!(-0.0),
        7 => json!(0.1 + 0.2),
        8 => json!(1e21),
        _ => json!(-1.5e-7),
    }
}

fn audit_op() -> BoxedStrategy<AuditOp> {
    let bound = || proptest::option::of(any_instant());
    prop_oneof![
        3 => (0u16..8, any_instant(), any::<u8>()).prop_map(|(i, at, number)| AuditOp::Append { i, at, number }),
        2 => any_instant().prop_map(|at| AuditOp::Record { at }),
        1 => Just(AuditOp::Drain),
        3 => (bound(), bound(), page_limit()).prop_map(|(from, until, limit)| AuditOp::Query { from, until, limit }),
        2 => (bound(), bound()).prop_map(|(from, until)| AuditOp::Count { from, until }),
        1 => any_instant().prop_map(|before| AuditOp::Purge { before }),
    ]
    .boxed()
}

pub(super) fn edge_event(id: Option<u16>, at: Timestamp, number: u8) -> AuditEvent {
    let mut e = AuditEvent::new(tenant(0), at, AuditCategory::Security, "auth.edge_case");
    if let Some(i) = id {
        e.id = event_id(i);
    }
    e.metadata.insert("n".into(), edge_number(number));
    e
}

fn apply_audit<'a>(p: &'a Pair, op: &'a AuditOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.audit_log()?, p.backend.audit_log()?);
        let q = |from, until| AuditQuery {
            from,
            until,
            ..AuditQuery::default()
        };
        match op.clone() {
            AuditOp::Append { i, at, number } => {
                let batch = [edge_event(Some(i), at, number)];
                same(
                    op,
                    m.append_batch(&batch).await,
                    b.append_batch(&batch).await,
                )
            }
            AuditOp::Record { at } => {
                // One fresh id for both sides: `record` keeps the caller's id.
                let e = edge_event(None, at, 0);
                let (mr, br) = (p.model.audit()?, p.backend.audit()?);
                same(op, mr.record(e.clone()).await, br.record(e).await)
            }
            AuditOp::Drain => property::same_drained_events(p, "drain", property::Ids::Given).await,
            AuditOp::Query { from, until, limit } => {
                same_pages(
                    op,
                    limit,
                    |page| m.query(tenant(0), q(from, until), page),
                    |page| b.query(tenant(0), q(from, until), page),
                )
                .await
            }
            AuditOp::Count { from, until } => same(
                op,
                m.count(tenant(0), q(from, until)).await,
                b.count(tenant(0), q(from, until)).await,
            ),
            AuditOp::Purge { before } => same(
                op,
                m.purge_before(before, None, NonZeroU32::MAX).await,
                b.purge_before(before, None, NonZeroU32::MAX).await,
            ),
        }
    }
    .boxed()
}

pub(super) async fn audit_times_and_bounds_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_audit",
        || proptest::collection::vec(audit_op(), 1..30),
        apply_audit,
    )
    .await
}
