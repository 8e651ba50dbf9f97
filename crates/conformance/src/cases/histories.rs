//! Concurrent histories: N tasks run random operations at once against one backend; every
//! call's invocation, response and result is recorded, and the history must be linearizable
//! with respect to a sequential spec of the port (see [`crate::linearizability`]).
//!
//! The specs here are written from the port contracts (DESIGN §5) with their own naive logic:
//! they share no code with the adapters nor with the model. Each round uses fresh stores and a
//! fixed clock (time does not move while tasks race), and rounds are seeded, so a failure names
//! the seed that reproduces it.

use super::{cases, consent_id, event_id, session_id, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::linearizability::{Call, History, Spec, check, check_partitioned};
use crate::support::Ctx;
use credo_ports::{
    AuditCategory, AuditEvent, ClaimToken, Device, EventId, GrantConsent, NewSession, NewUser,
    RateLimitPolicy, SessionStatus, StoreResult,
};
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Users; concurrent_user_histories];
    v.extend(cases![Port::Sessions; concurrent_session_histories, concurrent_token_histories]);
    v.extend(cases![Port::Consents; concurrent_consent_histories]);
    v.extend(cases![Port::Audit; concurrent_audit_log_histories]);
    v.extend(cases![Port::Outbox; concurrent_outbox_histories]);
    v.extend(cases![Port::RateLimits; concurrent_rate_limit_histories]);
    v
}

/// Tasks per round, operations per task, rounds per case.
const TASKS: usize = 4;
const OPS: usize = 6;
const ROUNDS: u64 = 40;

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
    fn pick(&mut self, n: u8) -> u8 {
        self.below(u64::from(n)) as u8
    }
}

type Exec<O, R> = fn(Arc<Stores>, O) -> BoxFuture<'static, R>;

/// Judges a round's history (and may read the stores afterwards).
type Verify<O, R> = for<'a> fn(&'a Stores, &'a [Call<O, R>]) -> BoxFuture<'a, Result<(), String>>;

