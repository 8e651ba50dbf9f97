//! The model's [`ConsentStore`].

use super::{Inner, World, events, rules};
use credo_ports::{
    Consent, ConsentFilter, ConsentStatus, ConsentStore, GrantConsent, StoreError, StoreResult,
    TenantId, Timestamp, UserId,
};
use std::sync::Arc;

/// Consents kept in `World::consents`, one per (tenant, user, purpose).
pub(crate) struct ModelConsents(pub(crate) Arc<Inner>);

/// The status of `c` at `now`: revoked if it was revoked (whatever its expiry), else expired
/// once `expires_at <= now`, else active.
pub(crate) fn status_at(c: &Consent, now: Timestamp) -> ConsentStatus {
    if c.revoked_at.is_some() {
        return ConsentStatus::Revoked;
    }
    match c.expires_at {
        Some(expires_at) if expires_at <= now => ConsentStatus::Expired,
        _ => ConsentStatus::Active,
    }
}

/// Index of the record for (tenant, user, purpose), if any.
fn position(w: &World, tenant: TenantId, user: UserId, purpose: &str) -> Option<usize> {
    w.consents
        .iter()
        .position(|c| c.tenant_id == tenant && c.user_id == user && c.purpose == purpose)
}

/// The user's records, sorted by purpose (the order of listings and of per-record events).
fn of_user(w: &World, tenant: TenantId, user: UserId) -> Vec<Consent> {
    let mut out: Vec<Consent> = w
        .consents
        .iter()
        .filter(|c| c.tenant_id == tenant && c.user_id == user)
        .cloned()
        .collect();
    out.sort_by(|a, b| a.purpose.cmp(&b.purpose));
    out
}

/// Revokes the record at `idx` at `now` and enqueues `consent.revoked`; the caller has checked
/// that it is active.
fn revoke_at(w: &mut World, idx: usize, now: Timestamp) -> Consent {
    let c = &mut w.consents[idx];
    c.revoked_at = Some(now);
    c.version += 1;
    let c = c.clone();
    w.enqueue(events::consent_revoked(&c, now), now);
    c
}

#[async_trait::async_trait]
impl ConsentStore for ModelConsents {
    async fn grant(&self, grant: GrantConsent) -> StoreResult<Consent> {
        let now = self.0.now();
        rules::grant(&grant, now)?;
        let mut w = self.0.world.lock();
        let consent = match position(&w, grant.tenant_id, grant.user_id, &grant.purpose) {
            // Renewal: the grant's id is ignored, the record keeps its own; granted now with
            // the grant's expiry, the revocation cleared, version + 1.
            Some(idx) => {
                let c = &mut w.consents[idx];
                c.granted_at = now;
                c.expires_at = grant.expires_at;
                c.revoked_at = None;
                c.version += 1;
                c.clone()
            }
            None => {
                // Consent ids are global: a new record may not reuse another record's id.
                if w.consents.iter().any(|c| c.id == grant.id) {
                    return Err(StoreError::Conflict(format!(
                        "consent id {} exists",
                        grant.id
                    )));
                }
                let created = Consent {
                    id: grant.id,
                    tenant_id: grant.tenant_id,
                    user_id: grant.user_id,
                    purpose: grant.purpose,
                    granted_at: now,
                    expires_at: grant.expires_at,
                    revoked_at: None,
                    version: 1,
                };
                w.consents.push(created.clone());
                created
            }
        };
        w.enqueue(events::consent_granted(&consent, now), now);
        Ok(consent)
    }

    async fn revoke(&self, tenant: TenantId, user: UserId, purpose: &str) -> StoreResult<Consent> {
        let now = self.0.now();
        rules::purpose(purpose)?;
        let mut w = self.0.world.lock();
        let Some(idx) = position(&w, tenant, user, purpose) else {
            return Err(StoreError::not_found("consent"));
        };
        let status = status_at(&w.consents[idx], now);
        if status != ConsentStatus::Active {
            return Err(StoreError::InvalidState(format!(
                "consent is {status:?}, not active"
            )));
        }
        Ok(revoke_at(&mut w, idx, now))
    }

    async fn get(
        &self,
        tenant: TenantId,
        user: UserId,
        purpose: &str,
    ) -> StoreResult<Option<Consent>> {
        rules::purpose(purpose)?;
        let w = self.0.world.lock();
        Ok(position(&w, tenant, user, purpose).map(|i| w.consents[i].clone()))
    }

