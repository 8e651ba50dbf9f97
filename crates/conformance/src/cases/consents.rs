use super::{cases, consent_id, drain, ensure, eq, err_kind, ok, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::model::consent_status;
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{Consent, ConsentFilter, ConsentStatus, ConsentStore, GrantConsent, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Consents;
        model_based_sequences,
        regrant_after_revoke_keeps_the_record,
        expiry_is_exact_at_now,
        revoke_needs_an_active_consent,
        revoke_all_counts_active_only,
        delete_all_erases_every_record,
        every_change_records_one_audit_event,
        a_failed_event_write_writes_nothing,
        list_filters_by_purpose_and_status,
        cross_tenant_isolation,
        bad_input_is_rejected_before_any_write,
    ]
}

const SEC: i64 = 1_000_000;
/// Purposes the sequences draw from: ordinary ones; ones whose order differs between byte
/// order and a linguistic collation (which skips `-`, `_`, `.` and `:`); and ones the policy
/// refuses (upper case, a combining accent, a space).
const PURPOSES: [&str; 11] = [
    "marketing",
    "registry.check",
    "analytics:v2",
    "a-b",
    "a_b",
    "ab",
    "a.c",
    "a1",
    "Marketing",
    "marketi\u{301}ng",
    "Bad Purpose",
];

fn grant(s: &Stores, id: u8, t: u8, user: u8, purpose: &str, ttl: Option<i64>) -> GrantConsent {
    GrantConsent {
        id: consent_id(id),
        tenant_id: tenant(t),
        user_id: user_id(user),
        purpose: purpose.to_string(),
        expires_at: ttl.map(|secs| Timestamp::from_micros(s.now().as_micros() + secs * SEC)),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Grant {
        id: u8,
        t: u8,
        user: u8,
        purpose: u8,
        ttl: Option<i64>,
    },
    Revoke {
        t: u8,
        user: u8,
        purpose: u8,
    },
    Get {
        t: u8,
        user: u8,
        purpose: u8,
    },
    List {
        t: u8,
        user: u8,
        purpose: Option<u8>,
        status: Option<u8>,
    },
    RevokeAll {
        t: u8,
        user: u8,
    },
    DeleteAll {
        t: u8,
        user: u8,
    },
    Advance {
        micros: i64,
    },
    DrainEvents,
}

fn op() -> impl Strategy<Value = Op> {
    let (t, user, purpose) = (0u8..8, 0u8..2, 0..PURPOSES.len() as u8);
    prop_oneof![
        5 => (0u8..8, t.clone(), user.clone(), purpose.clone(), proptest::option::of(-1i64..4))
            .prop_map(|(id, t, user, purpose, ttl)| Op::Grant { id, t, user, purpose, ttl }),
        3 => (t.clone(), user.clone(), purpose.clone()).prop_map(|(t, user, purpose)| Op::Revoke { t, user, purpose }),
        2 => (t.clone(), user.clone(), purpose.clone()).prop_map(|(t, user, purpose)| Op::Get { t, user, purpose }),
        2 => (t.clone(), user.clone(), proptest::option::of(purpose.clone()), proptest::option::of(0u8..3))
            .prop_map(|(t, user, purpose, status)| Op::List { t, user, purpose, status }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::RevokeAll { t, user }),
        1 => (t.clone(), user.clone()).prop_map(|(t, user)| Op::DeleteAll { t, user }),
        3 => prop_oneof![Just(0i64), Just(1), Just(SEC - 1), Just(SEC)].prop_map(|micros| Op::Advance { micros }),
        1 => Just(Op::DrainEvents),
    ]
}

fn status(i: u8) -> ConsentStatus {
    [
        ConsentStatus::Active,
        ConsentStatus::Expired,
        ConsentStatus::Revoked,
    ][i as usize % 3]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.consents()?, p.backend.consents()?);
        let pur = |i: u8| PURPOSES[i as usize % PURPOSES.len()];
        match op.clone() {
            Op::Grant {
                id,
                t,
                user,
                purpose,
                ttl,
            } => {
                let g = grant(&p.backend, id, t, user, pur(purpose), ttl);
                same(op, m.grant(g.clone()).await, b.grant(g).await)
            }
            Op::Revoke { t, user, purpose } => same(
                op,
                m.revoke(tenant(t), user_id(user), pur(purpose)).await,
                b.revoke(tenant(t), user_id(user), pur(purpose)).await,
            ),
            Op::Get { t, user, purpose } => same(
                op,
                m.get(tenant(t), user_id(user), pur(purpose)).await,
                b.get(tenant(t), user_id(user), pur(purpose)).await,
            ),
            Op::List {
                t,
                user,
                purpose,
                status: st,
            } => {
                let f = ConsentFilter {
                    purpose: purpose.map(|p| pur(p).to_string()),
                    status: st.map(status),
                };
                same(
                    op,
                    m.list_for_user(tenant(t), user_id(user), f.clone()).await,
                    b.list_for_user(tenant(t), user_id(user), f).await,
                )
            }
            Op::RevokeAll { t, user } => same(
                op,
                m.revoke_all_for_user(tenant(t), user_id(user)).await,
                b.revoke_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::DeleteAll { t, user } => same(
                op,
                m.delete_all_for_user(tenant(t), user_id(user)).await,
                b.delete_all_for_user(tenant(t), user_id(user)).await,
            ),
            Op::Advance { micros } => {
                p.backend
                    .clock
                    .advance(Duration::from_micros(micros as u64));
                Ok(())
            }
            Op::DrainEvents => {
                property::same_drained_events(
                    p,
                    "audit events recorded by consent changes",
                    property::Ids::Generated,
                )
                .await
            }
        }
    }
    .boxed()
}

async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "consents", || property::sequence(op), apply).await
}

async fn consents(ctx: &Ctx) -> Result<(Stores, Arc<dyn ConsentStore>), String> {
    let s = ctx.fresh().await?;
    let c = s.consents()?;
    Ok((s, c))
}

async fn regrant_after_revoke_keeps_the_record(ctx: &Ctx) -> Result<(), String> {
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

async fn expiry_is_exact_at_now(ctx: &Ctx) -> Result<(), String> {
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

async fn revoke_needs_an_active_consent(ctx: &Ctx) -> Result<(), String> {
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

async fn revoke_all_counts_active_only(ctx: &Ctx) -> Result<(), String> {
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

async fn delete_all_erases_every_record(ctx: &Ctx) -> Result<(), String> {
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

async fn every_change_records_one_audit_event(ctx: &Ctx) -> Result<(), String> {
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

async fn list_filters_by_purpose_and_status(ctx: &Ctx) -> Result<(), String> {
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

async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
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

async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
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
async fn a_failed_event_write_writes_nothing(ctx: &Ctx) -> Result<(), String> {
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
