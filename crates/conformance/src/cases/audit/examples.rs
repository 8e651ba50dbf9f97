//! Targeted examples of the audit log: idempotent batches, materialization by the relay,
//! stable pagination, combined filters, the metadata limit, tenant isolation, retention, bad
//! batches and per-tenant event ids.

use super::{audit, pool_event, query};
use crate::cases::{drain, ensure, eq, err_kind, event_id, ok, tenant};
use crate::harness::Stores;
use crate::support::Ctx;
use credo_ports::audit::MAX_METADATA_BYTES;
use credo_ports::{
    AppendOutcome, AuditEvent, AuditQuery, EncodedEvent, EventId, PageRequest, Timestamp,
};
use serde_json::json;
use std::collections::HashSet;
use std::num::NonZeroU32;

pub(super) async fn append_batch_is_idempotent(ctx: &Ctx) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    let batch: Vec<_> = (0..10).map(|i| pool_event(i, 0)).collect();
    eq(
        "first",
        ok("append", a.append_batch(&batch.clone()).await)?,
        AppendOutcome {
            inserted: 10,
            duplicates: 0,
        },
    )?;
    eq(
        "replay",
        ok("append", a.append_batch(&batch.clone()).await)?,
        AppendOutcome {
            inserted: 0,
            duplicates: 10,
        },
    )?;
    let mut overlap: Vec<_> = (5..15).map(|i| pool_event(i, 0)).collect();
    overlap.push(pool_event(14, 0));
    eq(
        "overlap",
        ok("append", a.append_batch(&overlap).await)?,
        AppendOutcome {
            inserted: 5,
            duplicates: 6,
        },
    )?;
    eq(
        "count",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        15,
    )?;
    eq(
        "read back equals written",
        ok("get", a.get(tenant(0), event_id(3)).await)?,
        Some(batch[3].clone()),
    )
}

pub(super) async fn record_is_materialized_by_the_relay(ctx: &Ctx) -> Result<(), String> {
    let (s, a) = audit(ctx).await?;
    let recorder = s.audit()?;
    for i in 0..5 {
        ok("record", recorder.record(pool_event(i, 0)).await)?;
    }
    ok("record a repeat", recorder.record(pool_event(0, 0)).await)?;
    eq(
        "durable in the outbox",
        ok("depth", s.outbox()?.depth().await)?,
        5,
    )?;
    eq(
        "not yet materialized",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        0,
    )?;
    let published = drain(&s).await?;
    eq("published once each", published.len(), 5)?;
    eq(
        "materialized",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        5,
    )?;
    // A relay that crashed after publishing and before acking publishes again: absorbed.
    let again: Vec<_> = published.iter().map(EncodedEvent::encode).collect();
    ok("republish", s.sink()?.publish(&again).await)?;
    eq(
        "no duplicates",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        5,
    )
}

pub(super) async fn query_pagination_is_stable_with_equal_timestamps(
    ctx: &Ctx,
) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    let mut events: Vec<_> = (0..40u16).map(|i| pool_event(i, 0)).collect();
    ok("append", a.append_batch(&events.clone()).await)?;
    events.sort_by_key(AuditEvent::cursor);
    let mut seen = Vec::new();
    let mut after = None;
    for step in 0..100u16 {
        let page = ok(
            "query",
            a.query(
                tenant(0),
                AuditQuery::default(),
                PageRequest { after, limit: 7 },
            )
            .await,
        )?;
        seen.extend(page.items);
        // Late arrivals at an earlier time must not shift later pages.
        ok(
            "late insert",
            a.append_batch(&[pool_event(1000 + step, 1)]).await,
        )?;
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    eq(
        "every event once, ordered by (occurred_at, id)",
        seen,
        events,
    )
}

pub(super) async fn query_filters_combine(ctx: &Ctx) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    let events: Vec<_> = (0..30u16).map(|i| pool_event(i, 0)).collect();
    ok("append", a.append_batch(&events.clone()).await)?;
    let q = query(Some(1), Some(1), None, Some((1, 4)));
    let expected: Vec<_> = events
        .iter()
        .filter(|e| crate::model::audit_query_matches(e, &q))
        .cloned()
        .collect();
    ensure(!expected.is_empty(), || {
        "filter fixture selects something".into()
    })?;
    let got = ok(
        "query",
        a.query(tenant(0), q.clone(), PageRequest::first(1000))
            .await,
    )?;
    let mut sorted = expected.clone();
    sorted.sort_by_key(AuditEvent::cursor);
    eq("filtered", got.items, sorted)?;
    eq(
        "count",
        ok("count", a.count(tenant(0), q).await)?,
        expected.len() as u64,
    )?;
    err_kind(
        "bad action filter",
        a.count(tenant(0), query(None, Some(3), None, None)).await,
        "InvalidInput",
    )
}

