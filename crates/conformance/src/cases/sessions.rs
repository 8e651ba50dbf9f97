use super::{cases, ensure, eq, err_kind, ok, race, session_id, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{Device, NewSession, SessionStatus, SessionStore, StoreError, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Sessions;
        model_based_sequences,
        expiry_is_exact_at_now,
        second_revoke_is_invalid_state,
        concurrent_revokes_have_one_winner,
        revoked_session_is_returned_until_expiry,
        touch_only_moves_forward,
        lifecycle_transitions_are_enforced,
        list_for_user_has_no_cap_and_is_newest_first,
        revoke_all_for_user_counts_live_sessions,
        purge_removes_only_expired,
        token_revocation_expires_and_extends,
        cross_tenant_isolation,
        bad_input_is_rejected_before_any_write,
        ids_are_global_while_live_and_free_once_expired,
        a_clock_far_ahead_hides_no_live_session,
    ]
}

const SEC: i64 = 1_000_000;

fn new_session(s: &Stores, id: u8, t: u8, user: u8, ttl_secs: i64, pending: bool) -> NewSession {
    NewSession {
        id: session_id(id),
        tenant_id: tenant(t),
        user_id: user_id(user),
        client_id: "web-app".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: if pending {
            SessionStatus::PendingConsent
        } else {
            SessionStatus::Active
        },
        device: Device {
            user_agent: Some("Mozilla/5.0 'quoted'".into()),
            ip_address: Some("2001:db8::1".into()),
            ..Default::default()
        },
        expires_at: Timestamp::from_micros(s.now().as_micros() + ttl_secs * SEC),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        id: u8,
        t: u8,
        user: u8,
        ttl: i64,
        pending: bool,
        no_scopes: bool,
    },
    Get {
        t: u8,
        id: u8,
    },
    Touch {
        t: u8,
        id: u8,
    },
    Refresh {
        t: u8,
        id: u8,
    },
    Activate {
        t: u8,
        id: u8,
    },
    Revoke {
        t: u8,
        id: u8,
    },
    RevokeAll {
        t: u8,
        user: u8,
    },
    List {
        t: u8,
        user: u8,
    },
    Purge,
    RevokeToken {
        t: u8,
        jti: u8,
        ttl: i64,
    },
    IsTokenRevoked {
        t: u8,
        jti: u8,
    },
    Advance {
        micros: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let (id, t, user) = (0u8..6, 0u8..8, 0u8..3);
    prop_oneof![
        4 => (id.clone(), t.clone(), user.clone(), -1i64..4, any::<bool>(), prop::bool::weighted(0.05))
            .prop_map(|(id, t, user, ttl, pending, no_scopes)| Op::Create { id, t, user, ttl, pending, no_scopes }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Get { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Touch { t, id }),
        1 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Refresh { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Activate { t, id }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Revoke { t, id }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::RevokeAll { t, user }),
        2 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::List { t, user }),
        1 => Just(Op::Purge),
        2 => (t.clone(), 0u8..3, -1i64..4).prop_map(|(t, jti, ttl)| Op::RevokeToken { t, jti, ttl }),
        2 => (t.clone(), 0u8..3).prop_map(|(t, jti)| Op::IsTokenRevoked { t, jti }),
        3 => prop_oneof![4 => prop_oneof![Just(0i64), Just(1), Just(SEC - 1), Just(SEC), Just(-SEC)], 1 => prop_oneof![Just(86_400 * SEC), Just(366 * 86_400 * SEC), Just(-86_400 * SEC), Just(-30 * 366 * 86_400 * SEC)]].prop_map(|micros| Op::Advance { micros }),
    ]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.sessions()?, p.backend.sessions()?);
        let jti = |j: u8| format!("jti-{j}");
        match op.clone() {
            Op::Create {
                id,
                t,
                user,
                ttl,
                pending,
                no_scopes,
            } => {
                let mut s = new_session(&p.backend, id, t, user, ttl, pending);
                if no_scopes {
                    s.scopes.clear();
                }
                same(op, m.create(s.clone()).await, b.create(s).await)
            }
            Op::Get { t, id } => same(
                op,
                m.get(tenant(t), session_id(id)).await,
                b.get(tenant(t), session_id(id)).await,
            ),
            Op::Touch { t, id } => same(
                op,
                m.touch(tenant(t), session_id(id)).await,
                b.touch(tenant(t), session_id(id)).await,
            ),
            Op::Refresh { t, id } => same(
                op,
                m.mark_refreshed(tenant(t), session_id(id)).await,
                b.mark_refreshed(tenant(t), session_id(id)).await,
            ),
            Op::Activate { t, id } => same(
                op,
                m.activate(tenant(t), session_id(id)).await,
                b.activate(tenant(t), session_id(id)).await,
            ),
            Op::Revoke { t, id } => same(
                op,
                m.revoke(tenant(t), session_id(id)).await,
                b.revoke(tenant(t), session_id(id)).await,
            ),
            Op::RevokeAll { t, user } => same(
                op,
                m.revoke_all_for_user(tenant(t), user_id(user)).await,
                b.revoke_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::List { t, user } => same(
                op,
                m.list_for_user(tenant(t), user_id(user)).await,
                b.list_for_user(tenant(t), user_id(user)).await,
            ),
            // Exact: a purge that removes too little is as wrong as one that removes too much
            // (harnesses keep server-side expiry out of the way while a case runs).
            Op::Purge => same(op, m.purge_expired().await, b.purge_expired().await),
            Op::RevokeToken { t, jti: j, ttl } => {
                let exp = Timestamp::from_micros(p.backend.now().as_micros() + ttl * SEC);
                same(
                    op,
                    m.revoke_token(tenant(t), &jti(j), exp).await,
                    b.revoke_token(tenant(t), &jti(j), exp).await,
                )
            }
            Op::IsTokenRevoked { t, jti: j } => same(
                op,
                m.is_token_revoked(tenant(t), &jti(j)).await,
                b.is_token_revoked(tenant(t), &jti(j)).await,
            ),
            Op::Advance { micros } => {
                let now = p.backend.now().as_micros();
                p.backend.clock.set(Timestamp::from_micros(now + micros));
                Ok(())
            }
        }
    }
    .boxed()
}

