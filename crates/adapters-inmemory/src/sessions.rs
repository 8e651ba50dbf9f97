use crate::mutants::{self, Switch};
use async_trait::async_trait;
use credo_ports::sessions::{validate_jti, validate_revocation};
use credo_ports::{
    Clock, NewSession, Session, SessionId, SessionStatus, SessionStore, StoreError, StoreResult,
    TenantId, Timestamp, UserId,
};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;

/// In-memory [`SessionStore`]. Each state change happens under the session's map entry lock,
/// so check and write are one step (exactly one of N concurrent revokes wins).
pub struct InMemorySessionStore {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sessions: DashMap<SessionId, Session>,
    by_user: DashMap<(TenantId, UserId), HashSet<SessionId>>,
    pub(crate) tokens: DashMap<(TenantId, String), Timestamp>,
    /// Single-session calls (create, get, every transition) and listings hold it shared;
    /// `revoke_all` and the purge hold it exclusively: revoking a user's sessions one entry at a
    /// time is then one atomic step, seen by nobody half done.
    gate: parking_lot::RwLock<()>,
    pub(crate) mutant: Switch,
}

impl InMemorySessionStore {
    pub(crate) fn new(clock: Arc<dyn Clock>, mutant: Switch) -> Self {
        Self {
            clock,
            sessions: DashMap::new(),
            by_user: DashMap::new(),
            tokens: DashMap::new(),
            gate: parking_lot::RwLock::new(()),
            mutant,
        }
    }

    pub(crate) fn live(&self, expires_at: Timestamp, now: Timestamp) -> bool {
        self.mutant.live(expires_at, now)
    }

    /// Applies `change` to the live session `(tenant, id)` under its entry lock.
    fn mutate(
        &self,
        tenant: TenantId,
        id: SessionId,
        change: impl FnOnce(&mut Session, Timestamp) -> StoreResult<()>,
    ) -> StoreResult<Session> {
        let _shared = self.gate.read();
        let now = self.clock.now();
        match self.sessions.get_mut(&id) {
            Some(mut s) if s.tenant_id == tenant && self.live(s.expires_at, now) => {
                change(&mut s, now)?;
                Ok(s.clone())
            }
            _ => Err(StoreError::not_found("session")),
        }
    }

