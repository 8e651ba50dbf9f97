//! Values at the edges of their types, for every port: timestamps over the whole `i64` range
//! (weighted to the storable range's ends, to the type's ends and to 2^53, where Lua doubles
//! stop being exact), store clocks at the ends of the storable range, page sizes, and
//! rate-limit policies at their limits. Each property compares the backend with the model
//! operation by operation, like the ordinary sequences do.

use super::{cases, consent_id, event_id, session_id, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::property::{self, Pair, same, same_pages};
use crate::support::Ctx;
use credo_ports::rate_limit::{CLOCK_LIMIT_US, MAX_RATE};
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, ConsentFilter, Cursor, Device, GrantConsent, NewSession,
    NewUser, PageRequest, RateLimitPolicy, SessionStatus, Timestamp,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use serde_json::json;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Users; user_cursors_at_the_edges];
    v.extend(cases![Port::Sessions; session_times_at_the_edges]);
    v.extend(cases![Port::Consents; consent_times_at_the_edges]);
    v.extend(cases![Port::Audit; audit_times_and_bounds_at_the_edges]);
    v.extend(cases![Port::Outbox; outbox_bounds_at_the_edges]);
    v.extend(cases![Port::RateLimits; rate_limits_at_the_edges]);
    v
}

const SEC: i64 = 1_000_000;
const TWO_53: i64 = 1 << 53;

/// Any `i64` instant, weighted to the interesting ones.
fn any_instant() -> BoxedStrategy<Timestamp> {
    let near = |c: i64| (-2i64..=2).prop_map(move |d| c.saturating_add(d));
    prop_oneof![
        2 => any::<i64>(),
        2 => Timestamp::MIN.as_micros()..=Timestamp::MAX.as_micros(),
        2 => near(Timestamp::MIN.as_micros()),
        2 => near(Timestamp::MAX.as_micros()),
        1 => near(i64::MIN),
        1 => near(i64::MAX),
        1 => near(TWO_53),
        1 => near(-TWO_53),
        1 => near(0),
    ]
    .prop_map(Timestamp::from_micros)
    .boxed()
}

/// A store clock: always storable (a clock outside the range is a fault of the host, not
/// input), weighted to the range's ends, to 2^53 and to the suite's usual start.
fn clock_instant() -> BoxedStrategy<Timestamp> {
    let (min, max) = (Timestamp::MIN.as_micros(), Timestamp::MAX.as_micros());
    prop_oneof![
        2 => min..=max,
        2 => (0i64..=SEC).prop_map(move |d| min + d),
        2 => (0i64..=SEC).prop_map(move |d| max - d),
        1 => (-2i64..=2).prop_map(|d| TWO_53 + d),
        1 => (-2i64..=2).prop_map(|d| CLOCK_LIMIT_US + d),
        1 => (-2i64..=2).prop_map(|d| -CLOCK_LIMIT_US + d),
        1 => Just(Stores::START.as_micros()),
    ]
    .prop_map(Timestamp::from_micros)
    .boxed()
}

/// An instant either absolute (anywhere) or a few microseconds to seconds from the clock, so
/// that sequences also hold live records next to the edge ones.
#[derive(Clone, Copy, Debug)]
enum At {
    Absolute(Timestamp),
    FromNow(i64),
}

impl At {
    fn resolve(self, now: Timestamp) -> Timestamp {
        match self {
            At::Absolute(t) => t,
            At::FromNow(d) => Timestamp::from_micros(now.as_micros().saturating_add(d)),
        }
    }
}

fn at() -> BoxedStrategy<At> {
    prop_oneof![
        any_instant().prop_map(At::Absolute),
        prop_oneof![Just(-1i64), Just(0), Just(1), Just(SEC), Just(3600 * SEC)]
            .prop_map(At::FromNow),
    ]
    .boxed()
}

fn page_limit() -> BoxedStrategy<usize> {
    prop_oneof![
        4 => 1usize..=4,
        1 => Just(0usize),
        1 => Just(credo_ports::page::MAX_PAGE_SIZE),
        1 => Just(credo_ports::page::MAX_PAGE_SIZE + 1),
        1 => Just(usize::MAX),
    ]
    .boxed()
}

fn set_clock(p: &Pair, t: Timestamp) {
    p.backend.clock.set(t);
}

// ---------------------------------------------------------------------------------------------
// Users: created_at at the clock's edges, list cursors anywhere.

