//! Consents: one record per `(tenant, user, purpose)`, status derived at read time.

use crate::{ConsentId, StoreError, StoreResult, TenantId, Timestamp, UserId, validate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Status of a consent, derived from `revoked_at` and `expires_at` at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConsentStatus {
    /// Granted, not revoked, not expired.
    Active,
    /// `expires_at <= now`, not revoked.
    Expired,
    /// Revoked (wins over expired).
    Revoked,
}

/// A stored consent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Id; kept when the consent is renewed.
    pub id: ConsentId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Who consented.
    pub user_id: UserId,
    /// What for (see [`validate::purpose`]).
    pub purpose: String,
    /// Time of the latest grant.
    pub granted_at: Timestamp,
    /// Expiry of the latest grant, if any.
    pub expires_at: Option<Timestamp>,
    /// Set by revoke, cleared by a new grant.
    pub revoked_at: Option<Timestamp>,
    /// Starts at 1, increments on every change.
    pub version: u64,
}

impl Consent {
    /// Revoked, else expired (`expires_at <= now`), else active.
    #[must_use]
    pub fn status(&self, now: Timestamp) -> ConsentStatus {
        if self.revoked_at.is_some() {
            ConsentStatus::Revoked
        } else if self.expires_at.is_some_and(|e| e <= now) {
            ConsentStatus::Expired
        } else {
            ConsentStatus::Active
        }
    }
}

/// Input to [`ConsentStore::grant`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantConsent {
    /// Id used only if no record exists yet for (tenant, user, purpose).
    pub id: ConsentId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Who consents.
    pub user_id: UserId,
    /// What for.
    pub purpose: String,
    /// Optional expiry, later than now.
    pub expires_at: Option<Timestamp>,
}

impl GrantConsent {
    /// Rejects bad input before any I/O; `now` is the store clock.
    pub fn validate(&self, now: Timestamp) -> StoreResult<()> {
        validate::purpose(&self.purpose)?;
        if let Some(e) = self.expires_at {
            e.check("expires_at")?;
        }
        if self.expires_at.is_some_and(|e| e <= now) {
            return Err(StoreError::invalid(
                "expires_at",
                "must be later than the grant time",
            ));
        }
        Ok(())
    }

    /// Applies this grant at `now`: renews `existing` (same id, revocation cleared, version + 1)
    /// or creates a new record.
    #[must_use]
    pub fn apply(self, existing: Option<Consent>, now: Timestamp) -> Consent {
        match existing {
            Some(mut c) => {
                c.granted_at = now;
                c.expires_at = self.expires_at;
                c.revoked_at = None;
                c.version += 1;
                c
            }
            None => Consent {
                id: self.id,
                tenant_id: self.tenant_id,
                user_id: self.user_id,
                purpose: self.purpose,
                granted_at: now,
                expires_at: self.expires_at,
                revoked_at: None,
                version: 1,
            },
        }
    }
}

/// Filter for [`ConsentStore::list_for_user`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentFilter {
    /// Only this purpose.
    pub purpose: Option<String>,
    /// Only consents with this status at now.
    pub status: Option<ConsentStatus>,
}

/// Stores consents. Every state change records an audit event atomically with the change.
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// Creates or renews the consent for (tenant, user, purpose).
    async fn grant(&self, grant: GrantConsent) -> StoreResult<Consent>;
    /// Revokes it. `NotFound` if no record, `InvalidState` if not active.
    async fn revoke(&self, tenant: TenantId, user: UserId, purpose: &str) -> StoreResult<Consent>;
    /// The record for (tenant, user, purpose), whatever its status.
    async fn get(
        &self,
        tenant: TenantId,
        user: UserId,
        purpose: &str,
    ) -> StoreResult<Option<Consent>>;
    /// The user's consents matching `filter`, ordered by purpose.
    async fn list_for_user(
        &self,
        tenant: TenantId,
        user: UserId,
        filter: ConsentFilter,
    ) -> StoreResult<Vec<Consent>>;
    /// Revokes every active consent of the user; returns how many.
    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64>;
    /// Erases every consent record of the user; returns how many.
    async fn delete_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64>;
}
