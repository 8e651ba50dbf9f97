use super::{cases, ensure, eq, err_kind, ok, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::support::Ctx;
use credo_ports::{
    AuditCategory, AuditEvent, Claim, Disposition, EventId, Outbox, PageRequest, StoreError,
    TraceParent, UserId, trace,
};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Outbox;
        claim_hands_out_oldest_first,
        concurrent_claimers_never_overlap,
        concurrent_claimers_keep_each_key_in_order,
        a_key_is_held_by_one_claim_at_a_time,
        a_dead_claim_stalls_only_its_own_key,
        lease_expiry_makes_rows_claimable_again,
        ack_and_release,
        only_the_holding_claim_acts_on_a_row,
        rejected_rows_wait_then_are_set_aside_and_requeued,
        dead_letters_page_in_enqueue_order,
        depth_and_oldest_pending_age,
        purge_published_keeps_pending_rows,
        claim_rejects_zero_batch_or_lease,
        the_recording_calls_trace_context_is_kept,
        purging_dead_letters_deletes_only_dead_letters,
    ]
}

const LEASE: Duration = Duration::from_secs(30);

/// Records `subjects.len()` events of tenants 0 and 1, the i-th about `subjects[i]`.
async fn seeded_with(
    ctx: &Ctx,
    subjects: &[Option<UserId>],
) -> Result<(Stores, Arc<dyn Outbox>, Vec<EventId>), String> {
    let s = ctx.fresh().await?;
    let audit = s.audit()?;
    let mut ids = Vec::new();
    for (i, subject) in subjects.iter().enumerate() {
        let mut e = AuditEvent::new(
            tenant((i % 2) as u8),
            s.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        e.subject_user_id = *subject;
        ids.push(e.id);
        ok("record", audit.record(e).await)?;
        if i % 10 == 9 {
            s.clock.advance(Duration::from_millis(1));
        }
    }
    let outbox = s.outbox()?;
    Ok((s, outbox, ids))
}

/// `n` events, each about a subject of its own (so no row waits for another's key).
async fn seeded(ctx: &Ctx, n: usize) -> Result<(Stores, Arc<dyn Outbox>, Vec<EventId>), String> {
    let subjects: Vec<_> = (0..n).map(|_| Some(UserId::new())).collect();
    seeded_with(ctx, &subjects).await
}

fn ids_of(c: &Claim) -> Vec<EventId> {
    c.records.iter().map(|r| r.message.id).collect()
}

async fn claim(outbox: &Arc<dyn Outbox>, batch: usize) -> Result<Claim, String> {
    ok("claim", outbox.claim(batch, LEASE).await)
}

async fn claim_hands_out_oldest_first(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 25).await?;
    let a = claim(&outbox, 10).await?;
    eq("first ten, in order", ids_of(&a), ids[..10].to_vec())?;
    ensure(
        a.records.iter().all(|r| r.attempts == 1 && r.failures == 0),
        || "attempts count claims; no failures yet".into(),
    )?;
    let b = claim(&outbox, 100).await?;
    eq("the rest, none twice", ids_of(&b), ids[10..].to_vec())?;
    ensure(a.token != b.token, || "each claim has its own token".into())?;
    eq(
        "nothing left to claim",
        claim(&outbox, 10).await?.records.len(),
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
                    let c = outbox.claim(7, Duration::from_secs(60)).await?;
                    if c.records.is_empty() {
                        return Ok::<_, StoreError>(mine);
                    }
                    mine.extend(c.records.into_iter().map(|r| r.message.id));
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

/// Eight claimers take rows of 12 order keys (one without a subject) concurrently, each
/// "publishing" what it holds into one shared log before acking it: every key's rows reach the
/// log in enqueue order, once each.
async fn concurrent_claimers_keep_each_key_in_order(ctx: &Ctx) -> Result<(), String> {
    const ROWS: usize = 480;
    let subjects: Vec<_> = (0..ROWS)
        .map(|i| (i % 12 != 11).then(|| user_id((i % 12) as u8)))
        .collect();
    let (_s, outbox, ids) = seeded_with(ctx, &subjects).await?;
    let key_of: HashMap<EventId, (u8, Option<UserId>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, ((i % 2) as u8, subjects[i])))
        .collect();
    let published = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (outbox, published) = (outbox.clone(), published.clone());
            tokio::spawn(async move {
                loop {
                    let c = outbox.claim(9, Duration::from_secs(60)).await?;
                    let mut held_back = 0;
                    // Another claimer may hold the keys of every candidate: nothing handed out
                    // although rows remain.
                    if c.records.is_empty() {
                        if outbox.depth().await? == 0 {
                            return Ok::<_, StoreError>(());
                        }
                        held_back += 1;
                    }
                    let these: Vec<EventId> = c.records.iter().map(|r| r.message.id).collect();
                    // Publishing takes a while: other claimers run meanwhile.
                    tokio::time::sleep(Duration::from_micros(200)).await;
                    published.lock().extend(these.iter().copied());
                    tokio::task::yield_now().await;
                    outbox.ack(c.token, &these).await?;
                    if held_back > 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        ok("claimer", t.await.map_err(|e| e.to_string())?)?;
    }
    let published = published.lock().clone();
    eq("published once each", published.len(), ROWS)?;
    let mut per_key: HashMap<(u8, Option<UserId>), Vec<EventId>> = HashMap::new();
    for id in &published {
        per_key.entry(key_of[id]).or_default().push(*id);
    }
    for (key, seen) in per_key {
        let expected: Vec<EventId> = ids
            .iter()
            .filter(|id| key_of[*id] == key)
            .copied()
            .collect();
        eq(&format!("order of key {key:?}"), seen, expected)?;
    }
    Ok(())
}

async fn a_key_is_held_by_one_claim_at_a_time(ctx: &Ctx) -> Result<(), String> {
    let (a, b) = (Some(user_id(1)), Some(user_id(2)));
    // Tenants alternate: rows 0 and 2 are (tenant 0, a), row 1 is (tenant 1, a), row 3 is
    // (tenant 1, b), row 4 is (tenant 0, a).
    let (_s, outbox, ids) = seeded_with(ctx, &[a, a, a, b, a]).await?;
    let first = claim(&outbox, 2).await?;
    eq("oldest two", ids_of(&first), ids[..2].to_vec())?;
    // Candidates now: rows 2, 3, 4. Rows 2 and 4 wait for row 0 (same key, held); row 3 is
    // another key; (tenant 1, a) is a different key from (tenant 0, a).
    let second = claim(&outbox, 10).await?;
    eq("other keys only", ids_of(&second), vec![ids[3]])?;
    ok("ack", outbox.ack(first.token, &ids[..2]).await)?;
    let third = claim(&outbox, 10).await?;
    eq(
        "the key's rest, in order",
        ids_of(&third),
        vec![ids[2], ids[4]],
    )?;
    // Events without a subject share one key per tenant: row 2 waits for row 0.
    let (_s, outbox, ids) = seeded_with(ctx, &[None, b, None]).await?;
    eq("first", ids_of(&claim(&outbox, 1).await?), vec![ids[0]])?;
    eq(
        "the other key only",
        ids_of(&claim(&outbox, 10).await?),
        vec![ids[1]],
    )
}

async fn lease_expiry_makes_rows_claimable_again(ctx: &Ctx) -> Result<(), String> {
    let (s, outbox, ids) = seeded(ctx, 3).await?;
    let first = claim(&outbox, 10).await?;
    s.clock.advance(Duration::from_secs(29));
    eq(
        "held while the lease runs",
        claim(&outbox, 10).await?.records.len(),
        0,
    )?;
    s.clock.advance(Duration::from_secs(1));
    let again = claim(&outbox, 10).await?;
    eq("reclaimed", ids_of(&again), ids.clone())?;
    ensure(again.records.iter().all(|r| r.attempts == 2), || {
        "second attempt".into()
    })?;
    eq(
        "the lapsed claim can no longer ack",
        ok("ack", outbox.ack(first.token, &ids).await)?,
        0,
    )?;
    eq(
        "the lapsed claim can no longer release",
        ok("release", outbox.release(first.token, &ids).await)?,
        0,
    )?;
    eq(
        "the new claim acks",
        ok("ack", outbox.ack(again.token, &ids).await)?,
        3,
    )
}

async fn ack_and_release(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 4).await?;
    let c = claim(&outbox, 4).await?;
    eq(
        "ack two",
        ok("ack", outbox.ack(c.token, &ids[..2]).await)?,
        2,
    )?;
    eq(
        "ack again is harmless",
        ok("ack", outbox.ack(c.token, &ids[..2]).await)?,
        0,
    )?;
    eq(
        "ack unknown",
        ok("ack", outbox.ack(c.token, &[EventId::new()]).await)?,
        0,
    )?;
    eq(
        "release the others",
        ok("release", outbox.release(c.token, &ids[2..]).await)?,
        2,
    )?;
    eq(
        "release published or unheld",
        ok("release", outbox.release(c.token, &ids).await)?,
        0,
    )?;
    let again = claim(&outbox, 10).await?;
    eq("released rows come back", ids_of(&again), ids[2..].to_vec())?;
    eq("depth", ok("depth", outbox.depth().await)?, 2)
}

async fn only_the_holding_claim_acts_on_a_row(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 4).await?;
    let mine = claim(&outbox, 2).await?;
    let theirs = claim(&outbox, 2).await?;
    eq("theirs", ids_of(&theirs), ids[2..].to_vec())?;
    eq(
        "ack of rows another claim holds",
        ok("ack", outbox.ack(mine.token, &ids[2..]).await)?,
        0,
    )?;
    eq(
        "release of rows another claim holds",
        ok("release", outbox.release(mine.token, &ids[2..]).await)?,
        0,
    )?;
    ensure(
        !ok(
            "reject",
            outbox
                .reject(mine.token, ids[2], "no", Disposition::SetAside)
                .await,
        )?,
        || "reject of a row another claim holds".into(),
    )?;
    eq("nothing changed", ok("depth", outbox.depth().await)?, 4)?;
    eq(
        "dead letters",
        ok("count", outbox.dead_letter_count().await)?,
        0,
    )?;
    eq(
        "a token acts on its own rows",
        ok("ack", outbox.ack(theirs.token, &ids).await)?,
        2,
    )
}

async fn rejected_rows_wait_then_are_set_aside_and_requeued(ctx: &Ctx) -> Result<(), String> {
    let a = Some(user_id(1));
    let (s, outbox, ids) = seeded_with(ctx, &[a, None, a]).await?;
    // Rows 0 and 2 are (tenant 0, a); row 1 is (tenant 1, none).
    let c = claim(&outbox, 10).await?;
    eq("all three", ids_of(&c), ids.clone())?;
    let retry = Disposition::RetryAfter(Duration::from_secs(5));
    ensure(
        ok("reject", outbox.reject(c.token, ids[0], "bad", retry).await)?,
        || "the claim held it".into(),
    )?;
    ensure(
        !ok("reject", outbox.reject(c.token, ids[0], "bad", retry).await)?,
        || "a rejected row is no longer held by the claim".into(),
    )?;
    eq(
        "release",
        ok("release", outbox.release(c.token, &ids[1..]).await)?,
        2,
    )?;
    // During the delay the row holds its key back; the other key is free.
    eq(
        "other key",
        ids_of(&claim(&outbox, 10).await?),
        vec![ids[1]],
    )?;
    s.clock.advance(Duration::from_secs(5));
    let again = claim(&outbox, 1).await?;
    eq("retried after the delay", ids_of(&again), vec![ids[0]])?;
    eq("failures so far", again.records[0].failures, 1)?;
    eq("attempts so far", again.records[0].attempts, 2)?;
    let before = s.now();
    ensure(
        ok(
            "set aside",
            outbox
                .reject(again.token, ids[0], "still bad", Disposition::SetAside)
                .await,
        )?,
        || "held".into(),
    )?;
    eq("not pending", ok("depth", outbox.depth().await)?, 2)?;
    eq("counted", ok("count", outbox.dead_letter_count().await)?, 1)?;
    let dead = ok("list", outbox.dead_letters(PageRequest::first(10)).await)?;
    eq("listed", dead.items.len(), 1)?;
    let d = &dead.items[0];
    eq(
        "dead letter",
        (d.message.id, d.failures, d.reason.as_str(), d.failed_at),
        (ids[0], 2, "still bad", before),
    )?;
    // Set aside, it no longer holds its key back.
    let next = claim(&outbox, 10).await?;
    eq("the key's next row", ids_of(&next), vec![ids[2]])?;
    eq(
        "requeue (unknown and pending ids ignored)",
        ok(
            "requeue",
            outbox.requeue(&[ids[0], ids[1], EventId::new()]).await,
        )?,
        1,
    )?;
    eq(
        "no dead letters",
        ok("count", outbox.dead_letter_count().await)?,
        0,
    )?;
    eq("pending again", ok("depth", outbox.depth().await)?, 3)?;
    // Its key has a row in flight (ids[2]): no second row of the key is handed out meanwhile,
    // so two relays never publish one key at once.
    eq(
        "not while its key is in flight",
        ids_of(&claim(&outbox, 10).await?),
        vec![],
    )?;
    eq(
        "the row in flight is published",
        ok("ack", outbox.ack(next.token, &[ids[2]]).await)?,
        1,
    )?;
    let requeued = claim(&outbox, 10).await?;
    eq("claimable again", ids_of(&requeued), vec![ids[0]])?;
    eq("failures cleared", requeued.records[0].failures, 0)
}

async fn dead_letters_page_in_enqueue_order(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 7).await?;
    let c = claim(&outbox, 10).await?;
    for id in ids.iter().rev() {
        ok(
            "set aside",
            outbox
                .reject(c.token, *id, "no", Disposition::SetAside)
                .await,
        )?;
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ok(
            "list",
            outbox.dead_letters(PageRequest { after, limit: 3 }).await,
        )?;
        seen.extend(page.items.iter().map(|d| d.message.id));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    eq("every dead letter once, oldest first", seen, ids)?;
    err_kind(
        "page size 0",
        outbox.dead_letters(PageRequest::first(0)).await,
        "InvalidInput",
    )
}

/// An event recorded inside a trace keeps that trace's `traceparent` in its row, through a
/// claim and a dead-letter listing; one recorded outside any trace has none.
async fn the_recording_calls_trace_context_is_kept(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let audit = s.audit()?;
    let tp = TraceParent::new_root();
    let traced = AuditEvent::new(tenant(0), s.now(), AuditCategory::Security, "auth.login");
    let plain = AuditEvent::new(tenant(0), s.now(), AuditCategory::Security, "auth.logout");
    let ids = [traced.id, plain.id];
    ok(
        "record in a trace",
        trace::in_trace(tp, audit.record(traced)).await,
    )?;
    ok("record outside", audit.record(plain).await)?;
    let outbox = s.outbox()?;
    let c = claim(&outbox, 10).await?;
    let carried: Vec<_> = c
        .records
        .iter()
        .map(|r| (r.message.id, r.message.traceparent))
        .collect();
    eq(
        "claimed trace contexts",
        carried,
        vec![(ids[0], Some(tp)), (ids[1], None)],
    )?;
    ok(
        "set aside",
        outbox
            .reject(c.token, ids[0], "no", Disposition::SetAside)
            .await,
    )?;
    let dead = ok("list", outbox.dead_letters(PageRequest::first(10)).await)?;
    eq(
        "dead letter's trace context",
        dead.items
            .iter()
            .map(|d| d.message.traceparent)
            .collect::<Vec<_>>(),
        vec![Some(tp)],
    )
}

/// An operator deletes set-aside rows for good: only dead letters among the ids go (not the
/// pending, claimed or published rows named with them), once.
async fn purging_dead_letters_deletes_only_dead_letters(ctx: &Ctx) -> Result<(), String> {
    let (_s, outbox, ids) = seeded(ctx, 4).await?;
    let c = claim(&outbox, 10).await?;
    for id in &ids[..2] {
        ok(
            "set aside",
            outbox
                .reject(c.token, *id, "no", Disposition::SetAside)
                .await,
        )?;
    }
    // ids[2] published, ids[3] still claimed.
    eq("ack", ok("ack", outbox.ack(c.token, &ids[2..3]).await)?, 1)?;
    eq(
        "purged: the first dead letter only",
        ok(
            "purge",
            outbox.purge_dead_letters(&[ids[0], ids[2], ids[3]]).await,
        )?,
        1,
    )?;
    eq(
        "dead letters left",
        ok("count", outbox.dead_letter_count().await)?,
        1,
    )?;
    eq(
        "listed",
        ok("list", outbox.dead_letters(PageRequest::first(10)).await)?
            .items
            .iter()
            .map(|d| d.message.id)
            .collect::<Vec<_>>(),
        vec![ids[1]],
    )?;
    eq(
        "purging again removes nothing",
        ok("purge", outbox.purge_dead_letters(&[ids[0]]).await)?,
        0,
    )?;
    // A purged dead letter cannot be re-queued; the claimed row is still held by its claim.
    eq(
        "requeue purged",
        ok("requeue", outbox.requeue(&[ids[0]]).await)?,
        0,
    )?;
    eq(
        "ack the claimed row",
        ok("ack", outbox.ack(c.token, &ids[3..4]).await)?,
        1,
    )?;
    eq("nothing pending", ok("depth", outbox.depth().await)?, 0)
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
    let c = ok("claim", outbox.claim(1, Duration::from_secs(1)).await)?;
    eq(
        "claimed rows still count",
        ok("depth", outbox.depth().await)?,
        2,
    )?;
    ok("ack", outbox.ack(c.token, &[first.id]).await)?;
    eq(
        "age of the next",
        ok("age", outbox.oldest_pending_age().await)?,
        Some(Duration::from_secs(2)),
    )
}

async fn purge_published_keeps_pending_rows(ctx: &Ctx) -> Result<(), String> {
    let (s, outbox, ids) = seeded(ctx, 7).await?;
    let c = claim(&outbox, 5).await?;
    ok("ack", outbox.ack(c.token, &ids[..4]).await)?;
    ok(
        "set one aside",
        outbox
            .reject(c.token, ids[4], "no", Disposition::SetAside)
            .await,
    )?;
    let acked_at = s.now();
    s.clock.advance(Duration::from_secs(1));
    eq(
        "nothing acked before the ack time",
        ok(
            "purge",
            outbox.purge_published(acked_at, NonZeroU32::MAX).await,
        )?,
        0,
    )?;
    eq(
        "purge published",
        ok(
            "purge",
            outbox.purge_published(s.now(), NonZeroU32::MAX).await,
        )?,
        4,
    )?;
    eq("pending rows kept", ok("depth", outbox.depth().await)?, 2)?;
    eq(
        "dead letters kept",
        ok("count", outbox.dead_letter_count().await)?,
        1,
    )?;
    let rest = claim(&outbox, 10).await?;
    eq(
        "pending rows still claimable",
        ids_of(&rest),
        ids[5..].to_vec(),
    )
}

/// A claim whose relay died holds its key until the lease ends, and only its key: the later
/// rows of that key take no place in anyone's batch, so other keys keep flowing. (Claims used
/// to count the held key's later rows against the batch: once `batch` of them had queued up
/// behind the dead claim, every relay's claim came back empty until the lease ran out.)
async fn a_dead_claim_stalls_only_its_own_key(ctx: &Ctx) -> Result<(), String> {
    let a = Some(user_id(1));
    let (s, outbox, mut ids) = seeded_with(ctx, &[a]).await?;
    let dead = claim(&outbox, 1).await?;
    eq("the relay that dies", ids_of(&dead), vec![ids[0]])?;
    let audit = s.audit()?;
    let mut record = |subject: Option<UserId>| {
        let mut e = AuditEvent::new(
            tenant(0),
            s.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        e.subject_user_id = subject;
        ids.push(e.id);
        e
    };
    let later: Vec<AuditEvent> = (0..6).map(|_| record(a)).collect();
    let other = record(Some(user_id(2)));
    for e in later.into_iter().chain([other]) {
        ok("record", audit.record(e).await)?;
    }
    // Six rows of the held key come first; a batch of six still reaches the other key.
    let live = claim(&outbox, 6).await?;
    eq("only the other key", ids_of(&live), vec![ids[7]])?;
    eq(
        "nothing more while the lease lives",
        ids_of(&claim(&outbox, 10).await?),
        vec![],
    )?;
    eq(
        "the other key published",
        ok("ack", outbox.ack(live.token, &[ids[7]]).await)?,
        1,
    )?;
    s.clock.advance(LEASE);
    eq(
        "the dead claim's key, in order, once its lease ended",
        ids_of(&claim(&outbox, 10).await?),
        ids[..7].to_vec(),
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
        ok("claim", outbox.claim(1, Duration::from_secs(1)).await)?
            .records
            .len(),
        1,
    )
}