#[derive(Clone, Debug)]
enum UserOp {
    Clock(Timestamp),
    Create {
        i: u8,
    },
    List {
        after: Option<(Timestamp, u8)>,
        limit: usize,
    },
    Count,
}

fn user_op() -> BoxedStrategy<UserOp> {
    prop_oneof![
        2 => clock_instant().prop_map(UserOp::Clock),
        3 => (0u8..6).prop_map(|i| UserOp::Create { i }),
        3 => (proptest::option::of((any_instant(), 0u8..6)), page_limit())
            .prop_map(|(after, limit)| UserOp::List { after, limit }),
        1 => Just(UserOp::Count),
    ]
    .boxed()
}

fn apply_user<'a>(p: &'a Pair, op: &'a UserOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.users()?, p.backend.users()?);
        match op.clone() {
            UserOp::Clock(t) => {
                set_clock(p, t);
                Ok(())
            }
            UserOp::Create { i } => {
                let mut u =
                    NewUser::new(tenant(0), &format!("edge{i}@example.com"), "Edge", "Case");
                u.id = user_id(i);
                same(op, m.create(u.clone()).await, b.create(u).await)
            }
            UserOp::List { after, limit } => {
                let page = PageRequest {
                    after: after.map(|(at, i)| Cursor {
                        at,
                        id: user_id(i).0,
                    }),
                    limit,
                };
                same(
                    op,
                    m.list(tenant(0), page).await,
                    b.list(tenant(0), page).await,
                )
            }
            UserOp::Count => same(op, m.count(tenant(0)).await, b.count(tenant(0)).await),
        }
    }
    .boxed()
}

async fn user_cursors_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_users",
        || proptest::collection::vec(user_op(), 1..30),
        apply_user,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Sessions and token revocations: expiries anywhere, clocks at the edges.

#[derive(Clone, Debug)]
enum SessionOp {
    Clock(Timestamp),
    Advance(i64),
    Create { id: u8, user: u8, expires: At },
    Get { id: u8 },
    Touch { id: u8 },
    Revoke { id: u8 },
    RevokeAll { user: u8 },
    List { user: u8 },
    Purge,
    RevokeToken { jti: u8, expires: At },
    IsTokenRevoked { jti: u8 },
}

fn session_op() -> BoxedStrategy<SessionOp> {
    let (id, user, jti) = (0u8..4, 0u8..2, 0u8..3);
    // The clock starts anywhere and then only moves forward: Redis trims a user's index of
    // sessions expired by more than the configured grace, so a clock that jumps back further
    // than that is outside the contract (it is the skew the grace exists for).
    prop_oneof![
        2 => prop_oneof![Just(1i64), Just(SEC), Just(86_400 * SEC), Just(3650 * 86_400 * SEC)]
            .prop_map(SessionOp::Advance),
        4 => (id.clone(), user.clone(), at())
            .prop_map(|(id, user, expires)| SessionOp::Create { id, user, expires }),
        2 => id.clone().prop_map(|id| SessionOp::Get { id }),
        1 => id.clone().prop_map(|id| SessionOp::Touch { id }),
        1 => id.clone().prop_map(|id| SessionOp::Revoke { id }),
        1 => user.clone().prop_map(|user| SessionOp::RevokeAll { user }),
        2 => user.prop_map(|user| SessionOp::List { user }),
        1 => Just(SessionOp::Purge),
        3 => (jti.clone(), at()).prop_map(|(jti, expires)| SessionOp::RevokeToken { jti, expires }),
        2 => jti.prop_map(|jti| SessionOp::IsTokenRevoked { jti }),
    ]
    .boxed()
}

