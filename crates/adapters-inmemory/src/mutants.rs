//! Deliberate bugs the conformance suite must catch. They exist only to prove the suite's
//! strength (see `crates/conformance/tests/mutants.rs`); the constructor that enables them is
//! behind the `mutants` feature.
//!
//! Every line of deliberately wrong behaviour lives in this file: the stores only ask a
//! [`Switch`] what to do, through calls that carry no operator of their own. `cargo xtask
//! mutants` excludes this file (`.cargo/mutants.toml`), so the mutation score of the adapter
//! counts real code only.

/// One deliberately broken behaviour. Public (and constructible) only with the `mutants`
/// feature; without it the stores still ask their `Switch`, which is always off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "mutants"), allow(dead_code))]
pub enum Mutant {
    /// Email uniqueness compares emails case-sensitively.
    CaseSensitiveEmail,
    /// A session or token counts as live while `now <= expires_at` (should be `now < expires_at`).
    ExpiryInclusive,
    /// A denied rate-limit request still consumes capacity.
    DeniedConsumes,
    /// Revoke checks the status, yields, then writes: concurrent revokes all "succeed".
    RacyRevoke,
    /// Renewing a consent creates a new id instead of keeping the record's.
    RegrantNewId,
    /// `list_for_user` returns at most 100 sessions.
    CappedSessionList,
    /// An outbox claim hands out every unheld row, ignoring order keys (so two relays can
    /// publish one subject's events out of order).
    ClaimIgnoresOrderKeys,
    /// The rows of a key held by a live claim take places in a claim's batch although none
    /// of them is handed out: once `batch` of them queue up behind a dead relay's claim,
    /// every claim comes back empty until the lease ends (the claim rule before migration
    /// 0007).
    HeldKeysFillTheBatch,
    /// Ack and release act on pending rows whoever holds them (a relay whose lease ran out
    /// confirms or gives back another relay's rows).
    AckIgnoresToken,
    /// A row the sink rejected is never set aside: it is retried forever and holds its key.
    NeverSetAside,
    /// Erasure reads a user's consents, yields, then deletes whatever is there by condition:
    /// a grant committed in between is deleted without being counted or audited (the
    /// read-then-write class of `DELETE ... WHERE` after a separate `SELECT`).
    EraseUnlocked,
    /// The token purge reads the expired revocations, yields, then deletes those keys without
    /// rechecking: a revocation renewed in between is deleted (the batched `DELETE ... WHERE
    /// key IN (SELECT ...)` whose outer statement does not repeat the condition).
    PurgeWithoutRecheck,
    /// User creation writes the user, then its audit event as a second step (the event
    /// written after the change's transaction committed): when the event write fails, the
    /// user stays, unrecorded.
    EventOutsideChange,
    /// The session purge reports success and removes nothing.
    PurgeDoesNothing,
    /// A user update reads the record, yields, then writes its copy back (a missing row
    /// lock: concurrent updates lose each other's changes and versions repeat).
    UpdateUnlocked,
    /// Email keys fold ASCII letters only (`lower()` in a C collation): `ÉVE@x` and `éve@x`
    /// become two users.
    AsciiOnlyEmailFold,
    /// Emails are compared as `LIKE` patterns: `_` and `%` in a stored address match any
    /// character(s), so `a_b@x` collides with `axb@x`.
    EmailLikePattern,
}

use crate::consents::InMemoryConsentStore;
use crate::sessions::InMemorySessionStore;
use crate::users::InMemoryUserStore;
use credo_ports::audit::events;
use credo_ports::outbox::Disposition;
use credo_ports::{
    Clock, Consent, ConsentId, RateLimitPolicy, Session, SessionId, SessionStatus, StoreError,
    StoreResult, TenantId, Timestamp, User, UserId, UserUpdate, validate,
};
use std::time::Duration;

#[cfg(feature = "mutants")]
impl crate::InMemoryStores {
    /// Stores with one deliberate bug switched on; only for proving the conformance suite.
    #[doc(hidden)]
    pub fn with_mutant(
        clock: std::sync::Arc<dyn Clock>,
        config: crate::InMemoryConfig,
        mutant: Mutant,
    ) -> Self {
        Self::build(clock, config, Switch(Some(mutant)))
    }
}

/// Which deliberate bug, if any, a store runs with. The correct stores hold `Switch::default()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Switch(pub(crate) Option<Mutant>);

impl Switch {
    /// Whether `mutant` is the one switched on.
    pub(crate) fn is(self, mutant: Mutant) -> bool {
        self.0 == Some(mutant)
    }

