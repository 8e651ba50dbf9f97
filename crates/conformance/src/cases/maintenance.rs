//! What the maintenance runner relies on: purges that remove at most their batch bound (and
//! say so), and leases that keep one holder per job until the lease ends.

use super::sessions::new_session;
use super::{Ctx, cases, ensure, eq, err_kind, ok, race, tenant};
use crate::harness::{Port, Stores};
use credo_ports::leases::MAX_LEASE;
use credo_ports::outbox::Disposition;
use credo_ports::{AuditCategory, AuditEvent, JobLeases, NonZeroU32, RateLimitPolicy, UserId};
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Sessions; session_purge_is_bounded];
    v.extend(cases![Port::RateLimits; rate_limit_purge_is_bounded]);
    v.extend(cases![Port::Outbox; outbox_purge_is_bounded]);
    v.extend(cases![Port::Audit; audit_purge_is_bounded_and_by_category]);
    v.extend(cases![Port::Leases;
        a_lease_has_one_holder_until_it_ends,
        concurrent_acquires_have_one_winner,
        leases_refuse_bad_input,
    ]);
    v
}

fn limit(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a positive bound")
}

/// Purges with bound `n` until one removes fewer; returns each call's count.
async fn purge_rounds<F, Fut>(n: u32, mut purge: F) -> Result<Vec<u64>, String>
where
    F: FnMut(NonZeroU32) -> Fut,
    Fut: std::future::Future<Output = credo_ports::StoreResult<u64>>,
{
    let mut rounds = Vec::new();
    loop {
        let removed = ok("purge", purge(limit(n)).await)?;
        rounds.push(removed);
        if removed < u64::from(n) || rounds.len() > 100 {
            return Ok(rounds);
        }
    }
}

async fn session_purge_is_bounded(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let st = s.sessions()?;
    for id in 1..=7 {
        ok(
            "short",
            st.create(new_session(&s, id, id % 3, id, 5, false)).await,
        )?;
    }
    for id in 8..=9 {
        ok(
            "long",
            st.create(new_session(&s, id, 0, id, 50, false)).await,
        )?;
    }
    let soon = s.now().saturating_add(Duration::from_secs(5));
    let later = s.now().saturating_add(Duration::from_secs(50));
    for jti in ["t1", "t2", "t3"] {
        ok("token", st.revoke_token(tenant(1), jti, soon).await)?;
    }
    ok("long token", st.revoke_token(tenant(1), "t4", later).await)?;
    s.clock.advance(Duration::from_secs(5));
    eq(
        "7 sessions and 3 revocations, at most 4 a call",
        purge_rounds(4, |n| st.purge_expired(n)).await?,
        vec![4, 4, 2],
    )?;
    for id in 8..=9 {
        ensure(
            ok("get", st.get(tenant(0), super::session_id(id)).await)?.is_some(),
            || format!("live session {id} purged"),
        )?;
    }
    ensure(
        ok("revoked?", st.is_token_revoked(tenant(1), "t4").await)?,
        || "live revocation purged".into(),
    )?;
    eq(
        "nothing left",
        ok("purge", st.purge_expired(limit(1)).await)?,
        0,
    )
}

/// 3 per hour, burst 3: one check keeps a key busy for 20 minutes.
const SLOW: RateLimitPolicy = RateLimitPolicy {
    limit: 3,
    period: Duration::from_secs(3600),
    burst: 3,
};

async fn rate_limit_purge_is_bounded(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let rl = s.rate_limits()?;
    for i in 0..6u8 {
        ok(
            "check",
            rl.check(tenant(i % 2), &format!("ip:{i}"), SLOW, 1).await,
        )?;
    }
    s.clock.advance(Duration::from_secs(21 * 60));
    for key in ["busy:a", "busy:b"] {
        ok("check", rl.check(tenant(0), key, SLOW, 1).await)?;
    }
    eq(
        "6 idle keys, at most 4 a call",
        purge_rounds(4, |n| rl.purge_idle(n)).await?,
        vec![4, 2],
    )?;
    for key in ["busy:a", "busy:b"] {
        eq(
            "a busy key keeps its state (one of 3 used; a peek counts one more)",
            ok("peek", rl.peek(tenant(0), key, SLOW).await)?.remaining,
            1,
        )?;
    }
    Ok(())
}