/// Runs `ROUNDS` rounds: fresh stores, `setup`, then `TASKS` tasks released together, each
/// running its `OPS` generated operations in order; then `verify` judges the history.
async fn rounds<O, R>(
    ctx: &Ctx,
    generate: fn(&mut Rng, usize) -> O,
    exec: Exec<O, R>,
    verify: Verify<O, R>,
) -> Result<(), String>
where
    O: Clone + Debug + Send + Sync + 'static,
    R: Clone + Debug + Send + Sync + 'static,
{
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        let history: Arc<History<O, R>> = History::new();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<O>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| generate(&mut rng, task)).collect())
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, plan)| {
                let (stores, history, barrier) = (stores.clone(), history.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    for op in plan {
                        let call = exec(stores.clone(), op.clone());
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        let calls = history.calls();
        verify(&stores, &calls)
            .await
            .map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Users: one tenant, ids 0..3, two emails that differ only in case plus a third.

#[derive(Clone, Debug)]
enum UserOp {
    Create(u8, u8),
    FindOrCreate(u8, u8),
    FindByEmail(u8),
    Delete(u8),
    Count,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum UserRet {
    User(u8),
    Created(u8, bool),
    Absent,
    Count(u64),
    Done,
    Err(&'static str),
}

const EMAILS: [&str; 3] = ["Ada@Example.com", "ada@example.COM", "bob@example.com"];

/// Email key by the contract: trimmed, case-insensitive. Emails 0 and 1 are one address.
fn email_slot(e: u8) -> u8 {
    if e == 1 { 0 } else { e }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct UserSpec {
    /// email slot -> user id
    by_email: BTreeMap<u8, u8>,
}

impl UserSpec {
    fn has_id(&self, id: u8) -> bool {
        self.by_email.values().any(|&v| v == id)
    }
}

impl Spec for UserSpec {
    type Op = UserOp;
    type Ret = UserRet;
    fn step(&self, op: &UserOp, ret: &UserRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match *op {
            UserOp::Create(id, e) => {
                if self.by_email.contains_key(&email_slot(e)) || self.has_id(id) {
                    UserRet::Err("Conflict")
                } else {
                    next.by_email.insert(email_slot(e), id);
                    UserRet::User(id)
                }
            }
            UserOp::FindOrCreate(id, e) => match self.by_email.get(&email_slot(e)) {
                Some(&existing) => UserRet::Created(existing, false),
                None if self.has_id(id) => UserRet::Err("Conflict"),
                None => {
                    next.by_email.insert(email_slot(e), id);
                    UserRet::Created(id, true)
                }
            },
            UserOp::FindByEmail(e) => match self.by_email.get(&email_slot(e)) {
                Some(&id) => UserRet::User(id),
                None => UserRet::Absent,
            },
            UserOp::Delete(id) => {
                if self.has_id(id) {
                    next.by_email.retain(|_, v| *v != id);
                    UserRet::Done
                } else {
                    UserRet::Err("NotFound")
                }
            }
            UserOp::Count => UserRet::Count(self.by_email.len() as u64),
        };
        (expected == *ret).then_some(next)
    }
}

fn user_op(rng: &mut Rng, _task: usize) -> UserOp {
    let (id, e) = (rng.pick(3), rng.pick(3));
    match rng.below(10) {
        0..=2 => UserOp::Create(id, e),
        3..=4 => UserOp::FindOrCreate(id, e),
        5..=6 => UserOp::FindByEmail(e),
        7..=8 => UserOp::Delete(id),
        _ => UserOp::Count,
    }
}

fn user_index(id: credo_ports::UserId) -> u8 {
    (0..3).find(|&i| user_id(i) == id).unwrap_or(u8::MAX)
}

fn exec_user(s: Arc<Stores>, op: UserOp) -> BoxFuture<'static, UserRet> {
    Box::pin(async move {
        let Ok(users) = s.users() else {
            return UserRet::Err("no store");
        };
        let t = tenant(0);
        let new = |id: u8, e: u8| {
            let mut u = NewUser::new(t, EMAILS[e as usize], "Ada", "Lovelace");
            u.id = user_id(id);
            u
        };
        match op {
            UserOp::Create(id, e) => match users.create(new(id, e)).await {
                Ok(u) => UserRet::User(user_index(u.id)),
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::FindOrCreate(id, e) => match users.find_or_create(new(id, e)).await {
                Ok((u, created)) => UserRet::Created(user_index(u.id), created),
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::FindByEmail(e) => match users.find_by_email(t, EMAILS[e as usize]).await {
                Ok(Some(u)) => UserRet::User(user_index(u.id)),
                Ok(None) => UserRet::Absent,
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::Delete(id) => match users.delete(t, user_id(id)).await {
                Ok(()) => UserRet::Done,
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::Count => match users.count(t).await {
                Ok(n) => UserRet::Count(n),
                Err(e) => UserRet::Err(e.kind()),
            },
        }
    })
}

async fn concurrent_user_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, user_op, exec_user, |_, calls| {
        Box::pin(async move { check(&UserSpec::default(), calls) })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Sessions: two users with three session ids each; partitioned by user.

#[derive(Clone, Debug)]
enum SessionOp {
    Create(u8),
    Get(u8),
    Touch(u8),
    Activate(u8),
    Revoke(u8),
    RevokeAll(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SessionRet {
    Session(SessionStatus, u64),
    Absent,
    Count(u64),
    Err(&'static str),
}

fn owner(id: u8) -> u8 {
    id / 3
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct SessionSpec {
    /// id -> (status, version)
    sessions: BTreeMap<u8, (SessionStatus, u64)>,
}

impl Spec for SessionSpec {
    type Op = SessionOp;
    type Ret = SessionRet;
    fn step(&self, op: &SessionOp, ret: &SessionRet) -> Option<Self> {
        use SessionStatus::*;
        let mut next = self.clone();
        let current = |id: &u8| self.sessions.get(id).copied();
        let expected = match op {
            SessionOp::Create(id) => match current(id) {
                Some(_) => SessionRet::Err("Conflict"),
                None => {
                    next.sessions.insert(*id, (PendingConsent, 1));
                    SessionRet::Session(PendingConsent, 1)
                }
            },
            SessionOp::Get(id) => match current(id) {
                Some((st, v)) => SessionRet::Session(st, v),
                None => SessionRet::Absent,
            },
            // The clock stands still: last_seen_at cannot move forward, so nothing changes.
            SessionOp::Touch(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((Revoked, _)) => SessionRet::Err("InvalidState"),
                Some((st, v)) => SessionRet::Session(st, v),
            },
            SessionOp::Activate(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((PendingConsent, v)) => {
                    next.sessions.insert(*id, (Active, v + 1));
                    SessionRet::Session(Active, v + 1)
                }
                Some(_) => SessionRet::Err("InvalidState"),
            },
            SessionOp::Revoke(id) => match current(id) {
                None => SessionRet::Err("NotFound"),
                Some((Revoked, _)) => SessionRet::Err("InvalidState"),
                Some((_, v)) => {
                    next.sessions.insert(*id, (Revoked, v + 1));
                    SessionRet::Session(Revoked, v + 1)
                }
            },
            SessionOp::RevokeAll(user) => {
                let mut n = 0;
                for (id, (st, v)) in next.sessions.iter_mut() {
                    if owner(*id) == *user && *st != Revoked {
                        *st = Revoked;
                        *v += 1;
                        n += 1;
                    }
                }
                SessionRet::Count(n)
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn session_op(rng: &mut Rng, _task: usize) -> SessionOp {
    let id = rng.pick(6);
    match rng.below(12) {
        0..=2 => SessionOp::Create(id),
        3..=4 => SessionOp::Get(id),
        5 => SessionOp::Touch(id),
        6..=7 => SessionOp::Activate(id),
        8..=10 => SessionOp::Revoke(id),
        _ => SessionOp::RevokeAll(owner(id)),
    }
}

fn session_ret(r: StoreResult<credo_ports::Session>) -> SessionRet {
    match r {
        Ok(s) => SessionRet::Session(s.status, s.version),
        Err(e) => SessionRet::Err(e.kind()),
    }
}

fn exec_session(s: Arc<Stores>, op: SessionOp) -> BoxFuture<'static, SessionRet> {
    Box::pin(async move {
        let Ok(st) = s.sessions() else {
            return SessionRet::Err("no store");
        };
        let t = tenant(0);
        match op {
            SessionOp::Create(id) => {
                let new = NewSession {
                    id: session_id(id),
                    tenant_id: t,
                    user_id: user_id(owner(id)),
                    client_id: "history".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::PendingConsent,
                    device: Device::default(),
                    expires_at: s.now().saturating_add(Duration::from_secs(3600)),
                };
                session_ret(st.create(new).await)
            }
            SessionOp::Get(id) => match st.get(t, session_id(id)).await {
                Ok(Some(x)) => SessionRet::Session(x.status, x.version),
                Ok(None) => SessionRet::Absent,
                Err(e) => SessionRet::Err(e.kind()),
            },
            SessionOp::Touch(id) => session_ret(st.touch(t, session_id(id)).await),
            SessionOp::Activate(id) => session_ret(st.activate(t, session_id(id)).await),
            SessionOp::Revoke(id) => session_ret(st.revoke(t, session_id(id)).await),
            SessionOp::RevokeAll(user) => match st.revoke_all_for_user(t, user_id(user)).await {
                Ok(n) => SessionRet::Count(n),
                Err(e) => SessionRet::Err(e.kind()),
            },
        }
    })
}

async fn concurrent_session_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, session_op, exec_session, |_, calls| {
        Box::pin(async move {
            check_partitioned(
                calls,
                |op: &SessionOp| match op {
                    SessionOp::RevokeAll(user) => *user,
                    SessionOp::Create(id)
                    | SessionOp::Get(id)
                    | SessionOp::Touch(id)
                    | SessionOp::Activate(id)
                    | SessionOp::Revoke(id) => owner(*id),
                },
                |_| SessionSpec::default(),
            )
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Token revocations and the purge: revocations start expired, tasks renew, read and purge.

#[derive(Clone, Debug)]
enum TokenOp {
    Revoke(u8),
    IsRevoked(u8),
    Purge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TokenRet {
    Done,
    Revoked(bool),
    Purged(u64),
    Err(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Token {
    Expired,
    Live,
    Gone,
}

/// Three revocations that expired just before the round starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenSpec {
    tokens: [Token; 3],
}

impl Spec for TokenSpec {
    type Op = TokenOp;
    type Ret = TokenRet;
    fn step(&self, op: &TokenOp, ret: &TokenRet) -> Option<Self> {
        let mut next = self.clone();
        match (op, ret) {
            (TokenOp::Revoke(j), TokenRet::Done) => next.tokens[*j as usize] = Token::Live,
            (TokenOp::IsRevoked(j), TokenRet::Revoked(r)) => {
                if *r != (self.tokens[*j as usize] == Token::Live) {
                    return None;
                }
            }
            // A purge's successors come from `successors`; a failed purge matches nothing.
            _ => return None,
        }
        Some(next)
    }

    /// A purge removes some of the expired revocations and counts them: a sweep over keys
    /// (Redis) may share them with a concurrent sweep, and keys may also have expired by TTL.
    /// Live revocations are never touched. Expired and removed ones read alike (not revoked).
    fn successors(&self, op: &TokenOp, ret: &TokenRet) -> Vec<Self> {
        let (TokenOp::Purge, TokenRet::Purged(n)) = (op, ret) else {
            return self.step(op, ret).into_iter().collect();
        };
        let expired: Vec<usize> = (0..3)
            .filter(|&i| self.tokens[i] == Token::Expired)
            .collect();
        let mut out = Vec::new();
        for mask in 0u8..(1 << expired.len()) {
            if u64::from(mask.count_ones()) != *n {
                continue;
            }
            let mut next = self.clone();
            for (bit, &i) in expired.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    next.tokens[i] = Token::Gone;
                }
            }
            out.push(next);
        }
        out
    }
}

fn token_op(rng: &mut Rng, _task: usize) -> TokenOp {
    let j = rng.pick(3);
    match rng.below(6) {
        0..=1 => TokenOp::Revoke(j),
        2..=3 => TokenOp::IsRevoked(j),
        _ => TokenOp::Purge,
    }
}

fn token_jti(j: u8) -> String {
    format!("history-jti-{j}")
}

fn exec_token(s: Arc<Stores>, op: TokenOp) -> BoxFuture<'static, TokenRet> {
    Box::pin(async move {
        let Ok(st) = s.sessions() else {
            return TokenRet::Err("no store");
        };
        let t = tenant(0);
        match op {
            TokenOp::Revoke(j) => {
                let exp = s.now().saturating_add(Duration::from_secs(3600));
                match st.revoke_token(t, &token_jti(j), exp).await {
                    Ok(()) => TokenRet::Done,
                    Err(e) => TokenRet::Err(e.kind()),
                }
            }
            TokenOp::IsRevoked(j) => match st.is_token_revoked(t, &token_jti(j)).await {
                Ok(r) => TokenRet::Revoked(r),
                Err(e) => TokenRet::Err(e.kind()),
            },
            TokenOp::Purge => match st.purge_expired().await {
                Ok(n) => TokenRet::Purged(n),
                Err(e) => TokenRet::Err(e.kind()),
            },
        }
    })
}

async fn concurrent_token_histories(ctx: &Ctx) -> Result<(), String> {
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        // Revocations that expire 1 µs from now, then the clock steps past them.
        let st = stores.sessions()?;
        for j in 0..3 {
            let exp = stores.now().saturating_add(Duration::from_micros(1));
            super::ok(
                "setup",
                st.revoke_token(tenant(0), &token_jti(j), exp).await,
            )?;
        }
        stores
            .clock
            .set(stores.now().saturating_add(Duration::from_micros(2)));
        let history: Arc<History<TokenOp, TokenRet>> = History::new();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<TokenOp>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| token_op(&mut rng, task)).collect())
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, plan)| {
                let (stores, history, barrier) = (stores.clone(), history.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    for op in plan {
                        let call = exec_token(stores.clone(), op.clone());
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        let init = TokenSpec {
            tokens: [Token::Expired; 3],
        };
        check(&init, &history.calls()).map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Consents: one user, two purposes; every change must also leave exactly its audit event.

#[derive(Clone, Debug)]
enum ConsentOp {
    Grant(u8),
    Revoke(u8),
    Get(u8),
    RevokeAll,
    DeleteAll,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ConsentRet {
    /// version, revoked
    Consent(u64, bool),
    Absent,
    Count(u64),
    Err(&'static str),
}

const CONSENT_PURPOSES: [&str; 2] = ["marketing", "analytics"];

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct ConsentSpec {
    /// purpose -> (version, revoked)
    consents: BTreeMap<u8, (u64, bool)>,
}

impl Spec for ConsentSpec {
    type Op = ConsentOp;
    type Ret = ConsentRet;
    fn step(&self, op: &ConsentOp, ret: &ConsentRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            ConsentOp::Grant(p) => {
                let v = self.consents.get(p).map_or(1, |(v, _)| v + 1);
                next.consents.insert(*p, (v, false));
                ConsentRet::Consent(v, false)
            }
            ConsentOp::Revoke(p) => match self.consents.get(p) {
                None => ConsentRet::Err("NotFound"),
                Some((_, true)) => ConsentRet::Err("InvalidState"),
                Some((v, false)) => {
                    next.consents.insert(*p, (v + 1, true));
                    ConsentRet::Consent(v + 1, true)
                }
            },
            ConsentOp::Get(p) => match self.consents.get(p) {
                Some(&(v, revoked)) => ConsentRet::Consent(v, revoked),
                None => ConsentRet::Absent,
            },
            ConsentOp::RevokeAll => {
                let mut n = 0;
                for (v, revoked) in next.consents.values_mut() {
                    if !*revoked {
                        *v += 1;
                        *revoked = true;
                        n += 1;
                    }
                }
                ConsentRet::Count(n)
            }
            ConsentOp::DeleteAll => {
                let n = next.consents.len() as u64;
                next.consents.clear();
                ConsentRet::Count(n)
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn consent_op(rng: &mut Rng, _task: usize) -> ConsentOp {
    let p = rng.pick(2);
    match rng.below(10) {
        0..=3 => ConsentOp::Grant(p),
        4..=5 => ConsentOp::Revoke(p),
        6..=7 => ConsentOp::Get(p),
        8 => ConsentOp::RevokeAll,
        _ => ConsentOp::DeleteAll,
    }
}

fn consent_ret(r: StoreResult<credo_ports::Consent>) -> ConsentRet {
    match r {
        Ok(c) => ConsentRet::Consent(c.version, c.revoked_at.is_some()),
        Err(e) => ConsentRet::Err(e.kind()),
    }
}

fn exec_consent(s: Arc<Stores>, op: ConsentOp) -> BoxFuture<'static, ConsentRet> {
    Box::pin(async move {
        let Ok(st) = s.consents() else {
            return ConsentRet::Err("no store");
        };
        let (t, u) = (tenant(0), user_id(0));
        let count = |r: StoreResult<u64>| match r {
            Ok(n) => ConsentRet::Count(n),
            Err(e) => ConsentRet::Err(e.kind()),
        };
        match op {
            ConsentOp::Grant(p) => consent_ret(
                st.grant(GrantConsent {
                    id: consent_id(p),
                    tenant_id: t,
                    user_id: u,
                    purpose: CONSENT_PURPOSES[p as usize].into(),
                    expires_at: None,
                })
                .await,
            ),
            ConsentOp::Revoke(p) => {
                consent_ret(st.revoke(t, u, CONSENT_PURPOSES[p as usize]).await)
            }
            ConsentOp::Get(p) => match st.get(t, u, CONSENT_PURPOSES[p as usize]).await {
                Ok(Some(c)) => ConsentRet::Consent(c.version, c.revoked_at.is_some()),
                Ok(None) => ConsentRet::Absent,
                Err(e) => ConsentRet::Err(e.kind()),
            },
            ConsentOp::RevokeAll => count(st.revoke_all_for_user(t, u).await),
            ConsentOp::DeleteAll => count(st.delete_all_for_user(t, u).await),
        }
    })
}

/// The audit events a consent history must have left, by action, from its results alone
/// (whatever the order): every change is audited exactly once.
fn expected_consent_events(calls: &[Call<ConsentOp, ConsentRet>]) -> BTreeMap<&'static str, u64> {
    let mut m = BTreeMap::new();
    for c in calls {
        let (action, n) = match (&c.op, &c.ret) {
            (ConsentOp::Grant(_), ConsentRet::Consent(..)) => ("consent.granted", 1),
            (ConsentOp::Revoke(_), ConsentRet::Consent(..)) => ("consent.revoked", 1),
            (ConsentOp::RevokeAll, ConsentRet::Count(n)) => ("consent.revoked", *n),
            (ConsentOp::DeleteAll, ConsentRet::Count(n)) => ("consent.deleted", *n),
            _ => continue,
        };
        *m.entry(action).or_insert(0) += n;
    }
    m.retain(|_, n| *n > 0);
    m
}

async fn concurrent_consent_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, consent_op, exec_consent, |stores, calls| {
        Box::pin(async move {
            check(&ConsentSpec::default(), calls)?;
            // Nothing may change without its audit event, nor be audited without a change.
            let mut seen: BTreeMap<&'static str, u64> = BTreeMap::new();
            for e in super::drain(stores).await? {
                let action = match e.action.as_str() {
                    "consent.granted" => "consent.granted",
                    "consent.revoked" => "consent.revoked",
                    "consent.deleted" => "consent.deleted",
                    other => return Err(format!("unexpected audit action {other:?}")),
                };
                *seen.entry(action).or_insert(0) += 1;
            }
            let want = expected_consent_events(calls);
            super::eq("audit events by action", seen, want)
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Audit log: idempotent materialization of overlapping batches.

#[derive(Clone, Debug)]
enum AuditOp {
    Append(Vec<u8>),
    Get(u8),
    Count,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum AuditRet {
    Appended(u64, u64),
    Found(bool),
    Count(u64),
    Err(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct AuditSpec {
    ids: BTreeSet<u8>,
}

impl Spec for AuditSpec {
    type Op = AuditOp;
    type Ret = AuditRet;
    fn step(&self, op: &AuditOp, ret: &AuditRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            AuditOp::Append(batch) => {
                let (mut inserted, mut duplicates) = (0, 0);
                for id in batch {
                    if next.ids.insert(*id) {
                        inserted += 1;
                    } else {
                        duplicates += 1;
                    }
                }
                AuditRet::Appended(inserted, duplicates)
            }
            AuditOp::Get(id) => AuditRet::Found(self.ids.contains(id)),
            AuditOp::Count => AuditRet::Count(self.ids.len() as u64),
        };
        (expected == *ret).then_some(next)
    }
}

fn audit_op(rng: &mut Rng, _task: usize) -> AuditOp {
    match rng.below(8) {
        0..=4 => AuditOp::Append((0..1 + rng.below(4)).map(|_| rng.pick(8)).collect()),
        5..=6 => AuditOp::Get(rng.pick(8)),
        _ => AuditOp::Count,
    }
}

fn history_event(i: u8) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant(0),
        Stores::START,
        AuditCategory::Security,
        "auth.history",
    );
    e.id = event_id(u16::from(i));
    e
}

fn exec_audit(s: Arc<Stores>, op: AuditOp) -> BoxFuture<'static, AuditRet> {
    Box::pin(async move {
        let Ok(log) = s.audit_log() else {
            return AuditRet::Err("no store");
        };
        match op {
            AuditOp::Append(ids) => {
                let batch: Vec<AuditEvent> = ids.iter().map(|&i| history_event(i)).collect();
                match log.append_batch(&batch).await {
                    Ok(o) => AuditRet::Appended(o.inserted, o.duplicates),
                    Err(e) => AuditRet::Err(e.kind()),
                }
            }
            AuditOp::Get(i) => match log.get(tenant(0), event_id(u16::from(i))).await {
                Ok(found) => AuditRet::Found(found.is_some()),
                Err(e) => AuditRet::Err(e.kind()),
            },
            AuditOp::Count => match log.count(tenant(0), Default::default()).await {
                Ok(n) => AuditRet::Count(n),
                Err(e) => AuditRet::Err(e.kind()),
            },
        }
    })
}

async fn concurrent_audit_log_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, audit_op, exec_audit, |_, calls| {
        Box::pin(async move { check(&AuditSpec::default(), calls) })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Outbox: relays claiming, acking and releasing while events are recorded.

#[derive(Clone, Debug)]
enum OutboxOp {
    Record(u8),
    /// Claim up to n rows; the task keeps what it got for its next ack or release.
    Claim(usize),
    Ack,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum OutboxRet {
    Done,
    /// The claim's number (task * 100 + k) and the rows it got.
    Claimed(u32, BTreeSet<u8>),
    /// The claim acted on, the rows named, and how many the store confirmed.
    Acted(u32, BTreeSet<u8>, u64),
    Nothing,
    Err(&'static str),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct OutboxSpec {
    /// Recorded and not published: row -> holder claim, if any.
    pending: BTreeMap<u8, Option<u32>>,
    published: BTreeSet<u8>,
}

impl Spec for OutboxSpec {
    type Op = OutboxOp;
    type Ret = OutboxRet;
    fn step(&self, op: &OutboxOp, ret: &OutboxRet) -> Option<Self> {
        let mut next = self.clone();
        match (op, ret) {
            (OutboxOp::Record(i), OutboxRet::Done) => {
                if self.pending.contains_key(i) || self.published.contains(i) {
                    return None;
                }
                next.pending.insert(*i, None);
            }
            (OutboxOp::Claim(n), OutboxRet::Claimed(claim, got)) => {
                let free: BTreeSet<u8> = self
                    .pending
                    .iter()
                    .filter(|(_, h)| h.is_none())
                    .map(|(i, _)| *i)
                    .collect();
                // Unheld rows only, at most as many as asked for. Not necessarily as many as are
                // free: `FOR UPDATE SKIP LOCKED` passes over rows that a concurrent statement
                // has locked for a moment (another claim's candidates, an ack), by design; a
                // later claim takes them (the drain cases check that nothing is left behind).
                if !got.is_subset(&free) || got.len() > *n {
                    return None;
                }
                for i in got {
                    next.pending.insert(*i, Some(*claim));
                }
            }
            (OutboxOp::Ack, OutboxRet::Acted(claim, rows, n)) => {
                let held: Vec<u8> = rows
                    .iter()
                    .copied()
                    .filter(|i| self.pending.get(i) == Some(&Some(*claim)))
                    .collect();
                if held.len() as u64 != *n {
                    return None;
                }
                for i in held {
                    next.pending.remove(&i);
                    next.published.insert(i);
                }
            }
            (OutboxOp::Release, OutboxRet::Acted(claim, rows, n)) => {
                let held: Vec<u8> = rows
                    .iter()
                    .copied()
                    .filter(|i| self.pending.get(i) == Some(&Some(*claim)))
                    .collect();
                if held.len() as u64 != *n {
                    return None;
                }
                for i in held {
                    next.pending.insert(i, None);
                }
            }
            (OutboxOp::Ack | OutboxOp::Release, OutboxRet::Nothing) => {}
            _ => return None,
        }
        Some(next)
    }
}

fn outbox_op(rng: &mut Rng, task: usize) -> OutboxOp {
    match rng.below(8) {
        // Each task records its own rows, so a row is recorded once.
        0..=2 => OutboxOp::Record((task as u8) * 10 + rng.pick(10)),
        3..=4 => OutboxOp::Claim(1 + rng.below(3) as usize),
        5..=6 => OutboxOp::Ack,
        _ => OutboxOp::Release,
    }
}

fn outbox_event(i: u8) -> AuditEvent {
    // Every row its own subject, so order keys never hold one row behind another.
    let mut e = history_event(i);
    e.subject_user_id = Some(credo_ports::UserId::from_uuid(uuid::Uuid::from_u128(
        0xab00 + u128::from(i),
    )));
    e
}

/// A task's last claim, which its next ack or release acts on.
type Held = parking_lot::Mutex<BTreeMap<usize, (u32, ClaimToken, BTreeSet<u8>)>>;

fn exec_outbox_for(
    s: Arc<Stores>,
    op: OutboxOp,
    task: usize,
    held: Arc<Held>,
    seq: u32,
) -> BoxFuture<'static, OutboxRet> {
    Box::pin(async move {
        let (Ok(outbox), Ok(audit)) = (s.outbox(), s.audit()) else {
            return OutboxRet::Err("no store");
        };
        let index = |id: EventId| (0u8..40).find(|&i| event_id(u16::from(i)) == id);
        match op {
            OutboxOp::Record(i) => match audit.record(outbox_event(i)).await {
                Ok(()) => OutboxRet::Done,
                Err(e) => OutboxRet::Err(e.kind()),
            },
            OutboxOp::Claim(n) => match outbox.claim(n, Duration::from_secs(600)).await {
                Ok(c) => {
                    let got: BTreeSet<u8> = c
                        .records
                        .iter()
                        .filter_map(|r| index(r.message.id))
                        .collect();
                    let claim = task as u32 * 100 + seq;
                    held.lock().insert(task, (claim, c.token, got.clone()));
                    OutboxRet::Claimed(claim, got)
                }
                Err(e) => OutboxRet::Err(e.kind()),
            },
            OutboxOp::Ack | OutboxOp::Release => {
                let Some((claim, token, rows)) = held.lock().remove(&task) else {
                    return OutboxRet::Nothing;
                };
                let ids: Vec<EventId> = rows.iter().map(|&i| event_id(u16::from(i))).collect();
                let r = if matches!(op, OutboxOp::Ack) {
                    outbox.ack(token, &ids).await
                } else {
                    outbox.release(token, &ids).await
                };
                match r {
                    Ok(n) => OutboxRet::Acted(claim, rows, n),
                    Err(e) => OutboxRet::Err(e.kind()),
                }
            }
        }
    })
}

async fn concurrent_outbox_histories(ctx: &Ctx) -> Result<(), String> {
    // The generic driver knows nothing of per-task claims, so this port runs its own rounds.
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        let history: Arc<History<OutboxOp, OutboxRet>> = History::new();
        let held: Arc<Held> = Arc::default();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<OutboxOp>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| outbox_op(&mut rng, task)).collect())
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, plan)| {
                let (stores, history, barrier, held) = (
                    stores.clone(),
                    history.clone(),
                    barrier.clone(),
                    held.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut recorded = BTreeSet::new();
                    for (k, op) in plan.into_iter().enumerate() {
                        if let OutboxOp::Record(i) = op
                            && !recorded.insert(i)
                        {
                            continue;
                        }
                        let call = exec_outbox_for(
                            stores.clone(),
                            op.clone(),
                            task,
                            held.clone(),
                            k as u32,
                        );
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        check(&OutboxSpec::default(), &history.calls())
            .map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rate limits: 3 per second with a burst of 3, costs 1 or 2, at a clock that stands still.

#[derive(Clone, Debug)]
enum RateOp {
    Check(u8, u32),
    Peek(u8),
    Reset(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RateRet {
    Decision(bool, u32),
    Done,
    Err(&'static str),
}

fn history_policy() -> RateLimitPolicy {
    RateLimitPolicy::per(3, Duration::from_secs(1))
}

/// With time standing still, a GCRA key is just capacity used: 3 units, spent by admitted
/// requests, never by denied ones, given back whole by a reset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct RateSpec {
    used: u32,
}

impl Spec for RateSpec {
    type Op = RateOp;
    type Ret = RateRet;
    fn step(&self, op: &RateOp, ret: &RateRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            RateOp::Check(_, cost) => {
                if self.used + cost <= 3 {
                    next.used += cost;
                    RateRet::Decision(true, 3 - next.used)
                } else {
                    RateRet::Decision(false, 3 - self.used)
                }
            }
            RateOp::Peek(_) => {
                if self.used < 3 {
                    RateRet::Decision(true, 3 - self.used - 1)
                } else {
                    RateRet::Decision(false, 0)
                }
            }
            RateOp::Reset(_) => {
                next.used = 0;
                RateRet::Done
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn rate_op(rng: &mut Rng, _task: usize) -> RateOp {
    let key = rng.pick(2);
    match rng.below(10) {
        0..=6 => RateOp::Check(key, 1 + rng.below(2) as u32),
        7..=8 => RateOp::Peek(key),
        _ => RateOp::Reset(key),
    }
}

fn exec_rate(s: Arc<Stores>, op: RateOp) -> BoxFuture<'static, RateRet> {
    Box::pin(async move {
        let Ok(rl) = s.rate_limits() else {
            return RateRet::Err("no store");
        };
        let t = tenant(0);
        let key = |k: u8| format!("history-{k}");
        let decision = |r: StoreResult<credo_ports::Decision>| match r {
            Ok(d) => RateRet::Decision(d.allowed, d.remaining),
            Err(e) => RateRet::Err(e.kind()),
        };
        match op {
            RateOp::Check(k, cost) => decision(rl.check(t, &key(k), history_policy(), cost).await),
            RateOp::Peek(k) => decision(rl.peek(t, &key(k), history_policy()).await),
            RateOp::Reset(k) => match rl.reset(t, &key(k)).await {
                Ok(()) => RateRet::Done,
                Err(e) => RateRet::Err(e.kind()),
            },
        }
    })
}

async fn concurrent_rate_limit_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, rate_op, exec_rate, |_, calls| {
        Box::pin(async move {
            check_partitioned(
                calls,
                |op: &RateOp| match op {
                    RateOp::Check(k, _) | RateOp::Peek(k) | RateOp::Reset(k) => *k,
                },
                |_| RateSpec::default(),
            )
        })
    })
    .await
}
