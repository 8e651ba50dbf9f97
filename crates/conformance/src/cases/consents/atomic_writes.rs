//! Atomic writes of the consent store: every change records one audit event with it, bad
//! input writes nothing, and a failed event write leaves no change behind.

use super::{consents, grant};
use crate::cases::{drain, ensure, eq, err_kind, ok, tenant, user_id};
use crate::support::Ctx;
use credo_ports::{Consent, ConsentFilter};
use std::time::Duration;

pub(super) async fn every_change_records_one_audit_event(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    ok(
        "grant",
        cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await,
    )?;
    ok(
        "revoke",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
    )?;
    err_kind(
        "revoke again",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
        "InvalidState",
    )?;
    err_kind(
        "bad grant",
        cs.grant(grant(&s, 2, 0, 0, "marketing", Some(0))).await,
        "InvalidInput",
    )?;
    ok(
        "re-grant",
        cs.grant(grant(&s, 2, 0, 0, "marketing", None)).await,
    )?;
    ok(
        "revoke all",
        cs.revoke_all_for_user(tenant(0), user_id(0)).await,
    )?;
    ok(
        "delete all",
        cs.delete_all_for_user(tenant(0), user_id(0)).await,
    )?;
    let events = drain(&s).await?;
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.purpose.as_deref(), e.subject_user_id))
        .collect();
    let u = Some(user_id(0));
    eq(
        "events",
        got,
        vec![
            ("consent.granted", Some("marketing"), u),
            ("consent.revoked", Some("marketing"), u),
            ("consent.granted", Some("marketing"), u),
            ("consent.revoked", Some("marketing"), u),
            ("consent.deleted", Some("marketing"), u),
        ],
    )?;
    ensure(
        events
            .iter()
            .all(|e| e.occurred_at == s.now() && e.tenant_id == tenant(0)),
        || "event time and tenant".into(),
    )
}

pub(super) async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    let long = "a".repeat(65);
    for p in [
        "",
        "Marketing",
        "has space",
        "nul\0",
        "1st",
        long.as_str(),
        "'; DROP TABLE consents;--",
    ] {
        err_kind(
            p,
            cs.grant(grant(&s, 1, 0, 0, p, None)).await,
            "InvalidInput",
        )?;
        err_kind(p, cs.revoke(tenant(0), user_id(0), p).await, "InvalidInput")?;
        err_kind(p, cs.get(tenant(0), user_id(0), p).await, "InvalidInput")?;
    }
    err_kind(
        "expires now",
        cs.grant(grant(&s, 1, 0, 0, "marketing", Some(0))).await,
        "InvalidInput",
    )?;
    err_kind(
        "expired",
        cs.grant(grant(&s, 1, 0, 0, "marketing", Some(-1))).await,
        "InvalidInput",
    )?;
    eq(
        "nothing written",
        ok(
            "list",
            cs.list_for_user(tenant(0), user_id(0), ConsentFilter::default())
                .await,
        )?
        .len(),
        0,
    )?;
    eq("no events", ok("depth", s.outbox()?.depth().await)?, 0)
}

/// A consent change and its audit event(s) are written together or not at all: with every
/// outbox write failing (an injected fault), each change fails `Unavailable` and leaves the
/// consents, their ids and the outbox as they were.
pub(super) async fn a_failed_event_write_writes_nothing(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    let outbox = s.outbox()?;
    let faults = s.outbox_faults()?;
    ok(
        "grant",
        cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await,
    )?;
    ok(
        "grant",
        cs.grant(grant(&s, 2, 0, 0, "analytics:v2", Some(3600)))
            .await,
    )?;
    let all = ConsentFilter::default();
    let before = ok(
        "list",
        cs.list_for_user(tenant(0), user_id(0), all.clone()).await,
    )?;
    let depth = ok("depth", outbox.depth().await)?;
    s.clock.advance(Duration::from_secs(1));
    ok("fault on", faults(true).await)?;
    let results = [
        (
            "grant of a new purpose",
            cs.grant(grant(&s, 3, 0, 0, "registry.check", None))
                .await
                .map(|_| ()),
        ),
        (
            "renewal",
            cs.grant(grant(&s, 4, 0, 0, "marketing", Some(60)))
                .await
                .map(|_| ()),
        ),
        (
            "revoke",
            cs.revoke(tenant(0), user_id(0), "marketing")
                .await
                .map(|_| ()),
        ),
        (
            "revoke all",
            cs.revoke_all_for_user(tenant(0), user_id(0))
                .await
                .map(|_| ()),
        ),
        (
            "delete all",
            cs.delete_all_for_user(tenant(0), user_id(0))
                .await
                .map(|_| ()),
        ),
    ];
    ok("fault off", faults(false).await)?;
    for (what, r) in results {
        err_kind(what, r, "Unavailable")?;
    }
    let after = ok("list", cs.list_for_user(tenant(0), user_id(0), all).await)?;
    eq("consents as they were", sorted(after), sorted(before))?;
    eq("outbox depth", ok("depth", outbox.depth().await)?, depth)?;
    // The ids the failed grants tried are still free.
    ok(
        "grant with the id a failed grant tried",
        cs.grant(grant(&s, 3, 0, 1, "registry.check", None)).await,
    )?;
    ok(
        "grant with the id a failed renewal tried",
        cs.grant(grant(&s, 4, 0, 1, "marketing", None)).await,
    )?;
    eq(
        "outbox depth",
        ok("depth", outbox.depth().await)?,
        depth + 2,
    )
}

fn sorted(mut v: Vec<Consent>) -> Vec<Consent> {
    v.sort_by(|a, b| a.purpose.cmp(&b.purpose));
    v
}
