use super::{cases, ensure, eq, err_kind, ok, tenant};
use crate::harness::{Port, Stores};
use crate::runner::Ctx;
use credo_ports::{AuditCategory, AuditEvent, EventId, Outbox};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Outbox;
        claim_hands_out_oldest_first,
        concurrent_claimers_never_overlap,
        lease_expiry_makes_rows_claimable_again,
        ack_and_release,
        depth_and_oldest_pending_age,
        purge_published_keeps_pending_rows,
        claim_rejects_zero_batch_or_lease,
    ]
}

async fn seeded(ctx: &Ctx, n: usize) -> Result<(Stores, Arc<dyn Outbox>, Vec<EventId>), String> {
    let s = ctx.fresh().await?;
    let audit = s.audit()?;
    let mut ids = Vec::new();
    for i in 0..n {
        let e = AuditEvent::new(
            tenant((i % 2) as u8),
            s.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        ids.push(e.id);
        ok("record", audit.record(e).await)?;
        if i % 10 == 9 {
            s.clock.advance(Duration::from_millis(1));
        }
    }
    let outbox = s.outbox()?;
    Ok((s, outbox, ids))
}

fn ids_of(rs: &[credo_ports::OutboxRecord]) -> Vec<EventId> {
    rs.iter().map(|r| r.event.id).collect()
}

async fn claim_hands_out_oldest_first(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 25).await?;
    let a = ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?;
    eq("first ten, in order", ids_of(&a), ids[..10].to_vec())?;
    ensure(a.iter().all(|r| r.attempts == 1), || {
        "attempts count claims".into()
    })?;
    let b = ok("claim", outbox.claim(100, Duration::from_secs(30)).await)?;
    eq("the rest, none twice", ids_of(&b), ids[10..].to_vec())?;
    eq(
        "nothing left to claim",
        ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?.len(),
        0,
    )
}

async fn concurrent_claimers_never_overlap(ctx: &Ctx) -> Result<(), String> {
    const ROWS: usize = 500;
    let (_s, outbox, ids) = seeded(ctx, ROWS).await?;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = outbox.claim(7, Duration::from_secs(60)).await?;
                    if batch.is_empty() {
                        return Ok::<_, credo_ports::StoreError>(mine);
                    }
                    mine.extend(batch.into_iter().map(|r| r.event.id));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(ok("claimer", t.await.map_err(|e| e.to_string())?)?);
    }
    let distinct: HashSet<_> = all.iter().collect();
    eq(
        "rows claimed (no overlap between claimers)",
        (all.len(), distinct.len()),
        (ROWS, ROWS),
    )?;
    eq("every row claimed", distinct, ids.iter().collect())
}

async fn lease_expiry_makes_rows_claimable_again(ctx: &Ctx) -> Result<(), String> {
    let (s, outbox, ids) = seeded(ctx, 3).await?;
    ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?;
    s.clock.advance(Duration::from_secs(29));
    eq(
        "held while the lease runs",
        ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?.len(),
        0,
    )?;
    s.clock.advance(Duration::from_secs(1));
    let again = ok(
        "claim at lease end",
        outbox.claim(10, Duration::from_secs(30)).await,
    )?;
    eq("reclaimed", ids_of(&again), ids.clone())?;
    ensure(again.iter().all(|r| r.attempts == 2), || {
        "second attempt".into()
    })
}

async fn ack_and_release(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 4).await?;
    ok("claim", outbox.claim(4, Duration::from_secs(30)).await)?;
    eq("ack two", ok("ack", outbox.ack(&ids[..2]).await)?, 2)?;
    eq(
        "ack again is harmless",
        ok("ack", outbox.ack(&ids[..2]).await)?,
        0,
    )?;
    eq(
        "ack unknown",
        ok("ack", outbox.ack(&[EventId::new()]).await)?,
        0,
    )?;
    eq(
        "release the others",
        ok("release", outbox.release(&ids[2..]).await)?,
        2,
    )?;
    eq(
        "release published or unheld",
        ok("release", outbox.release(&ids).await)?,
        0,
    )?;
    let again = ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?;
    eq("released rows come back", ids_of(&again), ids[2..].to_vec())?;
    eq("depth", ok("depth", outbox.depth().await)?, 2)
}

async fn depth_and_oldest_pending_age(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let outbox = s.outbox()?;
    eq("empty depth", ok("depth", outbox.depth().await)?, 0)?;
    eq(
        "empty age",
        ok("age", outbox.oldest_pending_age().await)?,
        None,
    )?;
    let first = AuditEvent::new(
        tenant(0),
        s.now(),
        AuditCategory::Operations,
        "user.created",
    );
    ok("record", s.audit()?.record(first.clone()).await)?;
    s.clock.advance(Duration::from_secs(3));
    let second = AuditEvent::new(
        tenant(0),
        s.now(),
        AuditCategory::Operations,
        "user.created",
    );
    ok("record", s.audit()?.record(second).await)?;
    s.clock.advance(Duration::from_secs(2));
    eq("depth", ok("depth", outbox.depth().await)?, 2)?;
    eq(
        "age of the oldest",
        ok("age", outbox.oldest_pending_age().await)?,
        Some(Duration::from_secs(5)),
    )?;
    ok("claim", outbox.claim(1, Duration::from_secs(1)).await)?;
    eq(
        "claimed rows still count",
        ok("depth", outbox.depth().await)?,
        2,
    )?;
    ok("ack", outbox.ack(&[first.id]).await)?;
    eq(
        "age of the next",
        ok("age", outbox.oldest_pending_age().await)?,
        Some(Duration::from_secs(2)),
    )
}

async fn purge_published_keeps_pending_rows(ctx: &Ctx) -> Result<(), String> {
    let (s, outbox, ids) = seeded(ctx, 6).await?;
    ok("claim", outbox.claim(4, Duration::from_secs(30)).await)?;
    ok("ack", outbox.ack(&ids[..4]).await)?;
    let acked_at = s.now();
    s.clock.advance(Duration::from_secs(1));
    eq(
        "nothing acked before the ack time",
        ok("purge", outbox.purge_published(acked_at).await)?,
        0,
    )?;
    eq(
        "purge published",
        ok("purge", outbox.purge_published(s.now()).await)?,
        4,
    )?;
    eq("pending rows kept", ok("depth", outbox.depth().await)?, 2)?;
    let rest = ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?;
    eq(
        "pending rows still claimable",
        ids_of(&rest),
        ids[4..].to_vec(),
    )
}

async fn claim_rejects_zero_batch_or_lease(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, _) = seeded(ctx, 1).await?;
    err_kind(
        "batch 0",
        outbox.claim(0, Duration::from_secs(1)).await,
        "InvalidInput",
    )?;
    err_kind(
        "lease 0",
        outbox.claim(1, Duration::ZERO).await,
        "InvalidInput",
    )?;
    eq(
        "nothing claimed",
        ok("claim", outbox.claim(1, Duration::from_secs(1)).await)?.len(),
        1,
    )
}