pub(super) async fn metadata_limit_is_16_kib(ctx: &Ctx) -> Result<(), String> {
    let (s, a) = audit(ctx).await?;
    let mut e = pool_event(0, 0);
    e.metadata.clear();
    // {"k":"xxx…"} is 8 bytes of framing.
    e.metadata
        .insert("k".into(), json!("x".repeat(MAX_METADATA_BYTES - 8)));
    ok("exactly 16 KiB", a.append_batch(&[e.clone()]).await)?;
    eq(
        "stored verbatim",
        ok("get", a.get(tenant(0), e.id).await)?,
        Some(e.clone()),
    )?;
    let mut big = pool_event(1, 0);
    big.metadata
        .insert("k".into(), json!("x".repeat(MAX_METADATA_BYTES)));
    err_kind(
        "over 16 KiB",
        s.audit()?.record(big.clone()).await,
        "InvalidInput",
    )?;
    err_kind(
        "over 16 KiB batch",
        a.append_batch(&[big]).await,
        "InvalidInput",
    )
}

pub(super) async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    ok(
        "append",
        a.append_batch(&[pool_event(0, 0), pool_event(1, 1)]).await,
    )?;
    eq(
        "get other tenant",
        ok("get", a.get(tenant(1), event_id(0)).await)?,
        None,
    )?;
    let page = ok(
        "query",
        a.query(tenant(1), AuditQuery::default(), PageRequest::first(10))
            .await,
    )?;
    eq(
        "query other tenant",
        page.items.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![event_id(1)],
    )?;
    eq(
        "count tenant 2",
        ok("count", a.count(tenant(2), AuditQuery::default()).await)?,
        0,
    )
}

pub(super) async fn purge_before_is_retention_only(ctx: &Ctx) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    let events: Vec<_> = (0..10u16).map(|i| pool_event(i, (i % 2) as u8)).collect();
    ok("append", a.append_batch(&events.clone()).await)?;
    let cut = Timestamp::from_micros(Stores::START.as_micros() + 2_000_000);
    let expected = events.iter().filter(|e| e.occurred_at < cut).count() as u64;
    eq(
        "purged",
        ok("purge", a.purge_before(cut, None, NonZeroU32::MAX).await)?,
        expected,
    )?;
    let left: HashSet<_> = [0u8, 1]
        .iter()
        .map(|t| a.query(tenant(*t), AuditQuery::default(), PageRequest::first(100)))
        .collect::<futures_util::stream::FuturesOrdered<_>>()
        .collect_vec()
        .await
        .into_iter()
        .flat_map(|r| r.map(|p| p.items).unwrap_or_default())
        .map(|e| e.id)
        .collect();
    eq("kept", left.len() as u64, 10 - expected)?;
    ensure(
        left.iter()
            .all(|id| events.iter().any(|e| e.id == *id && e.occurred_at >= cut)),
        || "kept the newer".into(),
    )
}

pub(super) async fn bad_batch_writes_nothing(ctx: &Ctx) -> Result<(), String> {
    let (_s, a) = audit(ctx).await?;
    let mut bad = pool_event(2, 0);
    bad.metadata.insert("nul".into(), json!("a\0b"));
    err_kind(
        "batch with a bad event",
        a.append_batch(&[pool_event(0, 0), pool_event(1, 0), bad])
            .await,
        "InvalidInput",
    )?;
    eq(
        "nothing half-written",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        0,
    )
}