    /// The key under which a user's email is unique.
    pub(crate) fn email_key(self, email: &str) -> String {
        if self.is(Mutant::CaseSensitiveEmail) {
            return email.trim().to_string();
        }
        if self.is(Mutant::AsciiOnlyEmailFold) {
            return email.trim().to_ascii_lowercase();
        }
        validate::email_key(email)
    }

    /// Records `events` before the change (correct), or hands them back to be recorded after
    /// it by [`Switch::record_late`] (`EventOutsideChange`).
    pub(crate) fn record(
        self,
        outbox: &crate::InMemoryOutbox,
        events: Vec<credo_ports::AuditEvent>,
    ) -> StoreResult<Vec<credo_ports::AuditEvent>> {
        if self.is(Mutant::EventOutsideChange) {
            return Ok(events);
        }
        outbox.enqueue(events)?;
        Ok(Vec::new())
    }

    /// Records what [`Switch::record`] handed back (nothing, unless `EventOutsideChange`).
    pub(crate) fn record_late(
        self,
        outbox: &crate::InMemoryOutbox,
        late: Vec<credo_ports::AuditEvent>,
    ) -> StoreResult<()> {
        if late.is_empty() {
            return Ok(());
        }
        outbox.enqueue(late)
    }

    /// The owner of email key `key` (correct: an exact match).
    pub(crate) fn email_owner(
        self,
        by_email: &std::collections::HashMap<String, UserId>,
        key: &str,
    ) -> Option<UserId> {
        if self.is(Mutant::EmailLikePattern) {
            let mut keys: Vec<&String> = by_email.keys().collect();
            keys.sort();
            return keys
                .into_iter()
                .find(|k| like(k.as_bytes(), key.as_bytes()))
                .map(|k| by_email[k]);
        }
        by_email.get(key).copied()
    }

    /// Whether a session or token that expires at `expires_at` is live at `now`.
    pub(crate) fn live(self, expires_at: Timestamp, now: Timestamp) -> bool {
        if self.is(Mutant::ExpiryInclusive) {
            return now <= expires_at;
        }
        now < expires_at
    }

    /// What a denied check leaves as the key's TAT (correct: the TAT it had).
    pub(crate) fn denied_tat(
        self,
        tat: Timestamp,
        now: Timestamp,
        policy: &RateLimitPolicy,
        cost: u32,
    ) -> Timestamp {
        if self.is(Mutant::DeniedConsumes) {
            return Timestamp::from_micros(
                tat.max(now).as_micros() + policy.emission_interval_us() * i64::from(cost),
            );
        }
        tat
    }

    /// Whether a grant must reserve a new consent id (correct: only for a new purpose).
    pub(crate) fn new_consent_id(self, purpose_is_new: bool) -> bool {
        purpose_is_new || self.is(Mutant::RegrantNewId)
    }

    /// The id a renewed consent ends up with (correct: the record's own).
    pub(crate) fn renewed_consent(self, mut consent: Consent, grant_id: ConsentId) -> Consent {
        if self.is(Mutant::RegrantNewId) {
            consent.id = grant_id;
        }
        consent
    }

    /// A user's session listing as returned (correct: all of it).
    pub(crate) fn listing(self, mut sessions: Vec<Session>) -> Vec<Session> {
        if self.is(Mutant::CappedSessionList) {
            sessions.truncate(100);
        }
        sessions
    }

    /// Whether a claim passes over an unheld row whose key an earlier held row blocks
    /// (correct: always).
    pub(crate) fn holds_back(self, key_blocked: bool) -> bool {
        key_blocked && !self.is(Mutant::ClaimIgnoresOrderKeys)
    }

    /// Whether an unheld pending row takes a place in a claim's batch (correct: when it is
    /// handed out, and only then).
    pub(crate) fn takes_a_place(self, handed_out: bool, key_blocked: bool) -> bool {
        handed_out || (key_blocked && self.is(Mutant::HeldKeysFillTheBatch))
    }

    /// Whether a caller may ack or release a pending row (correct: only its own claim's).
    pub(crate) fn may_settle(self, own_claim: bool, held: bool) -> bool {
        own_claim || (self.is(Mutant::AckIgnoresToken) && held)
    }

    /// What becomes of a rejected row (correct: what the relay asked for).
    pub(crate) fn disposition(self, then: Disposition) -> Disposition {
        match then {
            Disposition::SetAside if self.is(Mutant::NeverSetAside) => {
                Disposition::RetryAfter(Duration::from_secs(1))
            }
            other => other,
        }
    }
}