    async fn list_for_user(
        &self,
        tenant: TenantId,
        user: UserId,
        filter: ConsentFilter,
    ) -> StoreResult<Vec<Consent>> {
        let now = self.0.now();
        if let Some(p) = &filter.purpose {
            rules::purpose(p)?;
        }
        let w = self.0.world.lock();
        Ok(of_user(&w, tenant, user)
            .into_iter()
            .filter(|c| filter.purpose.as_ref().is_none_or(|p| &c.purpose == p))
            .filter(|c| filter.status.is_none_or(|s| status_at(c, now) == s))
            .collect())
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let mut n = 0;
        for c in of_user(&w, tenant, user) {
            if status_at(&c, now) == ConsentStatus::Active {
                let idx = position(&w, tenant, user, &c.purpose).expect("listed just now");
                revoke_at(&mut w, idx, now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let doomed = of_user(&w, tenant, user);
        w.consents
            .retain(|c| !(c.tenant_id == tenant && c.user_id == user));
        for c in &doomed {
            w.enqueue(events::consent_deleted(c, now), now);
        }
        Ok(doomed.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{
        ConsentFilter, ConsentId, ConsentStatus, GrantConsent, TenantId, Timestamp, UserId,
    };
    use std::time::Duration;

    fn grant(t: TenantId, u: UserId, purpose: &str, expires_at: Option<Timestamp>) -> GrantConsent {
        GrantConsent {
            id: ConsentId::new(),
            tenant_id: t,
            user_id: u,
            purpose: purpose.into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn regrant_after_revoke_keeps_id_and_clears_revoked_at() {
        let (m, clock) = model();
        let c = m.consents();
        let (t, u) = (TenantId::new(), UserId::new());
        let first = c.grant(grant(t, u, "marketing", None)).await.unwrap();
        assert_eq!(first.version, 1);
        clock.advance(Duration::from_secs(1));
        let revoked = c.revoke(t, u, "marketing").await.unwrap();
        assert_eq!(revoked.revoked_at, Some(clock_now(&clock)));
        assert_eq!(
            c.revoke(t, u, "marketing").await.unwrap_err().kind(),
            "InvalidState"
        );
        clock.advance(Duration::from_secs(1));
        let exp = clock_now(&clock).saturating_add(Duration::from_secs(60));
        let renewed = c.grant(grant(t, u, "marketing", Some(exp))).await.unwrap();
        assert_eq!(renewed.id, first.id);
        assert_eq!(renewed.revoked_at, None);
        assert_eq!(renewed.granted_at, clock_now(&clock));
        assert_eq!(renewed.expires_at, Some(exp));
        assert_eq!(renewed.version, 3);
        // grant, revoke, grant.
        assert_eq!(m.outbox().depth().await.unwrap(), 3);
    }

    fn clock_now(c: &credo_ports::ManualClock) -> Timestamp {
        credo_ports::Clock::now(c)
    }

    #[tokio::test]
    async fn expired_consent_cannot_be_revoked_and_filters_apply() {
        let (m, clock) = model();
        let c = m.consents();
        let (t, u) = (TenantId::new(), UserId::new());
        let exp = T0.saturating_add(Duration::from_secs(10));
        c.grant(grant(t, u, "zeta", Some(exp))).await.unwrap();
        c.grant(grant(t, u, "alpha", None)).await.unwrap();
        c.grant(grant(t, u, "mid", None)).await.unwrap();
        c.grant(grant(TenantId::new(), u, "alpha", None))
            .await
            .unwrap();
        clock.set(exp);
        assert_eq!(
            c.revoke(t, u, "zeta").await.unwrap_err().kind(),
            "InvalidState"
        );
        assert_eq!(
            c.revoke(t, u, "nothing").await.unwrap_err().kind(),
            "NotFound"
        );
        assert_eq!(
            c.revoke(t, u, "Bad Purpose").await.unwrap_err().kind(),
            "InvalidInput"
        );
        let all: Vec<_> = c
            .list_for_user(t, u, ConsentFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.purpose)
            .collect();
        assert_eq!(all, ["alpha", "mid", "zeta"]);
        let expired = c
            .list_for_user(
                t,
                u,
                ConsentFilter {
                    status: Some(ConsentStatus::Expired),
                    ..ConsentFilter::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(expired.len(), 1);
        assert_eq!(c.revoke_all_for_user(t, u).await.unwrap(), 2);
        assert_eq!(c.revoke_all_for_user(t, u).await.unwrap(), 0);
        assert_eq!(c.delete_all_for_user(t, u).await.unwrap(), 3);
        assert_eq!(c.get(t, u, "alpha").await.unwrap(), None);
        // 4 grants, 2 revokes, 3 deletions.
        assert_eq!(m.outbox().depth().await.unwrap(), 9);
    }

    #[tokio::test]
    async fn new_grant_reusing_another_records_id_conflicts() {
        let (m, _) = model();
        let c = m.consents();
        let (t, u) = (TenantId::new(), UserId::new());
        let a = c.grant(grant(t, u, "a", None)).await.unwrap();
        let mut g = grant(t, u, "b", None);
        g.id = a.id;
        assert_eq!(c.grant(g).await.unwrap_err().kind(), "Conflict");
        // Renewing "a" with an unrelated id is fine: the id is ignored.
        assert_eq!(c.grant(grant(t, u, "a", None)).await.unwrap().id, a.id);
    }
}