/// DESIGN §5: event ids are UUIDv7 (the log is kept by the time in them). Any other UUID is
/// refused, by the recorder and in a batch, with nothing written; a UUIDv7 at either end of
/// its time range (1970, and the last millisecond 48 bits hold) is kept like any other.
pub(super) async fn event_ids_must_be_uuid_v7(ctx: &Ctx) -> Result<(), String> {
    let (s, a) = audit(ctx).await?;
    let v7 = |ms: u64, n: u8| {
        EventId::from_uuid(uuid::Builder::from_unix_timestamp_millis(ms, &[n; 10]).into_uuid())
    };
    let not_v7 = [
        uuid::Uuid::nil(),
        uuid::Uuid::max(),
        uuid::Uuid::from_u128(0x0190_0000_0000_4000_8000_0000_0000_0001), // v4 bits
        uuid::Uuid::from_u128(0x0190_0000_0000_7000_c000_0000_0000_0001), // v7, wrong variant
    ];
    for (i, id) in not_v7.into_iter().enumerate() {
        let mut bad = pool_event(i as u16, 0);
        bad.id = EventId::from_uuid(id);
        err_kind(
            &format!("record {id}"),
            s.audit()?.record(bad.clone()).await,
            "InvalidInput",
        )?;
        err_kind(
            &format!("batch with {id}"),
            a.append_batch(&[pool_event(10, 0), bad]).await,
            "InvalidInput",
        )?;
    }
    eq(
        "nothing written",
        ok("count", a.count(tenant(0), AuditQuery::default()).await)?,
        0,
    )?;
    let mut edges = Vec::new();
    for (i, ms) in [0, 1, (1u64 << 48) - 1].into_iter().enumerate() {
        let mut e = pool_event(20 + i as u16, 0);
        e.id = v7(ms, i as u8);
        edges.push(e);
    }
    eq(
        "edge times kept",
        ok("append", a.append_batch(&edges).await)?.inserted,
        3,
    )?;
    for e in &edges {
        eq(
            "read back",
            ok("get", a.get(tenant(0), e.id).await)?,
            Some(e.clone()),
        )?;
    }
    Ok(())
}

trait CollectVec: futures_util::Stream + Sized {
    async fn collect_vec(self) -> Vec<Self::Item> {
        use futures_util::StreamExt;
        self.collect().await
    }
}
impl<S: futures_util::Stream> CollectVec for S {}

/// DESIGN §5: event ids deduplicate per tenant. One tenant's id never suppresses another
/// tenant's event, in the log or in the outbox (where a clash is a `Conflict`, not a drop).
pub(super) async fn event_ids_deduplicate_per_tenant(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let log = s.audit_log()?;
    let event = |t: u8, note: &str| {
        let mut e = pool_event(7, t);
        e.metadata.insert("note".into(), json!(note));
        e
    };
    let (a, b) = (event(0, "tenant a"), event(1, "tenant b"));
    eq("same id, two tenants", a.id, b.id)?;
    let first = ok("append a", log.append_batch(std::slice::from_ref(&a)).await)?;
    eq("a inserted", (first.inserted, first.duplicates), (1, 0))?;
    let second = ok("append b", log.append_batch(std::slice::from_ref(&b)).await)?;
    eq(
        "b inserted, not a duplicate",
        (second.inserted, second.duplicates),
        (1, 0),
    )?;
    let again = ok(
        "append both",
        log.append_batch(&[a.clone(), b.clone()]).await,
    )?;
    eq(
        "both now duplicates",
        (again.inserted, again.duplicates),
        (0, 2),
    )?;
    eq(
        "get a",
        ok("get", log.get(tenant(0), a.id).await)?,
        Some(a.clone()),
    )?;
    eq(
        "get b",
        ok("get", log.get(tenant(1), b.id).await)?,
        Some(b.clone()),
    )?;
    for t in [0, 1] {
        eq(
            "count",
            ok("count", log.count(tenant(t), AuditQuery::default()).await)?,
            1,
        )?;
    }
    // One batch holding both tenants' events with one id inserts both.
    let (c, d) = (
        {
            let mut e = event(0, "c");
            e.id = event_id(8);
            e
        },
        {
            let mut e = event(1, "d");
            e.id = event_id(8);
            e
        },
    );
    let both = ok("append c and d", log.append_batch(&[c, d]).await)?;
    eq(
        "one batch, two tenants",
        (both.inserted, both.duplicates),
        (2, 0),
    )?;
    // The outbox: recording again is idempotent for the same tenant, a conflict for another.
    let recorder = s.audit()?;
    let mut mine = event(0, "recorded");
    mine.id = event_id(9);
    let mut theirs = mine.clone();
    theirs.tenant_id = tenant(1);
    ok("record", recorder.record(mine.clone()).await)?;
    ok("record again", recorder.record(mine).await)?;
    err_kind(
        "another tenant's id",
        recorder.record(theirs).await,
        "Conflict",
    )?;
    let published = drain(&s).await?;
    eq("one event published", published.len(), 1)
}
