//! Lifecycle examples of the session store: expiry at exactly now, revoking, touching,
//! status transitions, listing, revoke-all, the purge and token revocations.

use super::{SEC, new_session, sessions};
use crate::cases::{ensure, eq, err_kind, ok, session_id, tenant, user_id};
use crate::support::Ctx;
use credo_ports::{SessionStatus, Timestamp};
use std::num::NonZeroU32;
use std::time::Duration;

pub(super) async fn expiry_is_exact_at_now(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let sess = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 10, false)).await,
    )?;
    s.clock
        .set(Timestamp::from_micros(sess.expires_at.as_micros() - 1));
    ensure(
        ok("get", st.get(tenant(0), sess.id).await)?.is_some(),
        || "live 1 µs before expiry".into(),
    )?;
    ok(
        "touch just before expiry",
        st.touch(tenant(0), sess.id).await,
    )?;
    s.clock.set(sess.expires_at);
    eq(
        "get at expires_at",
        ok("get", st.get(tenant(0), sess.id).await)?,
        None,
    )?;
    err_kind(
        "touch at expires_at",
        st.touch(tenant(0), sess.id).await,
        "NotFound",
    )?;
    err_kind(
        "revoke at expires_at",
        st.revoke(tenant(0), sess.id).await,
        "NotFound",
    )?;
    eq(
        "not listed",
        ok("list", st.list_for_user(tenant(0), user_id(0)).await)?.len(),
        0,
    )?;
    let exp = Timestamp::from_micros(s.now().as_micros() + SEC);
    ok(
        "revoke token",
        st.revoke_token(tenant(0), "jti-edge", exp).await,
    )?;
    s.clock.set(Timestamp::from_micros(exp.as_micros() - 1));
    eq(
        "token revoked before expiry",
        ok("is", st.is_token_revoked(tenant(0), "jti-edge").await)?,
        true,
    )?;
    s.clock.set(exp);
    eq(
        "token free at expiry",
        ok("is", st.is_token_revoked(tenant(0), "jti-edge").await)?,
        false,
    )
}

pub(super) async fn second_revoke_is_invalid_state(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let sess = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 60, false)).await,
    )?;
    let r = ok("revoke", st.revoke(tenant(0), sess.id).await)?;
    eq("status", r.status, SessionStatus::Revoked)?;
    eq("revoked_at", r.revoked_at, Some(s.now()))?;
    err_kind(
        "second revoke",
        st.revoke(tenant(0), sess.id).await,
        "InvalidState",
    )?;
    err_kind(
        "revoke absent",
        st.revoke(tenant(0), session_id(99)).await,
        "NotFound",
    )
}

pub(super) async fn revoked_session_is_returned_until_expiry(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let sess = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 30, false)).await,
    )?;
    ok("revoke", st.revoke(tenant(0), sess.id).await)?;
    s.clock.advance(Duration::from_secs(29));
    let got = ok("get", st.get(tenant(0), sess.id).await)?;
    eq(
        "still returned, revoked",
        got.map(|g| g.status),
        Some(SessionStatus::Revoked),
    )?;
    eq(
        "not listed as live",
        ok("list", st.list_for_user(tenant(0), user_id(0)).await)?.len(),
        0,
    )?;
    err_kind(
        "touch revoked",
        st.touch(tenant(0), sess.id).await,
        "InvalidState",
    )?;
    s.clock.advance(Duration::from_secs(1));
    eq(
        "gone after expiry",
        ok("get", st.get(tenant(0), sess.id).await)?,
        None,
    )
}

pub(super) async fn touch_only_moves_forward(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let sess = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 600, false)).await,
    )?;
    s.clock.advance(Duration::from_secs(10));
    let t1 = ok("touch", st.touch(tenant(0), sess.id).await)?;
    eq("last_seen_at", t1.last_seen_at, s.now())?;
    let later = s.now();
    s.clock
        .set(Timestamp::from_micros(later.as_micros() - 5 * SEC));
    let t2 = ok(
        "touch with clock behind",
        st.touch(tenant(0), sess.id).await,
    )?;
    eq("last_seen_at never moves back", t2.last_seen_at, later)?;
    eq("created_at kept", t2.created_at, sess.created_at)
}

pub(super) async fn lifecycle_transitions_are_enforced(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let p = ok(
        "create pending",
        st.create(new_session(&s, 1, 0, 0, 60, true)).await,
    )?;
    eq("pending", p.status, SessionStatus::PendingConsent)?;
    err_kind(
        "refresh pending",
        st.mark_refreshed(tenant(0), p.id).await,
        "InvalidState",
    )?;
    let a = ok("activate", st.activate(tenant(0), p.id).await)?;
    eq("active", (a.status, a.version), (SessionStatus::Active, 2))?;
    err_kind(
        "activate twice",
        st.activate(tenant(0), p.id).await,
        "InvalidState",
    )?;
    s.clock.advance(Duration::from_secs(1));
    let r = ok("refresh", st.mark_refreshed(tenant(0), p.id).await)?;
    eq("last_refreshed_at", r.last_refreshed_at, Some(s.now()))?;
    ok("revoke", st.revoke(tenant(0), p.id).await)?;
    err_kind(
        "activate revoked",
        st.activate(tenant(0), p.id).await,
        "InvalidState",
    )?;
    err_kind(
        "refresh revoked",
        st.mark_refreshed(tenant(0), p.id).await,
        "InvalidState",
    )?;
    err_kind(
        "create same id",
        st.create(new_session(&s, 1, 0, 0, 60, false)).await,
        "Conflict",
    )
}