fn apply_session<'a>(p: &'a Pair, op: &'a SessionOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.sessions()?, p.backend.sessions()?);
        let t = tenant(0);
        let now = p.backend.now();
        let jti = |j: u8| format!("edge-jti-{j}");
        match op.clone() {
            SessionOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            SessionOp::Advance(d) => {
                let next = now
                    .as_micros()
                    .saturating_add(d)
                    .min(Timestamp::MAX.as_micros());
                set_clock(p, Timestamp::from_micros(next));
                Ok(())
            }
            SessionOp::Create { id, user, expires } => {
                let s = NewSession {
                    id: session_id(id),
                    tenant_id: t,
                    user_id: user_id(user),
                    client_id: "edge-client".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::Active,
                    device: Device::default(),
                    expires_at: expires.resolve(now),
                };
                same(op, m.create(s.clone()).await, b.create(s).await)
            }
            SessionOp::Get { id } => same(
                op,
                m.get(t, session_id(id)).await,
                b.get(t, session_id(id)).await,
            ),
            SessionOp::Touch { id } => same(
                op,
                m.touch(t, session_id(id)).await,
                b.touch(t, session_id(id)).await,
            ),
            SessionOp::Revoke { id } => same(
                op,
                m.revoke(t, session_id(id)).await,
                b.revoke(t, session_id(id)).await,
            ),
            SessionOp::RevokeAll { user } => same(
                op,
                m.revoke_all_for_user(t, user_id(user)).await,
                b.revoke_all_for_user(t, user_id(user)).await,
            ),
            SessionOp::List { user } => same(
                op,
                m.list_for_user(t, user_id(user)).await,
                b.list_for_user(t, user_id(user)).await,
            ),
            SessionOp::Purge => same(op, m.purge_expired().await, b.purge_expired().await),
            SessionOp::RevokeToken { jti: j, expires } => {
                let exp = expires.resolve(now);
                same(
                    op,
                    m.revoke_token(t, &jti(j), exp).await,
                    b.revoke_token(t, &jti(j), exp).await,
                )
            }
            SessionOp::IsTokenRevoked { jti: j } => same(
                op,
                m.is_token_revoked(t, &jti(j)).await,
                b.is_token_revoked(t, &jti(j)).await,
            ),
        }
    }
    .boxed()
}

async fn session_times_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_sessions",
        || {
            (
                clock_instant(),
                proptest::collection::vec(session_op(), 1..30),
            )
                .prop_map(|(start, mut ops)| {
                    ops.insert(0, SessionOp::Clock(start));
                    ops
                })
        },
        apply_session,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Consents: expiries anywhere, status derived at clocks on the edges.

#[derive(Clone, Debug)]
enum ConsentOp {
    Clock(Timestamp),
    Grant { purpose: u8, expires: Option<At> },
    Get { purpose: u8 },
    Revoke { purpose: u8 },
    List { active_only: bool },
    RevokeAll,
}

const PURPOSES: [&str; 3] = ["marketing", "analytics", "registry.check"];

fn consent_op() -> BoxedStrategy<ConsentOp> {
    let purpose = 0u8..3;
    prop_oneof![
        2 => clock_instant().prop_map(ConsentOp::Clock),
        4 => (purpose.clone(), proptest::option::of(at()))
            .prop_map(|(purpose, expires)| ConsentOp::Grant { purpose, expires }),
        2 => purpose.clone().prop_map(|purpose| ConsentOp::Get { purpose }),
        1 => purpose.prop_map(|purpose| ConsentOp::Revoke { purpose }),
        2 => any::<bool>().prop_map(|active_only| ConsentOp::List { active_only }),
        1 => Just(ConsentOp::RevokeAll),
    ]
    .boxed()
}

fn apply_consent<'a>(p: &'a Pair, op: &'a ConsentOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.consents()?, p.backend.consents()?);
        let (t, u) = (tenant(0), user_id(0));
        let now = p.backend.now();
        match op.clone() {
            ConsentOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            ConsentOp::Grant { purpose, expires } => {
                let g = GrantConsent {
                    id: consent_id(purpose),
                    tenant_id: t,
                    user_id: u,
                    purpose: PURPOSES[purpose as usize].into(),
                    expires_at: expires.map(|e| e.resolve(now)),
                };
                same(op, m.grant(g.clone()).await, b.grant(g).await)
            }
            ConsentOp::Get { purpose } => {
                let pu = PURPOSES[purpose as usize];
                same(op, m.get(t, u, pu).await, b.get(t, u, pu).await)
            }
            ConsentOp::Revoke { purpose } => {
                let pu = PURPOSES[purpose as usize];
                same(op, m.revoke(t, u, pu).await, b.revoke(t, u, pu).await)
            }
            ConsentOp::List { active_only } => {
                let f = || ConsentFilter {
                    purpose: None,
                    status: active_only.then_some(credo_ports::ConsentStatus::Active),
                };
                same(
                    op,
                    m.list_for_user(t, u, f()).await,
                    b.list_for_user(t, u, f()).await,
                )
            }
            ConsentOp::RevokeAll => same(
                op,
                m.revoke_all_for_user(t, u).await,
                b.revoke_all_for_user(t, u).await,
            ),
        }
    }
    .boxed()
}

