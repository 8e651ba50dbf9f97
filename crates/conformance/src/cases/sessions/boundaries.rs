//! Boundary cases of the session store: tenant isolation, bad input writes nothing, session
//! ids are global while live, and a clock far ahead hides no live session.

use super::{SEC, new_session, sessions};
use crate::cases::{eq, err_kind, ok, tenant, user_id};
use crate::support::Ctx;
use credo_ports::{Device, NewSession, SessionStatus, Timestamp};
use std::time::Duration;

pub(super) async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
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

pub(super) async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
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

pub(super) async fn ids_are_global_while_live_and_free_once_expired(
    ctx: &Ctx,
) -> Result<(), String> {
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
pub(super) async fn a_clock_far_ahead_hides_no_live_session(ctx: &Ctx) -> Result<(), String> {
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