async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "sessions", || property::sequence(op), apply).await
}

async fn sessions(ctx: &Ctx) -> Result<(Stores, Arc<dyn SessionStore>), String> {
    let s = ctx.fresh().await?;
    let st = s.sessions()?;
    Ok((s, st))
}

async fn expiry_is_exact_at_now(ctx: &Ctx) -> Result<(), String> {
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

async fn second_revoke_is_invalid_state(ctx: &Ctx) -> Result<(), String> {
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

async fn concurrent_revokes_have_one_winner(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 20;
    for round in 0..5u8 {
        let (s, st) = sessions(ctx).await?;
        let sess = ok(
            "create",
            st.create(new_session(&s, round, 0, 0, 60, false)).await,
        )?;
        let results = race(N, |_| {
            let st = st.clone();
            async move { st.revoke(tenant(0), sess.id).await }
        })
        .await?;
        let mut wins = 0;
        for r in results {
            match r {
                Ok(_) => wins += 1,
                Err(StoreError::InvalidState(_)) => {}
                Err(e) => return Err(format!("unexpected {e:?}")),
            }
        }
        eq("winners among concurrent revokes", wins, 1)?;
        eq(
            "version",
            ok("get", st.get(tenant(0), sess.id).await)?.map(|s| s.version),
            Some(2),
        )?;
    }
    Ok(())
}

async fn revoked_session_is_returned_until_expiry(ctx: &Ctx) -> Result<(), String> {
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

async fn touch_only_moves_forward(ctx: &Ctx) -> Result<(), String> {
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

async fn lifecycle_transitions_are_enforced(ctx: &Ctx) -> Result<(), String> {
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

async fn list_for_user_has_no_cap_and_is_newest_first(ctx: &Ctx) -> Result<(), String> {
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

async fn revoke_all_for_user_counts_live_sessions(ctx: &Ctx) -> Result<(), String> {
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

async fn purge_removes_only_expired(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    ok("short", st.create(new_session(&s, 1, 0, 0, 5, false)).await)?;
    ok("long", st.create(new_session(&s, 2, 1, 0, 50, false)).await)?;
    let exp = Timestamp::from_micros(s.now().as_micros() + 5 * SEC);
    ok("token", st.revoke_token(tenant(0), "t1", exp).await)?;
    s.clock.advance(Duration::from_secs(5));
    eq(
        "purged (one session, one revocation)",
        ok("purge", st.purge_expired().await)?,
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
    eq("second purge", ok("purge", st.purge_expired().await)?, 0)
}

async fn token_revocation_expires_and_extends(ctx: &Ctx) -> Result<(), String> {
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

async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let sess = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 60, true)).await,
    )?;
    eq(
        "get from tenant 1",
        ok("get", st.get(tenant(1), sess.id).await)?,
        None,
    )?;
    err_kind("touch", st.touch(tenant(1), sess.id).await, "NotFound")?;
    err_kind(
        "activate",
        st.activate(tenant(1), sess.id).await,
        "NotFound",
    )?;
    err_kind("revoke", st.revoke(tenant(1), sess.id).await, "NotFound")?;
    eq(
        "revoke all",
        ok(
            "revoke all",
            st.revoke_all_for_user(tenant(1), user_id(0)).await,
        )?,
        0,
    )?;
    eq(
        "list",
        ok("list", st.list_for_user(tenant(1), user_id(0)).await)?.len(),
        0,
    )?;
    eq(
        "untouched",
        ok("get", st.get(tenant(0), sess.id).await)?,
        Some(sess),
    )
}

async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let base = new_session(&s, 1, 0, 0, 60, false);
    let bad: Vec<(&str, NewSession)> = vec![
        (
            "no scopes",
            NewSession {
                scopes: vec![],
                ..base.clone()
            },
        ),
        (
            "65 scopes",
            NewSession {
                scopes: (0..65).map(|i| format!("s{i}")).collect(),
                ..base.clone()
            },
        ),
        (
            "blank scope",
            NewSession {
                scopes: vec![" ".into()],
                ..base.clone()
            },
        ),
        (
            "duplicate scope",
            NewSession {
                scopes: vec!["a".into(), "a".into()],
                ..base.clone()
            },
        ),
        (
            "expires now",
            NewSession {
                expires_at: s.now(),
                ..base.clone()
            },
        ),
        (
            "expired",
            NewSession {
                expires_at: Timestamp::from_micros(s.now().as_micros() - 1),
                ..base.clone()
            },
        ),
        (
            "empty client",
            NewSession {
                client_id: String::new(),
                ..base.clone()
            },
        ),
        (
            "nul client",
            NewSession {
                client_id: "web\0".into(),
                ..base.clone()
            },
        ),
        (
            "1 MB client",
            NewSession {
                client_id: "c".repeat(1 << 20),
                ..base.clone()
            },
        ),
        (
            "created revoked",
            NewSession {
                status: SessionStatus::Revoked,
                ..base.clone()
            },
        ),
        (
            "blank device field",
            NewSession {
                device: Device {
                    device_name: Some("".into()),
                    ..Default::default()
                },
                ..base.clone()
            },
        ),
    ];
    for (what, sess) in bad {
        err_kind(what, st.create(sess).await, "InvalidInput")?;
    }
    eq(
        "nothing written",
        ok("get", st.get(tenant(0), base.id).await)?,
        None,
    )?;
    // The most scopes a session may have, kept in order.
    let most: Vec<String> = (0..64).rev().map(|i| format!("s{i}")).collect();
    let created = ok(
        "64 scopes",
        st.create(NewSession {
            scopes: most.clone(),
            ..base
        })
        .await,
    )?;
    eq("created scopes", &created.scopes, &most)?;
    let read = ok("get", st.get(tenant(0), created.id).await)?;
    eq("read scopes", read.map(|r| r.scopes), Some(most))
}

async fn ids_are_global_while_live_and_free_once_expired(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let first = ok(
        "create",
        st.create(new_session(&s, 1, 0, 0, 10, false)).await,
    )?;
    ok("revoke", st.revoke(tenant(0), first.id).await)?;
    err_kind(
        "same id, other tenant, while live",
        st.create(new_session(&s, 1, 1, 5, 10, false)).await,
        "Conflict",
    )?;
    s.clock.advance(Duration::from_secs(10));
    let again = ok(
        "same id once expired",
        st.create(new_session(&s, 1, 1, 5, 10, true)).await,
    )?;
    eq(
        "a new session",
        (again.tenant_id, again.user_id, again.status, again.version),
        (tenant(1), user_id(5), SessionStatus::PendingConsent, 1),
    )?;
    eq(
        "nothing of the old one",
        (again.revoked_at, again.created_at),
        (None, s.now()),
    )?;
    eq(
        "old tenant sees nothing",
        ok("get", st.get(tenant(0), first.id).await)?,
        None,
    )?;
    eq(
        "old user lists nothing",
        ok("list", st.list_for_user(tenant(0), user_id(0)).await)?.len(),
        0,
    )?;
    eq(
        "new user lists it",
        ok("list", st.list_for_user(tenant(1), user_id(5)).await)?,
        vec![again],
    )
}

/// An instance whose clock runs far ahead (or this one, before its clock steps back) must not
/// drop anyone's sessions from what `list_for_user` and `revoke_all_for_user` see: afterwards,
/// by the right clock, every live session is listed and revoked ("log out everywhere" must
/// not miss one because one host's clock was wrong).
async fn a_clock_far_ahead_hides_no_live_session(ctx: &Ctx) -> Result<(), String> {
    let (s, st) = sessions(ctx).await?;
    let start = s.now();
    ok(
        "create",
        st.create(new_session(&s, 1, 0, 1, 60, false)).await,
    )?;
    ok(
        "create",
        st.create(new_session(&s, 3, 0, 2, 60, false)).await,
    )?;
    s.clock.set(Timestamp::from_micros(
        start.as_micros() + 366 * 86_400 * SEC,
    ));
    // A write (user 1) and a read (user 2) a year ahead, when both sessions look long gone.
    ok(
        "create a year ahead",
        st.create(new_session(&s, 2, 0, 1, 60, false)).await,
    )?;
    eq(
        "listed a year ahead",
        ok("list", st.list_for_user(tenant(0), user_id(2)).await)?.len(),
        0,
    )?;
    s.clock.set(start);
    // By the right clock: user 1 has both sessions, user 2 the one it had.
    for (user, live) in [(1, 2), (2, 1)] {
        let listed = ok("list", st.list_for_user(tenant(0), user_id(user)).await)?;
        eq(&format!("listed (user {user})"), listed.len(), live)?;
        let revoked = st.revoke_all_for_user(tenant(0), user_id(user)).await;
        eq(
            &format!("revoked (user {user})"),
            ok("revoke all", revoked)?,
            live as u64,
        )?;
    }
    Ok(())
}
