use crate::InMemoryOutbox;
use crate::mutants::{self, Switch};
use async_trait::async_trait;
use credo_ports::audit::events;
use credo_ports::{
    Clock, Consent, ConsentFilter, ConsentId, ConsentStatus, ConsentStore, GrantConsent,
    StoreError, StoreResult, TenantId, UserId, validate,
};
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// In-memory [`ConsentStore`]. All of a user's consents sit behind one map entry, so a change
/// and its audit event (enqueued under the same lock) are one atomic step.
pub struct InMemoryConsentStore {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) outbox: Arc<InMemoryOutbox>,
    pub(crate) by_user: DashMap<(TenantId, UserId), BTreeMap<String, Consent>>,
    pub(crate) ids: DashMap<ConsentId, ()>,
    pub(crate) mutant: Switch,
}

impl InMemoryConsentStore {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn new(clock: Arc<dyn Clock>, outbox: Arc<InMemoryOutbox>, mutant: Switch) -> Self {
        Self {
            clock,
            outbox,
            by_user: DashMap::new(),
            ids: DashMap::new(),
            mutant,
        }
    }
}

#[async_trait]
impl ConsentStore for InMemoryConsentStore {
    async fn grant(&self, grant: GrantConsent) -> StoreResult<Consent> {
        let now = self.clock.now();
        grant.validate(now)?;
        // Lock order: the user's entry, then the id index.
        let mut user = self
            .by_user
            .entry((grant.tenant_id, grant.user_id))
            .or_default();
        let existing = user.get(&grant.purpose).cloned();
        let reserve = match self.mutant.new_consent_id(existing.is_none()) {
            false => None,
            true => match self.ids.entry(grant.id) {
                dashmap::Entry::Occupied(_) => {
                    return Err(StoreError::Conflict(format!(
                        "consent id {} already exists",
                        grant.id
                    )));
                }
                dashmap::Entry::Vacant(v) => Some(v),
            },
        };
        let consent = self
            .mutant
            .renewed_consent(grant.clone().apply(existing, now), grant.id);
        self.outbox
            .enqueue([events::consent_granted(&consent, now)])?;
        if let Some(v) = reserve {
            v.insert(());
        }
        user.insert(consent.purpose.clone(), consent.clone());
        Ok(consent)
    }

    async fn revoke(&self, tenant: TenantId, user: UserId, purpose: &str) -> StoreResult<Consent> {
        validate::purpose(purpose)?;
        let now = self.clock.now();
        let mut consents = self
            .by_user
            .get_mut(&(tenant, user))
            .ok_or(StoreError::not_found("consent"))?;
        let c = consents
            .get_mut(purpose)
            .ok_or(StoreError::not_found("consent"))?;
        if c.status(now) != ConsentStatus::Active {
            return Err(StoreError::InvalidState("consent is not active".into()));
        }
        let mut revoked = c.clone();
        revoked.revoked_at = Some(now);
        revoked.version += 1;
        self.outbox
            .enqueue([events::consent_revoked(&revoked, now)])?;
        *c = revoked.clone();
        Ok(revoked)
    }

    async fn get(
        &self,
        tenant: TenantId,
        user: UserId,
        purpose: &str,
    ) -> StoreResult<Option<Consent>> {
        validate::purpose(purpose)?;
        Ok(self
            .by_user
            .get(&(tenant, user))
            .and_then(|m| m.get(purpose).cloned()))
    }

    async fn list_for_user(
        &self,
        tenant: TenantId,
        user: UserId,
        filter: ConsentFilter,
    ) -> StoreResult<Vec<Consent>> {
        if let Some(p) = &filter.purpose {
            validate::purpose(p)?;
        }
        let now = self.clock.now();
        let Some(consents) = self.by_user.get(&(tenant, user)) else {
            return Ok(Vec::new());
        };
        Ok(consents
            .values()
            .filter(|c| filter.purpose.as_ref().is_none_or(|p| &c.purpose == p))
            .filter(|c| filter.status.is_none_or(|s| c.status(now) == s))
            .cloned()
            .collect())
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.clock.now();
        let Some(mut consents) = self.by_user.get_mut(&(tenant, user)) else {
            return Ok(0);
        };
        let revoked: Vec<Consent> = consents
            .values()
            .filter(|c| c.status(now) == ConsentStatus::Active)
            .map(|c| {
                let mut c = c.clone();
                c.revoked_at = Some(now);
                c.version += 1;
                c
            })
            .collect();
        self.outbox
            .enqueue(revoked.iter().map(|c| events::consent_revoked(c, now)))?;
        for c in &revoked {
            consents.insert(c.purpose.clone(), c.clone());
        }
        Ok(revoked.len() as u64)
    }

    async fn delete_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.clock.now();
        if self.mutant.is(mutants::Mutant::EraseUnlocked) {
            return mutants::erase_unlocked(self, tenant, user).await;
        }
        let Some(mut consents) = self.by_user.get_mut(&(tenant, user)) else {
            return Ok(0);
        };
        self.outbox
            .enqueue(consents.values().map(|c| events::consent_deleted(c, now)))?;
        let removed = std::mem::take(&mut *consents);
        for c in removed.values() {
            self.ids.remove(&c.id);
        }
        drop(consents);
        self.by_user.remove_if(&(tenant, user), |_, m| m.is_empty());
        Ok(removed.len() as u64)
    }
}
