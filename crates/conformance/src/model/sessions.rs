//! The model's [`SessionStore`] and token revocation list.

use super::{Inner, RevokedToken, remove_up_to, rules};
use credo_ports::{
    NewSession, Session, SessionId, SessionStatus, SessionStore, StoreError, StoreResult, TenantId,
    Timestamp, UserId,
};
use std::num::NonZeroU32;
use std::sync::Arc;

/// Sessions kept in `World::sessions`; expired ones stay there (invisible) until purged.
pub(crate) struct ModelSessions(pub(crate) Arc<Inner>);

/// True when `s` is visible at `now` to a caller of `tenant`.
fn visible(s: &Session, tenant: TenantId, id: SessionId, now: Timestamp) -> bool {
    s.tenant_id == tenant && s.id == id && now < s.expires_at
}

/// Revokes `s` at `now`; the caller has checked it is not revoked yet.
fn revoke_at(s: &mut Session, now: Timestamp) {
    s.status = SessionStatus::Revoked;
    s.revoked_at = Some(now);
    s.version += 1;
}

impl ModelSessions {
    /// Runs `f` on the live session `(tenant, id)` under the lock; `NotFound` if it is absent,
    /// of another tenant, or expired at now. Returns the session as `f` left it.
    fn mutate(
        &self,
        tenant: TenantId,
        id: SessionId,
        f: impl FnOnce(&mut Session, Timestamp) -> StoreResult<()>,
    ) -> StoreResult<Session> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let Some(s) = w.sessions.iter_mut().find(|s| visible(s, tenant, id, now)) else {
            return Err(StoreError::not_found("session"));
        };
        f(s, now)?;
        Ok(s.clone())
    }
}

#[async_trait::async_trait]
impl SessionStore for ModelSessions {
    async fn create(&self, session: NewSession) -> StoreResult<Session> {
        let now = self.0.now();
        rules::new_session(&session, now)?;
        let mut w = self.0.world.lock();
        // Ids are global; an expired session no longer holds its id (it is replaced).
        w.sessions
            .retain(|s| !(s.id == session.id && s.expires_at <= now));
        if w.sessions.iter().any(|s| s.id == session.id) {
            return Err(StoreError::Conflict(format!(
                "session id {} exists",
                session.id
            )));
        }
        // Created now, seen now, never refreshed nor revoked, version 1.
        let s = Session {
            id: session.id,
            tenant_id: session.tenant_id,
            user_id: session.user_id,
            client_id: session.client_id,
            scopes: session.scopes,
            status: session.status,
            device: session.device,
            created_at: now,
            expires_at: session.expires_at,
            last_seen_at: now,
            last_refreshed_at: None,
            revoked_at: None,
            version: 1,
        };
        w.sessions.push(s.clone());
        Ok(s)
    }

