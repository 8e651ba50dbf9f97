//! Targeted examples of the consent store: re-grant after revoke, expiry at exactly now,
//! revoke and revoke-all, erasure, filtered listings and tenant isolation.

use super::{SEC, consents, grant};
use crate::cases::{consent_id, ensure, eq, err_kind, ok, tenant, user_id};
use crate::model::consent_status;
use crate::support::Ctx;
use credo_ports::{ConsentFilter, ConsentStatus, Timestamp};
use std::time::Duration;

pub(super) async fn regrant_after_revoke_keeps_the_record(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    let first = ok(
        "grant",
        cs.grant(grant(&s, 1, 0, 0, "marketing", Some(60))).await,
    )?;
    eq("version", first.version, 1)?;
    s.clock.advance(Duration::from_secs(1));
    let revoked = ok(
        "revoke",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
    )?;
    eq("revoked_at", revoked.revoked_at, Some(s.now()))?;
    s.clock.advance(Duration::from_secs(1));
    let again = ok(
        "re-grant",
        cs.grant(grant(&s, 2, 0, 0, "marketing", None)).await,
    )?;
    eq("same id", again.id, first.id)?;
    eq("revocation cleared", again.revoked_at, None)?;
    eq("new granted_at", again.granted_at, s.now())?;
    eq("new expiry", again.expires_at, None)?;
    eq("version", again.version, 3)?;
    eq(
        "status",
        consent_status(&again, s.now()),
        ConsentStatus::Active,
    )?;
    let renewed = ok(
        "renew active",
        cs.grant(grant(&s, 3, 0, 0, "marketing", Some(5))).await,
    )?;
    eq(
        "renew keeps id",
        (renewed.id, renewed.version),
        (first.id, 4),
    )
}

pub(super) async fn expiry_is_exact_at_now(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    let c = ok(
        "grant",
        cs.grant(grant(&s, 1, 0, 0, "marketing", Some(10))).await,
    )?;
    s.clock
        .set(Timestamp::from_micros(s.now().as_micros() + 10 * SEC - 1));
    eq(
        "active 1 µs before",
        consent_status(&c, s.now()),
        ConsentStatus::Active,
    )?;
    let active = ConsentFilter {
        status: Some(ConsentStatus::Active),
        ..Default::default()
    };
    eq(
        "listed active",
        ok(
            "list",
            cs.list_for_user(tenant(0), user_id(0), active.clone())
                .await,
        )?
        .len(),
        1,
    )?;
    s.clock.advance(Duration::from_micros(1));
    eq(
        "not active at expires_at",
        ok(
            "list",
            cs.list_for_user(tenant(0), user_id(0), active).await,
        )?
        .len(),
        0,
    )?;
    let expired = ConsentFilter {
        status: Some(ConsentStatus::Expired),
        ..Default::default()
    };
    eq(
        "expired at expires_at",
        ok(
            "list",
            cs.list_for_user(tenant(0), user_id(0), expired).await,
        )?
        .len(),
        1,
    )?;
    err_kind(
        "revoke expired",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
        "InvalidState",
    )
}

pub(super) async fn revoke_needs_an_active_consent(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    err_kind(
        "revoke none",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
        "NotFound",
    )?;
    ok(
        "grant",
        cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await,
    )?;
    ok(
        "revoke",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
    )?;
    err_kind(
        "revoke twice",
        cs.revoke(tenant(0), user_id(0), "marketing").await,
        "InvalidState",
    )
}

pub(super) async fn revoke_all_counts_active_only(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    ok("a", cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await)?;
    ok(
        "b",
        cs.grant(grant(&s, 2, 0, 0, "analytics", Some(5))).await,
    )?;
    ok(
        "c",
        cs.grant(grant(&s, 3, 0, 0, "registry.check", None)).await,
    )?;
    ok("d", cs.grant(grant(&s, 4, 0, 0, "newsletter", None)).await)?;
    ok(
        "other user",
        cs.grant(grant(&s, 5, 0, 1, "marketing", None)).await,
    )?;
    ok(
        "revoke c",
        cs.revoke(tenant(0), user_id(0), "registry.check").await,
    )?;
    s.clock.advance(Duration::from_secs(5)); // b expires exactly now
    eq(
        "active ones revoked",
        ok(
            "revoke all",
            cs.revoke_all_for_user(tenant(0), user_id(0)).await,
        )?,
        2,
    )?;
    eq(
        "again",
        ok(
            "revoke all",
            cs.revoke_all_for_user(tenant(0), user_id(0)).await,
        )?,
        0,
    )?;
    let other = ok("get", cs.get(tenant(0), user_id(1), "marketing").await)?;
    eq(
        "other user untouched",
        other.map(|c| consent_status(&c, s.now())),
        Some(ConsentStatus::Active),
    )
}