async fn outbox_purge_is_bounded(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let audit = s.audit()?;
    let outbox = s.outbox()?;
    for i in 0..10u8 {
        let mut e = AuditEvent::new(
            tenant(i % 2),
            s.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        e.subject_user_id = Some(UserId::new());
        ok("record", audit.record(e).await)?;
    }
    let c = ok("claim", outbox.claim(10, Duration::from_secs(30)).await)?;
    let ids: Vec<_> = c.records.iter().map(|r| r.message.id).collect();
    ok("ack", outbox.ack(c.token, &ids[..7]).await)?;
    ok(
        "set one aside",
        outbox
            .reject(c.token, ids[7], "no", Disposition::SetAside)
            .await,
    )?;
    s.clock.advance(Duration::from_secs(1));
    eq(
        "7 published rows, at most 3 a call",
        purge_rounds(3, |n| outbox.purge_published(s.now(), n)).await?,
        vec![3, 3, 1],
    )?;
    eq("pending rows kept", ok("depth", outbox.depth().await)?, 2)?;
    eq(
        "dead letters kept",
        ok("dead", outbox.dead_letter_count().await)?,
        1,
    )
}

async fn audit_purge_is_bounded_and_by_category(ctx: &Ctx) -> Result<(), String> {
    let s = ctx.fresh().await?;
    let log = s.audit_log()?;
    let old = s.now();
    let new = s.now().saturating_add(Duration::from_secs(3600));
    let mut events = Vec::new();
    for (n, category, at) in [
        (4, AuditCategory::Security, old),
        (3, AuditCategory::Operations, old),
        (2, AuditCategory::Compliance, old),
        (2, AuditCategory::Security, new),
    ] {
        for i in 0..n {
            events.push(AuditEvent::new(tenant(i % 2), at, category, "x.y"));
        }
    }
    ok("append", log.append_batch(&events).await)?;
    let cut = old.saturating_add(Duration::from_secs(1));
    let count = |category| {
        let log = log.clone();
        async move {
            let mut n = 0;
            for t in 0..2 {
                let q = credo_ports::AuditQuery {
                    category: Some(category),
                    ..Default::default()
                };
                n += ok("count", log.count(tenant(t), q).await)?;
            }
            Ok::<u64, String>(n)
        }
    };
    eq(
        "old security events, at most 3 a call",
        purge_rounds(3, |n| {
            log.purge_before(cut, Some(AuditCategory::Security), n)
        })
        .await?,
        vec![3, 1],
    )?;
    eq(
        "new security events kept",
        count(AuditCategory::Security).await?,
        2,
    )?;
    eq(
        "operations untouched",
        count(AuditCategory::Operations).await?,
        3,
    )?;
    eq(
        "every old event left, at most 2 a call",
        purge_rounds(2, |n| log.purge_before(cut, None, n)).await?,
        vec![2, 2, 1],
    )?;
    eq(
        "compliance purged",
        count(AuditCategory::Compliance).await?,
        0,
    )?;
    eq("new events kept", count(AuditCategory::Security).await?, 2)
}

async fn leases(ctx: &Ctx) -> Result<(Stores, Arc<dyn JobLeases>), String> {
    let s = ctx.fresh().await?;
    let l = s.job_leases()?;
    Ok((s, l))
}

async fn a_lease_has_one_holder_until_it_ends(ctx: &Ctx) -> Result<(), String> {
    let (s, l) = leases(ctx).await?;
    let ttl = Duration::from_secs(10);
    let job = "purge-sessions";
    ensure(ok("a takes", l.acquire(job, "a", ttl).await)?, || {
        "a free lease was refused".into()
    })?;
    ensure(!ok("b tries", l.acquire(job, "b", ttl).await)?, || {
        "two holders at once".into()
    })?;
    ensure(
        ok("b, another job", l.acquire("purge-outbox", "b", ttl).await)?,
        || "jobs are independent".into(),
    )?;
    ctx.wait(&s, Duration::from_secs(6)).await;
    ensure(ok("a renews", l.acquire(job, "a", ttl).await)?, || {
        "the holder could not renew".into()
    })?;
    ctx.wait(&s, Duration::from_secs(6)).await;
    ensure(!ok("b tries", l.acquire(job, "b", ttl).await)?, || {
        "a renewed lease ended at its first end".into()
    })?;
    ctx.wait(&s, Duration::from_secs(5)).await;
    ensure(ok("b takes over", l.acquire(job, "b", ttl).await)?, || {
        "a lease nobody renewed never ended".into()
    })?;
    ensure(!ok("a again", l.acquire(job, "a", ttl).await)?, || {
        "the old holder took the lease back".into()
    })?;
    ok("a releases what it lost", l.release(job, "a").await)?;
    ensure(!ok("a again", l.acquire(job, "a", ttl).await)?, || {
        "a non-holder's release ended the lease".into()
    })?;
    ok("b releases", l.release(job, "b").await)?;
    ensure(ok("a takes", l.acquire(job, "a", ttl).await)?, || {
        "a released lease stayed taken".into()
    })
}

async fn concurrent_acquires_have_one_winner(ctx: &Ctx) -> Result<(), String> {
    let (_s, l) = leases(ctx).await?;
    for round in 0..5 {
        let job = format!("job-{round}");
        let results = race(8, |i| {
            let (l, job) = (l.clone(), job.clone());
            async move {
                l.acquire(&job, &format!("instance-{i}"), Duration::from_secs(30))
                    .await
            }
        })
        .await?;
        let mut winners = 0;
        for r in results {
            winners += u32::from(ok("acquire", r)?);
        }
        eq("holders of one lease", winners, 1)?;
    }
    Ok(())
}

async fn leases_refuse_bad_input(ctx: &Ctx) -> Result<(), String> {
    let (_s, l) = leases(ctx).await?;
    let ttl = Duration::from_secs(1);
    for (what, job, holder, ttl) in [
        ("empty job", "", "h", ttl),
        ("blank holder", "j", "  ", ttl),
        ("control character", "j\u{7}", "h", ttl),
        ("over-long job", &*"j".repeat(257), "h", ttl),
        ("zero ttl", "j", "h", Duration::ZERO),
        (
            "ttl past the bound",
            "j",
            "h",
            MAX_LEASE + Duration::from_millis(1),
        ),
        ("largest duration", "j", "h", Duration::MAX),
    ] {
        err_kind(what, l.acquire(job, holder, ttl).await, "InvalidInput")?;
    }
    err_kind(
        "release, empty job",
        l.release("", "h").await,
        "InvalidInput",
    )?;
    // Names with pattern and separator characters are names like any other.
    let odd = "jöb:{x}*?[a-z]\\";
    ensure(ok("odd name", l.acquire(odd, "h:{1}", ttl).await)?, || {
        "an odd job name was refused".into()
    })?;
    ensure(!ok("odd name", l.acquire(odd, "other", ttl).await)?, || {
        "an odd job name was not one lease".into()
    })?;
    ensure(
        ok("similar name", l.acquire("jöb:{x}", "other", ttl).await)?,
        || "a pattern in one job name matched another".into(),
    )?;
    Ok(())
}