    fn revoke_in_place(s: &mut Session, now: Timestamp) -> StoreResult<()> {
        if s.status == SessionStatus::Revoked {
            return Err(StoreError::InvalidState("session already revoked".into()));
        }
        s.status = SessionStatus::Revoked;
        s.revoked_at = Some(now);
        s.version += 1;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for InMemorySessionStore {
    async fn create(&self, new: NewSession) -> StoreResult<Session> {
        let now = self.clock.now();
        new.validate(now)?;
        let session = new.into_session(now);
        let _shared = self.gate.read();
        match self.sessions.entry(session.id) {
            Entry::Occupied(o) if self.live(o.get().expires_at, now) => {
                return Err(StoreError::Conflict(format!(
                    "session id {} already exists",
                    session.id
                )));
            }
            entry => {
                // Index first, under the entry lock, so a listing never misses a created session.
                self.by_user
                    .entry((session.tenant_id, session.user_id))
                    .or_default()
                    .insert(session.id);
                match entry {
                    Entry::Vacant(v) => {
                        v.insert(session.clone());
                    }
                    // An expired session no longer holds its id: replace it, index included.
                    Entry::Occupied(mut o) => {
                        let old = o.insert(session.clone());
                        if (old.tenant_id, old.user_id) != (session.tenant_id, session.user_id)
                            && let Some(mut set) =
                                self.by_user.get_mut(&(old.tenant_id, old.user_id))
                        {
                            set.remove(&old.id);
                        }
                    }
                }
            }
        }
        Ok(session)
    }

    async fn get(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>> {
        // Shared: never between the first and the last revocation of a revoke_all.
        let _shared = self.gate.read();
        let now = self.clock.now();
        Ok(self
            .sessions
            .get(&id)
            .filter(|s| s.tenant_id == tenant && self.live(s.expires_at, now))
            .map(|s| s.clone()))
    }

    async fn touch(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.mutate(tenant, id, |s, now| {
            if s.status == SessionStatus::Revoked {
                return Err(StoreError::InvalidState("session is revoked".into()));
            }
            if now > s.last_seen_at {
                s.last_seen_at = now;
                s.version += 1;
            }
            Ok(())
        })
    }

    async fn mark_refreshed(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.mutate(tenant, id, |s, now| {
            if s.status != SessionStatus::Active {
                return Err(StoreError::InvalidState(format!(
                    "session is {}",
                    s.status.as_str()
                )));
            }
            s.last_refreshed_at = Some(now);
            s.last_seen_at = s.last_seen_at.max(now);
            s.version += 1;
            Ok(())
        })
    }

    async fn activate(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.mutate(tenant, id, |s, _| {
            if s.status != SessionStatus::PendingConsent {
                return Err(StoreError::InvalidState(format!(
                    "session is {}",
                    s.status.as_str()
                )));
            }
            s.status = SessionStatus::Active;
            s.version += 1;
            Ok(())
        })
    }

    async fn revoke(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        if self.mutant.is(mutants::Mutant::RacyRevoke) {
            return mutants::racy_revoke(self, tenant, id).await;
        }
        self.mutate(tenant, id, Self::revoke_in_place)
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let _exclusive = self.gate.write();
        let now = self.clock.now();
        let ids: Vec<SessionId> = match self.by_user.get(&(tenant, user)) {
            Some(set) => set.iter().copied().collect(),
            None => return Ok(0),
        };
        let mut n = 0;
        for id in ids {
            // Absent, expired or moved sessions are simply not counted.
            if let Some(mut s) = self.sessions.get_mut(&id)
                && s.tenant_id == tenant
                && s.user_id == user
                && self.live(s.expires_at, now)
                && s.status != SessionStatus::Revoked
                && Self::revoke_in_place(&mut s, now).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn list_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<Vec<Session>> {
        let _shared = self.gate.read();
        let now = self.clock.now();
        let ids: Vec<SessionId> = match self.by_user.get(&(tenant, user)) {
            Some(set) => set.iter().copied().collect(),
            None => return Ok(Vec::new()),
        };
        let mut out: Vec<Session> = ids
            .iter()
            .filter_map(|id| self.sessions.get(id).map(|s| s.clone()))
            .filter(|s| {
                s.tenant_id == tenant
                    && s.user_id == user
                    && self.live(s.expires_at, now)
                    && s.status != SessionStatus::Revoked
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(self.mutant.listing(out))
    }

    async fn purge_expired(&self, limit: NonZeroU32) -> StoreResult<u64> {
        if self.mutant.is(mutants::Mutant::PurgeWithoutRecheck) {
            return mutants::purge_without_recheck(self, limit).await;
        }
        if self.mutant.is(mutants::Mutant::PurgeDoesNothing) {
            return Ok(mutants::purge_does_nothing(self, limit));
        }
        let now = self.clock.now();
        let limit = limit.get() as usize;
        let doomed: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|s| !self.live(s.expires_at, now))
            .map(|s| s.id)
            .take(limit)
            .collect();
        let mut gone = Vec::with_capacity(doomed.len());
        // Exclusive: a session created under a purged id between the two steps below would
        // otherwise lose its index entry (and vanish from listings and revoke_all).
        let exclusive = self.gate.write();
        for id in doomed {
            // Rechecked under the entry's lock: an id a concurrent create reused stays.
            if let Some((_, s)) = self
                .sessions
                .remove_if(&id, |_, s| !self.live(s.expires_at, now))
            {
                gone.push((s.tenant_id, s.user_id, s.id));
            }
        }
        for (tenant, user, id) in &gone {
            if let Some(mut set) = self.by_user.get_mut(&(*tenant, *user)) {
                set.remove(id);
            }
            self.by_user
                .remove_if(&(*tenant, *user), |_, set| set.is_empty());
        }
        drop(exclusive);
        let budget = limit - gone.len();
        let doomed_tokens: Vec<(TenantId, String)> = self
            .tokens
            .iter()
            .filter(|e| !self.live(*e.value(), now))
            .map(|e| e.key().clone())
            .take(budget)
            .collect();
        let mut tokens_gone = 0u64;
        for key in doomed_tokens {
            // Rechecked: a revocation renewed meanwhile stays.
            tokens_gone += u64::from(
                self.tokens
                    .remove_if(&key, |_, exp| !self.live(*exp, now))
                    .is_some(),
            );
        }
        if gone.len() + (tokens_gone as usize) < limit {
            self.sessions.shrink_to_fit();
            self.tokens.shrink_to_fit();
        }
        Ok(gone.len() as u64 + tokens_gone)
    }

    async fn revoke_token(
        &self,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = self.clock.now();
        validate_revocation(jti, expires_at, now)?;
        self.tokens
            .entry((tenant, jti.to_string()))
            .and_modify(|e| {
                *e = if self.live(*e, now) {
                    (*e).max(expires_at)
                } else {
                    expires_at
                };
            })
            .or_insert(expires_at);
        Ok(())
    }

    async fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> StoreResult<bool> {
        validate_jti(jti)?;
        let now = self.clock.now();
        Ok(self
            .tokens
            .get(&(tenant, jti.to_string()))
            .is_some_and(|e| self.live(*e, now)))
    }
}