async fn consent_times_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_consents",
        || proptest::collection::vec(consent_op(), 1..30),
        apply_consent,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Audit log: occurred_at anywhere, query/count/retention bounds anywhere, JSON numbers at
// their edges in the metadata.

#[derive(Clone, Debug)]
enum AuditOp {
    Append {
        i: u16,
        at: Timestamp,
        number: u8,
    },
    Record {
        at: Timestamp,
    },
    Drain,
    Query {
        from: Option<Timestamp>,
        until: Option<Timestamp>,
        limit: usize,
    },
    Count {
        from: Option<Timestamp>,
        until: Option<Timestamp>,
    },
    Purge {
        before: Timestamp,
    },
}

/// JSON numbers that `jsonb` and serde_json must carry unchanged.
fn edge_number(i: u8) -> serde_json::Value {
    match i % 10 {
        0 => json!(i64::MIN),
        1 => json!(i64::MAX),
        2 => json!(u64::MAX),
        3 => json!(f64::MAX),
        4 => json!(f64::MIN_POSITIVE),
        5 => json!(5e-324),
        6 => json!(-0.0),
        7 => json!(0.1 + 0.2),
        8 => json!(1e21),
        _ => json!(-1.5e-7),
    }
}

fn audit_op() -> BoxedStrategy<AuditOp> {
    let bound = || proptest::option::of(any_instant());
    prop_oneof![
        3 => (0u16..8, any_instant(), any::<u8>()).prop_map(|(i, at, number)| AuditOp::Append { i, at, number }),
        2 => any_instant().prop_map(|at| AuditOp::Record { at }),
        1 => Just(AuditOp::Drain),
        3 => (bound(), bound(), page_limit()).prop_map(|(from, until, limit)| AuditOp::Query { from, until, limit }),
        2 => (bound(), bound()).prop_map(|(from, until)| AuditOp::Count { from, until }),
        1 => any_instant().prop_map(|before| AuditOp::Purge { before }),
    ]
    .boxed()
}

fn edge_event(id: Option<u16>, at: Timestamp, number: u8) -> AuditEvent {
    let mut e = AuditEvent::new(tenant(0), at, AuditCategory::Security, "auth.edge_case");
    if let Some(i) = id {
        e.id = event_id(i);
    }
    e.metadata.insert("n".into(), edge_number(number));
    e
}

fn apply_audit<'a>(p: &'a Pair, op: &'a AuditOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.audit_log()?, p.backend.audit_log()?);
        let q = |from, until| AuditQuery {
            from,
            until,
            ..AuditQuery::default()
        };
        match op.clone() {
            AuditOp::Append { i, at, number } => {
                let batch = [edge_event(Some(i), at, number)];
                same(
                    op,
                    m.append_batch(&batch).await,
                    b.append_batch(&batch).await,
                )
            }
            AuditOp::Record { at } => {
                // One fresh id for both sides: `record` keeps the caller's id.
                let e = edge_event(None, at, 0);
                let (mr, br) = (p.model.audit()?, p.backend.audit()?);
                same(op, mr.record(e.clone()).await, br.record(e).await)
            }
            AuditOp::Drain => property::same_drained_events(p, "drain", property::Ids::Given).await,
            AuditOp::Query { from, until, limit } => {
                same_pages(
                    op,
                    limit,
                    |page| m.query(tenant(0), q(from, until), page),
                    |page| b.query(tenant(0), q(from, until), page),
                )
                .await
            }
            AuditOp::Count { from, until } => same(
                op,
                m.count(tenant(0), q(from, until)).await,
                b.count(tenant(0), q(from, until)).await,
            ),
            AuditOp::Purge { before } => same(
                op,
                m.purge_before(before).await,
                b.purge_before(before).await,
            ),
        }
    }
    .boxed()
}

async fn audit_times_and_bounds_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_audit",
        || proptest::collection::vec(audit_op(), 1..30),
        apply_audit,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Outbox: retention bounds anywhere, ages at clocks on the edges.

#[derive(Clone, Debug)]
enum OutboxOp {
    Clock(Timestamp),
    Record,
    Drain,
    Purge { before: Timestamp },
    Depth,
    OldestAge,
}

fn outbox_op() -> BoxedStrategy<OutboxOp> {
    prop_oneof![
        2 => clock_instant().prop_map(OutboxOp::Clock),
        3 => Just(OutboxOp::Record),
        2 => Just(OutboxOp::Drain),
        3 => any_instant().prop_map(|before| OutboxOp::Purge { before }),
        1 => Just(OutboxOp::Depth),
        1 => Just(OutboxOp::OldestAge),
    ]
    .boxed()
}