    async fn get(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>> {
        let now = self.0.now();
        let w = self.0.world.lock();
        Ok(w.sessions
            .iter()
            .find(|s| visible(s, tenant, id, now))
            .cloned())
    }

    async fn touch(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.mutate(tenant, id, |s, now| {
            if s.status == SessionStatus::Revoked {
                return Err(StoreError::InvalidState("session is revoked".into()));
            }
            // last_seen_at only moves forward; a no-op touch is not a change.
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
                    "session is {}, not active",
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
                    "session is {}, not pending_consent",
                    s.status.as_str()
                )));
            }
            s.status = SessionStatus::Active;
            s.version += 1;
            Ok(())
        })
    }

    async fn revoke(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.mutate(tenant, id, |s, now| {
            if s.status == SessionStatus::Revoked {
                return Err(StoreError::InvalidState("session already revoked".into()));
            }
            revoke_at(s, now);
            Ok(())
        })
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let mut n = 0;
        for s in w.sessions.iter_mut().filter(|s| {
            s.tenant_id == tenant
                && s.user_id == user
                && now < s.expires_at
                && s.status != SessionStatus::Revoked
        }) {
            revoke_at(s, now);
            n += 1;
        }
        Ok(n)
    }

    async fn list_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<Vec<Session>> {
        let now = self.0.now();
        let w = self.0.world.lock();
        let mut out: Vec<Session> = w
            .sessions
            .iter()
            .filter(|s| {
                s.tenant_id == tenant
                    && s.user_id == user
                    && now < s.expires_at
                    && s.status != SessionStatus::Revoked
            })
            .cloned()
            .collect();
        // Newest first.
        out.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(out)
    }

    async fn purge_expired(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let sessions = remove_up_to(&mut w.sessions, limit, |s| s.expires_at <= now);
        let Some(rest) = NonZeroU32::new(limit.get() - sessions as u32) else {
            return Ok(sessions);
        };
        Ok(sessions + remove_up_to(&mut w.revoked_tokens, rest, |r| r.expires_at <= now))
    }

    async fn revoke_token(
        &self,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = self.0.now();
        rules::token_revocation(jti, expires_at, now)?;
        let mut w = self.0.world.lock();
        match w
            .revoked_tokens
            .iter_mut()
            .find(|r| r.tenant == tenant && r.jti == jti)
        {
            // An entry still in force keeps the later expiry; an expired one is replaced.
            Some(r) if r.expires_at > now => r.expires_at = r.expires_at.max(expires_at),
            Some(r) => r.expires_at = expires_at,
            None => w.revoked_tokens.push(RevokedToken {
                tenant,
                jti: jti.to_string(),
                expires_at,
            }),
        }
        Ok(())
    }

    async fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> StoreResult<bool> {
        let now = self.0.now();
        rules::jti(jti)?;
        let w = self.0.world.lock();
        Ok(w.revoked_tokens
            .iter()
            .any(|r| r.tenant == tenant && r.jti == jti && now < r.expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{Device, NewSession, SessionId, SessionStatus, TenantId, Timestamp, UserId};
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn new_session(t: TenantId, u: UserId, expires_at: Timestamp) -> NewSession {
        NewSession {
            id: SessionId::new(),
            tenant_id: t,
            user_id: u,
            client_id: "client".into(),
            scopes: vec!["openid".into()],
            status: SessionStatus::PendingConsent,
            device: Device::default(),
            expires_at,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test]
    async fn session_expiring_exactly_now_is_gone() {
        let (m, clock) = model();
        let s = m.sessions();
        let (t, u) = (TenantId::new(), UserId::new());
        let exp = T0.saturating_add(secs(10));
        let created = s.create(new_session(t, u, exp)).await.unwrap();
        clock.set(exp.saturating_sub(Duration::from_micros(1)));
        assert!(s.get(t, created.id).await.unwrap().is_some());
        clock.set(exp);
        assert_eq!(s.get(t, created.id).await.unwrap(), None);
        assert_eq!(s.touch(t, created.id).await.unwrap_err().kind(), "NotFound");
        assert_eq!(
            s.revoke(t, created.id).await.unwrap_err().kind(),
            "NotFound"
        );
        assert!(s.list_for_user(t, u).await.unwrap().is_empty());
        // An expired session no longer holds its id: creating it again replaces it.
        let mut again = new_session(t, u, exp.saturating_add(secs(10)));
        again.id = created.id;
        s.create(again).await.unwrap();
        assert_eq!(s.purge_expired(NonZeroU32::MAX).await.unwrap(), 0);
        // Creating one that expires at now is invalid input.
        assert_eq!(
            s.create(new_session(t, u, exp)).await.unwrap_err().kind(),
            "InvalidInput"
        );
    }

    #[tokio::test]
    async fn lifecycle_and_second_revoke_is_invalid_state() {
        let (m, clock) = model();
        let s = m.sessions();
        let (t, u) = (TenantId::new(), UserId::new());
        let exp = T0.saturating_add(secs(3600));
        let x = s.create(new_session(t, u, exp)).await.unwrap();
        assert_eq!(x.version, 1);
        assert_eq!(
            s.mark_refreshed(t, x.id).await.unwrap_err().kind(),
            "InvalidState"
        );
        // Touch at the creation instant changes nothing.
        assert_eq!(s.touch(t, x.id).await.unwrap().version, 1);
        clock.advance(secs(5));
        let x = s.touch(t, x.id).await.unwrap();
        assert_eq!((x.version, x.last_seen_at), (2, T0.saturating_add(secs(5))));
        // The clock going backwards never moves last_seen_at back.
        clock.set(T0);
        let x = s.touch(t, x.id).await.unwrap();
        assert_eq!((x.version, x.last_seen_at), (2, T0.saturating_add(secs(5))));
        let x = s.activate(t, x.id).await.unwrap();
        assert_eq!((x.status, x.version), (SessionStatus::Active, 3));
        assert_eq!(
            s.activate(t, x.id).await.unwrap_err().kind(),
            "InvalidState"
        );
        let x = s.mark_refreshed(t, x.id).await.unwrap();
        assert_eq!(x.last_refreshed_at, Some(T0));
        assert_eq!(x.last_seen_at, T0.saturating_add(secs(5)));
        assert_eq!(x.version, 4);
        // Other tenant sees nothing.
        assert_eq!(
            s.revoke(TenantId::new(), x.id).await.unwrap_err().kind(),
            "NotFound"
        );
        let x = s.revoke(t, x.id).await.unwrap();
        assert_eq!(
            (x.status, x.revoked_at, x.version),
            (SessionStatus::Revoked, Some(T0), 5)
        );
        assert_eq!(s.revoke(t, x.id).await.unwrap_err().kind(), "InvalidState");
        assert_eq!(s.touch(t, x.id).await.unwrap_err().kind(), "InvalidState");
        // Still returned by get with its status, but not listed.
        assert_eq!(
            s.get(t, x.id).await.unwrap().map(|s| s.status),
            Some(SessionStatus::Revoked)
        );
        assert!(s.list_for_user(t, u).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn list_newest_first_and_revoke_all_counts_live_unrevoked() {
        let (m, clock) = model();
        let s = m.sessions();
        let (t, u) = (TenantId::new(), UserId::new());
        let short = s
            .create(new_session(t, u, T0.saturating_add(secs(1))))
            .await
            .unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            clock.advance(secs(1));
            let x = s
                .create(new_session(t, u, T0.saturating_add(secs(100))))
                .await
                .unwrap();
            ids.push(x.id);
        }
        s.create(new_session(t, UserId::new(), T0.saturating_add(secs(100))))
            .await
            .unwrap();
        s.revoke(t, ids[0]).await.unwrap();
        let listed: Vec<_> = s
            .list_for_user(t, u)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(listed, vec![ids[2], ids[1]]);
        assert_eq!(s.revoke_all_for_user(t, u).await.unwrap(), 2);
        assert_eq!(s.revoke_all_for_user(t, u).await.unwrap(), 0);
        assert_eq!(s.get(t, short.id).await.unwrap(), None);
    }

    #[tokio::test]
    async fn token_revocation_keeps_later_expiry_and_lapses() {
        let (m, clock) = model();
        let s = m.sessions();
        let t = TenantId::new();
        assert_eq!(
            s.revoke_token(t, "j", T0).await.unwrap_err().kind(),
            "InvalidInput"
        );
        assert_eq!(
            s.is_token_revoked(t, "").await.unwrap_err().kind(),
            "InvalidInput"
        );
        s.revoke_token(t, "j", T0.saturating_add(secs(20)))
            .await
            .unwrap();
        s.revoke_token(t, "j", T0.saturating_add(secs(10)))
            .await
            .unwrap();
        assert!(s.is_token_revoked(t, "j").await.unwrap());
        assert!(!s.is_token_revoked(TenantId::new(), "j").await.unwrap());
        clock.set(T0.saturating_add(secs(15)));
        assert!(
            s.is_token_revoked(t, "j").await.unwrap(),
            "later expiry kept"
        );
        clock.set(T0.saturating_add(secs(20)));
        assert!(!s.is_token_revoked(t, "j").await.unwrap());
        // An expired entry is replaced, not extended from its old value.
        s.revoke_token(t, "j", T0.saturating_add(secs(21)))
            .await
            .unwrap();
        s.revoke_token(t, "k", T0.saturating_add(secs(30)))
            .await
            .unwrap();
        clock.set(T0.saturating_add(secs(21)));
        assert!(!s.is_token_revoked(t, "j").await.unwrap());
        assert_eq!(s.purge_expired(NonZeroU32::MAX).await.unwrap(), 1);
        assert!(s.is_token_revoked(t, "k").await.unwrap());
    }
}
