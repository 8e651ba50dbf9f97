//! Atomic writes of the user store: bad input writes nothing, every mutation records its
//! audit event with it, and a failed event write leaves no change behind.

use super::{person, users};
use crate::cases::{drain, ensure, eq, err_kind, ok, tenant};
use crate::support::Ctx;
use credo_ports::{NewUser, UserStatus, UserUpdate};

pub(super) async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let long = "x".repeat(300);
    let mega = "y".repeat(1 << 20);
    // At the limits: 254 bytes in all, 64 before the `@`.
    let local = "a".repeat(64);
    let longest = format!("{local}@{}.com", "b".repeat(185));
    let bad: Vec<(&str, NewUser)> = vec![
        (
            "255-byte email",
            person(0, &format!("{local}@{}.com", "b".repeat(186))),
        ),
        (
            "65-byte local part",
            person(0, &format!("a{local}@example.com")),
        ),
        ("empty email", person(0, "")),
        ("no at", person(0, "nobody")),
        ("no domain dot", person(0, "a@b")),
        ("nul in email", person(0, "a\0b@example.com")),
        ("1 MB email", person(0, &format!("{mega}@example.com"))),
        (
            "empty first name",
            NewUser {
                first_name: " ".into(),
                ..person(0, "ok@example.com")
            },
        ),
        (
            "long last name",
            NewUser {
                last_name: long.clone(),
                ..person(0, "ok@example.com")
            },
        ),
        (
            "nul in name",
            NewUser {
                first_name: "a\0".into(),
                ..person(0, "ok@example.com")
            },
        ),
    ];
    for (what, u) in bad {
        err_kind(what, users.create(u.clone()).await, "InvalidInput")?;
        err_kind(what, users.find_or_create(u).await, "InvalidInput")?;
    }
    err_kind(
        "find by bad email",
        users.find_by_email(tenant(0), "nope").await,
        "InvalidInput",
    )?;
    let real = ok("create", users.create(person(0, "real@example.com")).await)?;
    let bad_upd = UserUpdate {
        email: Some("bad".into()),
        first_name: Some("Fine".into()),
        ..Default::default()
    };
    err_kind(
        "bad update",
        users.update(tenant(0), real.id, bad_upd, None).await,
        "InvalidInput",
    )?;
    eq(
        "nothing half-written",
        ok("get", users.get(tenant(0), real.id).await)?,
        Some(real),
    )?;
    eq("count", ok("count", users.count(tenant(0)).await)?, 1)?;
    eq(
        "only the one creation was recorded",
        ok("depth", s.outbox()?.depth().await)?,
        1,
    )?;
    let created = ok("254-byte email", users.create(person(0, &longest)).await)?;
    eq(
        "found by its longest email",
        ok(
            "find",
            users
                .find_by_email(tenant(0), &longest.to_uppercase())
                .await,
        )?,
        Some(created),
    )
}

pub(super) async fn mutations_record_audit_events_atomically(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let outbox = s.outbox()?;
    let u = ok("create", users.create(person(0, "audit@example.com")).await)?;
    eq(
        "event with the create",
        ok("depth", outbox.depth().await)?,
        1,
    )?;
    err_kind(
        "duplicate",
        users.create(person(0, "AUDIT@example.com")).await,
        "Conflict",
    )?;
    eq(
        "no event for a failed create",
        ok("depth", outbox.depth().await)?,
        1,
    )?;
    let upd = UserUpdate {
        email_verified: Some(true),
        status: Some(UserStatus::Inactive),
        ..Default::default()
    };
    ok("update", users.update(tenant(0), u.id, upd, None).await)?;
    err_kind(
        "stale",
        users
            .update(
                tenant(0),
                u.id,
                UserUpdate {
                    email_verified: Some(false),
                    ..Default::default()
                },
                Some(1),
            )
            .await,
        "Conflict",
    )?;
    ok("delete", users.delete(tenant(0), u.id).await)?;
    err_kind(
        "delete again",
        users.delete(tenant(0), u.id).await,
        "NotFound",
    )?;
    let events = drain(&s).await?;
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.subject_user_id, e.tenant_id))
        .collect();
    eq(
        "events",
        summary,
        vec![
            ("user.created", Some(u.id), tenant(0)),
            ("user.updated", Some(u.id), tenant(0)),
            ("user.deleted", Some(u.id), tenant(0)),
        ],
    )?;
    eq(
        "changed fields listed",
        events[1].metadata.get("fields").cloned(),
        Some(serde_json::json!(["email_verified", "status"])),
    )?;
    let pii = serde_json::to_string(&events).map_err(|e| e.to_string())?;
    ensure(!pii.contains("audit@example.com"), || {
        "events must not carry the email".into()
    })
}
/// A change and its audit event are written together or not at all: with every outbox write
/// failing (an injected fault), each mutation fails `Unavailable` and leaves the users and
/// the outbox as they were. An adapter that wrote the event after committing the change (or
/// ignored the event's failure) leaves a change behind here.
pub(super) async fn a_failed_event_write_writes_nothing(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let outbox = s.outbox()?;
    let faults = s.outbox_faults()?;
    let alice = ok("create", users.create(person(0, "alice@example.com")).await)?;
    let depth = ok("depth", outbox.depth().await)?;
    let bob = person(0, "bob@example.com");
    let update = UserUpdate {
        email: Some("alicia@example.com".into()),
        first_name: Some("Alicia".into()),
        ..Default::default()
    };
    ok("fault on", faults(true).await)?;
    let results = [
        ("create", users.create(bob.clone()).await.map(|_| ())),
        (
            "find_or_create of a new email",
            users.find_or_create(bob.clone()).await.map(|_| ()),
        ),
        (
            "update",
            users
                .update(tenant(0), alice.id, update, None)
                .await
                .map(|_| ()),
        ),
        ("delete", users.delete(tenant(0), alice.id).await),
    ];
    // Off before any verdict, so that a failing case leaves the stores usable.
    ok("fault off", faults(false).await)?;
    for (what, r) in results {
        err_kind(what, r, "Unavailable")?;
    }
    eq(
        "alice as she was",
        ok("get", users.get(tenant(0), alice.id).await)?,
        Some(alice.clone()),
    )?;
    eq(
        "no bob",
        ok(
            "find",
            users.find_by_email(tenant(0), "bob@example.com").await,
        )?,
        None,
    )?;
    eq(
        "no bob by id",
        ok("get", users.get(tenant(0), bob.id).await)?,
        None,
    )?;
    eq(
        "the new email still free",
        ok(
            "find",
            users.find_by_email(tenant(0), "alicia@example.com").await,
        )?,
        None,
    )?;
    eq("outbox depth", ok("depth", outbox.depth().await)?, depth)?;
    // And everything works again once the outbox does.
    ok("create after the fault", users.create(bob).await)?;
    eq(
        "outbox depth",
        ok("depth", outbox.depth().await)?,
        depth + 1,
    )
}