pub(super) async fn delete_all_erases_every_record(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    ok("a", cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await)?;
    ok("b", cs.grant(grant(&s, 2, 0, 0, "analytics", None)).await)?;
    ok(
        "revoke b",
        cs.revoke(tenant(0), user_id(0), "analytics").await,
    )?;
    eq(
        "erased",
        ok(
            "delete",
            cs.delete_all_for_user(tenant(0), user_id(0)).await,
        )?,
        2,
    )?;
    eq(
        "nothing left",
        ok(
            "list",
            cs.list_for_user(tenant(0), user_id(0), ConsentFilter::default())
                .await,
        )?
        .len(),
        0,
    )?;
    eq(
        "again",
        ok(
            "delete",
            cs.delete_all_for_user(tenant(0), user_id(0)).await,
        )?,
        0,
    )?;
    let fresh = ok(
        "grant after erasure",
        cs.grant(grant(&s, 3, 0, 0, "marketing", None)).await,
    )?;
    eq(
        "a new record",
        (fresh.id, fresh.version),
        (consent_id(3), 1),
    )
}

pub(super) async fn list_filters_by_purpose_and_status(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    for (i, p) in ["zeta", "alpha", "mid"].iter().enumerate() {
        ok("grant", cs.grant(grant(&s, i as u8, 0, 0, p, None)).await)?;
    }
    ok("revoke mid", cs.revoke(tenant(0), user_id(0), "mid").await)?;
    let all = ok(
        "list",
        cs.list_for_user(tenant(0), user_id(0), ConsentFilter::default())
            .await,
    )?;
    eq(
        "ordered by purpose",
        all.iter().map(|c| c.purpose.as_str()).collect::<Vec<_>>(),
        vec!["alpha", "mid", "zeta"],
    )?;
    let revoked = ConsentFilter {
        status: Some(ConsentStatus::Revoked),
        ..Default::default()
    };
    let r = ok(
        "list revoked",
        cs.list_for_user(tenant(0), user_id(0), revoked).await,
    )?;
    eq(
        "revoked",
        r.iter().map(|c| c.purpose.as_str()).collect::<Vec<_>>(),
        vec!["mid"],
    )?;
    let zeta = ConsentFilter {
        purpose: Some("zeta".into()),
        status: Some(ConsentStatus::Active),
    };
    eq(
        "purpose+status",
        ok("list", cs.list_for_user(tenant(0), user_id(0), zeta).await)?.len(),
        1,
    )
}

pub(super) async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (s, cs) = consents(ctx).await?;
    let c0 = ok(
        "grant t0",
        cs.grant(grant(&s, 1, 0, 0, "marketing", None)).await,
    )?;
    eq(
        "get t1",
        ok("get", cs.get(tenant(1), user_id(0), "marketing").await)?,
        None,
    )?;
    err_kind(
        "revoke t1",
        cs.revoke(tenant(1), user_id(0), "marketing").await,
        "NotFound",
    )?;
    eq(
        "revoke all t1",
        ok("ra", cs.revoke_all_for_user(tenant(1), user_id(0)).await)?,
        0,
    )?;
    eq(
        "delete all t1",
        ok("da", cs.delete_all_for_user(tenant(1), user_id(0)).await)?,
        0,
    )?;
    let c1 = ok(
        "grant t1",
        cs.grant(grant(&s, 2, 1, 0, "marketing", None)).await,
    )?;
    ensure(c1.id != c0.id, || "separate records per tenant".into())?;
    eq(
        "t0 untouched",
        ok("get", cs.get(tenant(0), user_id(0), "marketing").await)?,
        Some(c0),
    )
}