fn apply_outbox<'a>(p: &'a Pair, op: &'a OutboxOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.outbox()?, p.backend.outbox()?);
        match op.clone() {
            OutboxOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            OutboxOp::Record => {
                let e = edge_event(None, p.backend.now(), 0);
                same(
                    op,
                    p.model.audit()?.record(e.clone()).await,
                    p.backend.audit()?.record(e).await,
                )
            }
            OutboxOp::Drain => {
                property::same_drained_events(p, "drain", property::Ids::Given).await
            }
            OutboxOp::Purge { before } => same(
                op,
                m.purge_published(before).await,
                b.purge_published(before).await,
            ),
            OutboxOp::Depth => same(op, m.depth().await, b.depth().await),
            OutboxOp::OldestAge => same(
                op,
                m.oldest_pending_age().await,
                b.oldest_pending_age().await,
            ),
        }
    }
    .boxed()
}

async fn outbox_bounds_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_outbox",
        || proptest::collection::vec(outbox_op(), 1..30),
        apply_outbox,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Rate limits: policies, costs and clocks at their limits.

#[derive(Clone, Debug)]
enum RateOp {
    Clock(Timestamp),
    Check {
        key: u8,
        policy: RateLimitPolicy,
        cost: u32,
    },
    Peek {
        key: u8,
        policy: RateLimitPolicy,
    },
    Purge,
}

fn rate_u32() -> BoxedStrategy<u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(MAX_RATE - 1),
        Just(MAX_RATE),
        Just(MAX_RATE + 1),
        Just(u32::MAX),
        1u32..100,
    ]
    .boxed()
}

fn period() -> BoxedStrategy<Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_micros(1)),
        Just(Duration::from_micros(999)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(86_400)),
        Just(Duration::from_secs(86_400) + Duration::from_micros(1)),
        Just(Duration::MAX),
        (1u64..=86_400_000_000).prop_map(Duration::from_micros),
    ]
    .boxed()
}

fn policy() -> BoxedStrategy<RateLimitPolicy> {
    let any =
        (rate_u32(), period(), rate_u32()).prop_map(|(limit, period, burst)| RateLimitPolicy {
            limit,
            period,
            burst,
        });
    // One a day with a burst of 31: the tolerance (burst x interval) exactly at its 31-day
    // bound, the largest TAT offset a backend must compute exactly; 32 is one day past it.
    let tolerance_bound = prop_oneof![Just(31u32), Just(32)].prop_map(|burst| RateLimitPolicy {
        limit: 1,
        period: Duration::from_secs(86_400),
        burst,
    });
    prop_oneof![6 => any, 1 => tolerance_bound].boxed()
}

fn rate_op() -> BoxedStrategy<RateOp> {
    let clock = prop_oneof![
        clock_instant(),
        (-2i64..=2).prop_map(|d| Timestamp::from_micros(Stores::START.as_micros() + d * SEC)),
    ];
    prop_oneof![
        2 => clock.prop_map(RateOp::Clock),
        5 => (0u8..2, policy(), rate_u32()).prop_map(|(key, policy, cost)| RateOp::Check { key, policy, cost }),
        2 => (0u8..2, policy()).prop_map(|(key, policy)| RateOp::Peek { key, policy }),
        1 => Just(RateOp::Purge),
    ]
    .boxed()
}

fn apply_rate<'a>(p: &'a Pair, op: &'a RateOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.rate_limits()?, p.backend.rate_limits()?);
        let t = tenant(0);
        let key = |k: u8| format!("edge-key-{k}");
        match op.clone() {
            RateOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            RateOp::Check {
                key: k,
                policy,
                cost,
            } => same(
                op,
                m.check(t, &key(k), policy, cost).await,
                b.check(t, &key(k), policy, cost).await,
            ),
            RateOp::Peek { key: k, policy } => same(
                op,
                m.peek(t, &key(k), policy).await,
                b.peek(t, &key(k), policy).await,
            ),
            RateOp::Purge => same(op, m.purge_idle().await, b.purge_idle().await),
        }
    }
    .boxed()
}

async fn rate_limits_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_rate_limits",
        || proptest::collection::vec(rate_op(), 1..30),
        apply_rate,
    )
    .await
}