pub(super) async fn list_for_user_has_no_cap_and_is_newest_first(ctx: &Ctx) -> Result<(), String> {
    const N: u8 = 150;
    let (s, st) = sessions(ctx).await?;
    for i in 0..N {
        s.clock
            .advance(Duration::from_micros(if i % 2 == 0 { 1 } else { 0 }));
        ok(
            "create",
            st.create(new_session(&s, i, 0, 7, 3600, false)).await,
        )?;
    }
    ok(
        "other user",
        st.create(new_session(&s, 200, 0, 8, 3600, false)).await,
    )?;
    let list = ok("list", st.list_for_user(tenant(0), user_id(7)).await)?;
    eq("every live session listed", list.len(), N as usize)?;
    let keys: Vec<_> = list.iter().map(|s| (s.created_at, s.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    eq("newest first by (created_at, id)", keys, sorted)
}

pub(super) async fn revoke_all_for_user_counts_live_sessions(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    for i in 0..4 {
        ok(
            "create",
            st.create(new_session(&s, i, 0, 1, 10 + i64::from(i) * 10, false))
                .await,
        )?;
    }
    ok(
        "other user",
        st.create(new_session(&s, 9, 0, 2, 60, false)).await,
    )?;
    ok("revoke one", st.revoke(tenant(0), session_id(3)).await)?;
    s.clock.advance(Duration::from_secs(10)); // session 0 expires exactly now
    eq(
        "revoked live unrevoked",
        ok(
            "revoke all",
            st.revoke_all_for_user(tenant(0), user_id(1)).await,
        )?,
        2,
    )?;
    eq(
        "again",
        ok(
            "revoke all",
            st.revoke_all_for_user(tenant(0), user_id(1)).await,
        )?,
        0,
    )?;
    eq(
        "other user untouched",
        ok("list", st.list_for_user(tenant(0), user_id(2)).await)?.len(),
        1,
    )
}

pub(super) async fn purge_removes_only_expired(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    ok("short", st.create(new_session(&s, 1, 0, 0, 5, false)).await)?;
    ok("long", st.create(new_session(&s, 2, 1, 0, 50, false)).await)?;
    let exp = Timestamp::from_micros(s.now().as_micros() + 5 * SEC);
    ok("token", st.revoke_token(tenant(0), "t1", exp).await)?;
    s.clock.advance(Duration::from_secs(5));
    eq(
        "purged (one session, one revocation)",
        ok("purge", st.purge_expired(NonZeroU32::MAX).await)?,
        2,
    )?;
    ensure(
        ok("get", st.get(tenant(1), session_id(2)).await)?.is_some(),
        || "live session purged".into(),
    )?;
    err_kind(
        "expired id still reserved or gone",
        st.touch(tenant(0), session_id(1)).await,
        "NotFound",
    )?;
    eq(
        "second purge",
        ok("purge", st.purge_expired(NonZeroU32::MAX).await)?,
        0,
    )
}

pub(super) async fn token_revocation_expires_and_extends(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let at = |secs: i64| Timestamp::from_micros(s.now().as_micros() + secs * SEC);
    eq(
        "unknown token",
        ok("is", st.is_token_revoked(tenant(0), "j").await)?,
        false,
    )?;
    ok("revoke 10s", st.revoke_token(tenant(0), "j", at(10)).await)?;
    ok(
        "revoke 5s keeps the later expiry",
        st.revoke_token(tenant(0), "j", at(5)).await,
    )?;
    ok(
        "revoke 20s extends",
        st.revoke_token(tenant(0), "j", at(20)).await,
    )?;
    s.clock.advance(Duration::from_secs(15));
    eq(
        "still revoked at 15s",
        ok("is", st.is_token_revoked(tenant(0), "j").await)?,
        true,
    )?;
    eq(
        "other tenant",
        ok("is", st.is_token_revoked(tenant(1), "j").await)?,
        false,
    )?;
    s.clock.advance(Duration::from_secs(5));
    eq(
        "expired at 20s",
        ok("is", st.is_token_revoked(tenant(0), "j").await)?,
        false,
    )?;
    err_kind(
        "non-positive lifetime",
        st.revoke_token(tenant(0), "k", s.now()).await,
        "InvalidInput",
    )?;
    err_kind(
        "empty jti",
        st.revoke_token(tenant(0), "", at(5)).await,
        "InvalidInput",
    )?;
    err_kind(
        "nul jti",
        st.is_token_revoked(tenant(0), "a\0b").await,
        "InvalidInput",
    )
}