/// `RacyRevoke`: checks the status, yields, then writes; concurrent revokes all "succeed".
pub(crate) async fn racy_revoke(
    store: &InMemorySessionStore,
    tenant: TenantId,
    id: SessionId,
) -> StoreResult<Session> {
    let now = store.clock.now();
    let seen = store.sessions.get(&id).map(|s| s.clone());
    let Some(s) = seen.filter(|s| s.tenant_id == tenant && store.mutant.live(s.expires_at, now))
    else {
        return Err(StoreError::not_found("session"));
    };
    if s.status == SessionStatus::Revoked {
        return Err(StoreError::InvalidState("session already revoked".into()));
    }
    tokio::task::yield_now().await;
    let mut s = store
        .sessions
        .get_mut(&id)
        .ok_or_else(|| StoreError::not_found("session"))?;
    s.status = SessionStatus::Revoked;
    s.revoked_at = Some(now);
    s.version += 1;
    Ok(s.clone())
}

/// `PurgeWithoutRecheck`: reads the expired revocations, yields, then deletes those keys
/// whatever they hold by then.
pub(crate) async fn purge_without_recheck(
    store: &InMemorySessionStore,
    limit: std::num::NonZeroU32,
) -> StoreResult<u64> {
    let now = store.clock.now();
    let expired: Vec<(TenantId, String)> = store
        .tokens
        .iter()
        .filter(|e| !store.mutant.live(*e.value(), now))
        .map(|e| e.key().clone())
        .take(limit.get() as usize)
        .collect();
    tokio::task::yield_now().await;
    for key in &expired {
        store.tokens.remove(key);
    }
    Ok(expired.len() as u64)
}

/// `EraseUnlocked`: reads a user's consents, yields, then deletes whatever is there.
pub(crate) async fn erase_unlocked(
    store: &InMemoryConsentStore,
    tenant: TenantId,
    user: UserId,
) -> StoreResult<u64> {
    let now = store.clock.now();
    let read: Vec<Consent> = store
        .by_user
        .get(&(tenant, user))
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    tokio::task::yield_now().await;
    if let Some((_, all)) = store.by_user.remove(&(tenant, user)) {
        for c in all.values() {
            store.ids.remove(&c.id);
        }
    }
    for c in &read {
        store.outbox.enqueue([events::consent_deleted(c, now)])?;
    }
    Ok(read.len() as u64)
}

/// SQL `LIKE`: `_` matches one character, `%` any run (bytes here: enough for the bug).
fn like(text: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|i| like(&text[i..], rest)),
        Some((b'_', rest)) => !text.is_empty() && like(&text[1..], rest),
        Some((c, rest)) => text.first() == Some(c) && like(&text[1..], rest),
    }
}

/// `PurgeDoesNothing`: counts what a purge would remove, and removes nothing.
pub(crate) fn purge_does_nothing(store: &InMemorySessionStore, limit: std::num::NonZeroU32) -> u64 {
    let now = store.clock.now();
    let sessions = store
        .sessions
        .iter()
        .filter(|s| !store.mutant.live(s.expires_at, now))
        .count();
    let tokens = store
        .tokens
        .iter()
        .filter(|e| !store.mutant.live(*e.value(), now))
        .count();
    ((sessions + tokens) as u64).min(u64::from(limit.get()))
}

/// `UpdateUnlocked`: reads the user, yields, then writes its updated copy back unchecked.
pub(crate) async fn update_unlocked(
    store: &InMemoryUserStore,
    tenant: TenantId,
    id: UserId,
    update: UserUpdate,
    expected_version: Option<u64>,
) -> StoreResult<User> {
    update.validate()?;
    let now = store.clock.now();
    let current = store
        .tenants
        .get(&tenant)
        .and_then(|t| t.by_id.get(&id).cloned())
        .ok_or_else(|| StoreError::not_found("user"))?;
    if let Some(v) = expected_version.filter(|v| *v != current.version) {
        return Err(StoreError::Conflict(format!(
            "version mismatch: expected {v}, found {}",
            current.version
        )));
    }
    tokio::task::yield_now().await;
    let mut user = current.clone();
    update.apply(&mut user, now);
    let mut t = store
        .tenants
        .get_mut(&tenant)
        .ok_or_else(|| StoreError::not_found("user"))?;
    if let Some(email) = &update.email {
        let new_key = store.mutant.email_key(email);
        if t.by_email.get(&new_key).is_some_and(|owner| *owner != id) {
            return Err(StoreError::Conflict(
                "email already registered in this tenant".into(),
            ));
        }
        t.by_email.remove(&store.mutant.email_key(&current.email));
        t.by_email.insert(new_key, id);
    }
    store
        .outbox
        .enqueue([events::user_updated(&user, &update.changed_fields(), now)])?;
    t.by_id.insert(id, user.clone());
    Ok(user)
}
