//! Targeted examples of the user store: case-folded and look-alike emails, optimistic
//! versions, tenant isolation, stable pagination, timestamps and deleting an absent user.

use super::{person, users};
use crate::cases::{ensure, eq, err_kind, ok, tenant, user_id};
use crate::support::Ctx;
use credo_ports::{PageRequest, User, UserUpdate};
use std::collections::HashSet;
use std::time::Duration;

pub(super) async fn email_collision_is_case_folded_and_trimmed(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let bob = ok(
        "create",
        users.create(person(0, "Bob.Smith@Example.COM")).await,
    )?;
    eq(
        "stored email keeps case, trimmed",
        bob.email.as_str(),
        "Bob.Smith@Example.COM",
    )?;
    for spelling in [
        "bob.smith@example.com",
        "  BOB.SMITH@EXAMPLE.COM ",
        "bob.smith@Example.com\t",
    ] {
        err_kind(
            spelling,
            users.create(person(0, spelling)).await,
            "Conflict",
        )?;
        let found = ok("find", users.find_by_email(tenant(0), spelling).await)?;
        eq(
            "find_by_email any spelling",
            found.map(|u| u.id),
            Some(bob.id),
        )?;
    }
    eq("count", ok("count", users.count(tenant(0)).await)?, 1)
}

/// The email policy (DESIGN §4): stored NFC, compared NFKC and case-folded, invisible
/// characters refused; the same on every backend.
pub(super) async fn look_alike_emails_are_one_user_and_invisible_characters_are_refused(
    ctx: &Ctx,
) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    // "José" with a combining accent is stored composed.
    let jose = ok(
        "create",
        users.create(person(0, "Jose\u{301}@Example.com")).await,
    )?;
    eq("stored NFC", jose.email.as_str(), "Jos\u{e9}@Example.com")?;
    for spelling in [
        "jos\u{e9}@example.com",
        "JOSE\u{301}@EXAMPLE.COM",
        "ｊｏｓ\u{e9}@ｅｘａｍｐｌｅ.ｃｏｍ",
    ] {
        err_kind(
            spelling,
            users.create(person(0, spelling)).await,
            "Conflict",
        )?;
        let found = ok("find", users.find_by_email(tenant(0), spelling).await)?;
        eq(
            "find_by_email any spelling",
            found.map(|u| u.id),
            Some(jose.id),
        )?;
    }
    for invisible in [
        "jo\u{200B}se@example.com",
        "jose\u{200D}@example.com",
        "\u{FEFF}jose@example.com",
        "jose@exam\u{00AD}ple.com",
        "jose@example.com\u{202E}",
    ] {
        err_kind(
            invisible,
            users.create(person(0, invisible)).await,
            "InvalidInput",
        )?;
        err_kind(
            invisible,
            users.find_by_email(tenant(0), invisible).await,
            "InvalidInput",
        )?;
    }
    // Another script is another mailbox.
    ok(
        "create",
        users.create(person(0, "jos\u{435}@example.com")).await,
    )?;
    eq("count", ok("count", users.count(tenant(0)).await)?, 2)
}

pub(super) async fn update_checks_expected_version(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let u = ok("create", users.create(person(0, "v@example.com")).await)?;
    eq("initial version", u.version, 1)?;
    s.clock.advance(Duration::from_millis(5));
    let upd = UserUpdate {
        first_name: Some("New".into()),
        ..Default::default()
    };
    let u2 = ok(
        "update v1",
        users.update(tenant(0), u.id, upd.clone(), Some(1)).await,
    )?;
    eq("version after update", u2.version, 2)?;
    eq("updated_at moves", u2.updated_at, s.now())?;
    eq("created_at kept", u2.created_at, u.created_at)?;
    err_kind(
        "stale version",
        users.update(tenant(0), u.id, upd.clone(), Some(1)).await,
        "Conflict",
    )?;
    let u3 = ok(
        "unconditional",
        users.update(tenant(0), u.id, upd.clone(), None).await,
    )?;
    eq("version increments on every change", u3.version, 3)?;
    err_kind(
        "empty update",
        users
            .update(tenant(0), u.id, UserUpdate::default(), None)
            .await,
        "InvalidInput",
    )?;
    err_kind(
        "absent user",
        users.update(tenant(0), user_id(99), upd, None).await,
        "NotFound",
    )
}

pub(super) async fn update_to_a_taken_email_conflicts(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let a = ok("create a", users.create(person(0, "a@example.com")).await)?;
    ok("create b", users.create(person(0, "b@example.com")).await)?;
    let to_b = UserUpdate {
        email: Some("B@EXAMPLE.com".into()),
        ..Default::default()
    };
    err_kind(
        "a takes b's email",
        users.update(tenant(0), a.id, to_b, None).await,
        "Conflict",
    )?;
    let recase = UserUpdate {
        email: Some("A@Example.com".into()),
        ..Default::default()
    };
    let a2 = ok(
        "a changes its own case",
        users.update(tenant(0), a.id, recase, None).await,
    )?;
    eq("new spelling stored", a2.email.as_str(), "A@Example.com")?;
    let free = UserUpdate {
        email: Some("c@example.com".into()),
        ..Default::default()
    };
    ok(
        "a moves to c",
        users.update(tenant(0), a.id, free, None).await,
    )?;
    ok(
        "old email is free again",
        users.create(person(0, "a@example.com")).await,
    )?;
    Ok(())
}

pub(super) async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let a = ok(
        "tenant 0",
        users.create(person(0, "same@example.com")).await,
    )?;
    let b = ok(
        "same email, tenant 1",
        users.create(person(1, "same@example.com")).await,
    )?;
    ensure(a.id != b.id, || "distinct users".into())?;
    eq(
        "get across tenants",
        ok("get", users.get(tenant(1), a.id).await)?,
        None,
    )?;
    eq(
        "find in tenant 1",
        ok(
            "find",
            users.find_by_email(tenant(1), "same@example.com").await,
        )?
        .map(|u| u.id),
        Some(b.id),
    )?;
    let upd = UserUpdate {
        first_name: Some("X".into()),
        ..Default::default()
    };
    err_kind(
        "update across tenants",
        users.update(tenant(1), a.id, upd, None).await,
        "NotFound",
    )?;
    err_kind(
        "delete across tenants",
        users.delete(tenant(1), a.id).await,
        "NotFound",
    )?;
    let page = ok("list", users.list(tenant(1), PageRequest::first(100)).await)?;
    eq(
        "list tenant 1",
        page.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![b.id],
    )?;
    eq(
        "count tenant 2",
        ok("count", users.count(tenant(2)).await)?,
        0,
    )?;
    eq(
        "a untouched",
        ok("get", users.get(tenant(0), a.id).await)?,
        Some(a),
    )
}

pub(super) async fn pagination_is_stable_under_inserts(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let mut expected = Vec::new();
    for i in 0..23u32 {
        // Several users share one created_at: the id breaks the tie.
        if i % 3 == 0 {
            s.clock.advance(Duration::from_micros(1));
        }
        let u = ok(
            "create",
            users.create(person(0, &format!("p{i}@example.com"))).await,
        )?;
        expected.push(u);
    }
    expected.sort_by_key(User::cursor);
    let mut seen = Vec::new();
    let mut after = None;
    let mut i = 0;
    loop {
        let page = ok(
            "list",
            users.list(tenant(0), PageRequest { after, limit: 4 }).await,
        )?;
        seen.extend(page.items.iter().cloned());
        // Inserts between pages land after every existing user (later created_at).
        s.clock.advance(Duration::from_secs(1));
        ok(
            "insert mid-walk",
            users
                .create(person(0, &format!("late{i}@example.com")))
                .await,
        )?;
        i += 1;
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        if i > 100 {
            return Err("pagination never ended".into());
        }
    }
    let pre: Vec<_> = seen
        .iter()
        .filter(|u| !u.email.starts_with("late"))
        .cloned()
        .collect();
    eq("pre-existing users, each once, in order", pre, expected)?;
    let ids: HashSet<_> = seen.iter().map(|u| u.id).collect();
    eq("no duplicates", ids.len(), seen.len())?;
    err_kind(
        "limit 0",
        users.list(tenant(0), PageRequest::first(0)).await,
        "InvalidInput",
    )?;
    err_kind(
        "limit over max",
        users.list(tenant(0), PageRequest::first(1001)).await,
        "InvalidInput",
    )
}

pub(super) async fn timestamps_round_trip_in_microseconds(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    s.clock.advance(Duration::from_nanos(1_999)); // clock keeps microseconds only
    let now = s.now();
    let u = ok("create", users.create(person(0, "t@example.com")).await)?;
    eq("created_at", u.created_at, now)?;
    let back = ok("get", users.get(tenant(0), u.id).await)?.ok_or("created user missing")?;
    eq("read back equals written", back, u)
}

pub(super) async fn delete_of_absent_user_is_not_found(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    err_kind(
        "delete absent",
        users.delete(tenant(0), user_id(42)).await,
        "NotFound",
    )?;
    let u = ok("create", users.create(person(0, "d@example.com")).await)?;
    ok("delete", users.delete(tenant(0), u.id).await)?;
    eq("gone", ok("get", users.get(tenant(0), u.id).await)?, None)?;
    eq(
        "email free",
        ok(
            "find",
            users.find_by_email(tenant(0), "d@example.com").await,
        )?,
        None,
    )
}
