//! Sessions and the token revocation list.

use crate::{SessionId, StoreError, StoreResult, TenantId, Timestamp, UserId, validate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;

/// Lifecycle of a session: `pending_consent -> active -> revoked`; revoked is terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionStatus {
    /// Created, waiting for the user's consent.
    PendingConsent,
    /// Usable.
    Active,
    /// Revoked; kept (and returned by `get`) until it expires.
    Revoked,
}

impl SessionStatus {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::PendingConsent => "pending_consent",
            SessionStatus::Active => "active",
            SessionStatus::Revoked => "revoked",
        }
    }
}

/// Optional facts about the device a session was opened from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// User agent string.
    pub user_agent: Option<String>,
    /// Client IP address (never logged raw).
    pub ip_address: Option<String>,
    /// Device identifier chosen by the client.
    pub device_id: Option<String>,
    /// Human-readable device name.
    pub device_name: Option<String>,
}

impl Device {
    fn validate(&self) -> StoreResult<()> {
        validate::optional_text("user_agent", self.user_agent.as_deref())?;
        validate::optional_text("ip_address", self.ip_address.as_deref())?;
        validate::optional_text("device_id", self.device_id.as_deref())?;
        validate::optional_text("device_name", self.device_name.as_deref())
    }
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Id, chosen by the caller.
    pub id: SessionId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// The user the session belongs to.
    pub user_id: UserId,
    /// OAuth client that opened it.
    pub client_id: String,
    /// Granted scopes (non-empty).
    pub scopes: Vec<String>,
    /// Lifecycle state.
    pub status: SessionStatus,
    /// Device facts.
    pub device: Device,
    /// Creation time (store clock).
    pub created_at: Timestamp,
    /// The session is gone once `expires_at <= now`.
    pub expires_at: Timestamp,
    /// Last activity; only moves forward.
    pub last_seen_at: Timestamp,
    /// Last token refresh, if any.
    pub last_refreshed_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Starts at 1, increments on every change.
    pub version: u64,
}

impl Session {
    /// True while `now < expires_at`.
    #[must_use]
    pub fn is_live(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }
}

/// Input to [`SessionStore::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSession {
    /// Id of the new session.
    pub id: SessionId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owner.
    pub user_id: UserId,
    /// OAuth client id.
    pub client_id: String,
    /// Scopes: 1 to 64, each a valid text field, no duplicates.
    pub scopes: Vec<String>,
    /// `PendingConsent` or `Active` (a session cannot be created revoked).
    pub status: SessionStatus,
    /// Device facts.
    pub device: Device,
    /// Must be later than the store clock's now.
    pub expires_at: Timestamp,
}

impl NewSession {
    /// Rejects bad input before any I/O; `now` is the store clock.
    pub fn validate(&self, now: Timestamp) -> StoreResult<()> {
        validate::text("client_id", &self.client_id)?;
        if self.scopes.is_empty() {
            return Err(StoreError::invalid(
                "scopes",
                "at least one scope is required",
            ));
        }
        if self.scopes.len() > validate::MAX_SCOPES {
            return Err(StoreError::invalid("scopes", "at most 64 scopes"));
        }
        for (i, s) in self.scopes.iter().enumerate() {
            validate::text("scopes", s)?;
            if s.chars().any(char::is_whitespace) {
                return Err(StoreError::invalid(
                    "scopes",
                    "a scope must not contain whitespace",
                ));
            }
            if self.scopes[..i].contains(s) {
                return Err(StoreError::invalid(
                    "scopes",
                    format!("duplicate scope {s:?}"),
                ));
            }
        }
        if self.status == SessionStatus::Revoked {
            return Err(StoreError::invalid(
                "status",
                "a session cannot be created revoked",
            ));
        }
        self.device.validate()?;
        self.expires_at.check("expires_at")?;
        if self.expires_at <= now {
            return Err(StoreError::invalid(
                "expires_at",
                "must be later than the creation time",
            ));
        }
        Ok(())
    }

    /// The record this input creates at `now`.
    #[must_use]
    pub fn into_session(self, now: Timestamp) -> Session {
        Session {
            id: self.id,
            tenant_id: self.tenant_id,
            user_id: self.user_id,
            client_id: self.client_id,
            scopes: self.scopes,
            status: self.status,
            device: self.device,
            created_at: now,
            expires_at: self.expires_at,
            last_seen_at: now,
            last_refreshed_at: None,
            revoked_at: None,
            version: 1,
        }
    }
}

/// Rejects a token id (JWT `jti`) that is empty, over-long or has control characters.
pub fn validate_jti(jti: &str) -> StoreResult<()> {
    validate::text("jti", jti)
}

/// Rejects a token revocation before any I/O: a bad `jti`, an `expires_at` outside the storable
/// range, or one not later than `now` (the store clock).
pub fn validate_revocation(jti: &str, expires_at: Timestamp, now: Timestamp) -> StoreResult<()> {
    validate_jti(jti)?;
    expires_at.check("expires_at")?;
    if expires_at <= now {
        return Err(StoreError::invalid("expires_at", "must be later than now"));
    }
    Ok(())
}

/// Stores sessions and revoked token ids. Expiry is evaluated against the store's clock:
/// physical TTLs are only a garbage-collection safety net.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session. `Conflict` if a live session (in any tenant) holds the id; an expired
    /// one does not (it is replaced), since backends with physical TTLs forget it anyway.
    async fn create(&self, session: NewSession) -> StoreResult<Session>;
    /// The session, while `now < expires_at` (revoked sessions are returned with their status).
    async fn get(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>>;
    /// Records activity: `last_seen_at = max(last_seen_at, now)`. `NotFound` if absent or
    /// expired, `InvalidState` if revoked.
    async fn touch(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session>;
    /// Records a token refresh at now (also moves `last_seen_at` forward). `NotFound` if absent
    /// or expired, `InvalidState` unless active.
    async fn mark_refreshed(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session>;
    /// `pending_consent -> active`. `NotFound` if absent or expired, `InvalidState` otherwise.
    async fn activate(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session>;
    /// Revokes the session. `NotFound` if absent or expired; `InvalidState` if already revoked.
    /// Under concurrent calls exactly one succeeds.
    async fn revoke(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session>;
    /// Revokes every live, unrevoked session of the user; returns how many.
    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64>;
    /// Every live (unexpired, unrevoked) session of the user, newest first by
    /// `(created_at, id)`, with no cap.
    async fn list_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<Vec<Session>>;
    /// Deletes at most `limit` expired records of every tenant (expired sessions first, then
    /// expired token revocations); returns how many were removed, so fewer than `limit` means
    /// none is left. A record a concurrent write made live again is kept.
    async fn purge_expired(&self, limit: NonZeroU32) -> StoreResult<u64>;
    /// Marks a token id revoked until `expires_at` (which must be later than now). Revoking it
    /// again keeps the later of the two expiries.
    async fn revoke_token(
        &self,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// True while the token id is revoked (false once its revocation expired).
    async fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_session(scopes: usize) -> NewSession {
        NewSession {
            id: SessionId::new(),
            tenant_id: TenantId::new(),
            user_id: UserId::new(),
            client_id: "web".into(),
            scopes: (0..scopes).map(|i| format!("s{i}")).collect(),
            status: SessionStatus::Active,
            device: Device::default(),
            expires_at: Timestamp::from_secs(60),
        }
    }

    /// The stored spelling is the serialized one (the `status` column, Redis hashes).
    #[test]
    fn status_spelling_matches_serde() {
        for (s, word) in [
            (SessionStatus::PendingConsent, "pending_consent"),
            (SessionStatus::Active, "active"),
            (SessionStatus::Revoked, "revoked"),
        ] {
            assert_eq!(s.as_str(), word);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(word));
        }
    }

    /// Live strictly before `expires_at`, gone at it.
    #[test]
    fn a_session_is_live_until_exactly_its_expiry() {
        let s = new_session(1).into_session(Timestamp::EPOCH);
        let at = s.expires_at.as_micros();
        assert!(s.is_live(Timestamp::from_micros(at - 1)));
        assert!(!s.is_live(Timestamp::from_micros(at)));
        assert!(!s.is_live(Timestamp::from_micros(at + 1)));
    }

    #[test]
    fn at_most_64_scopes() {
        assert!(new_session(64).validate(Timestamp::EPOCH).is_ok());
        let err = new_session(65).validate(Timestamp::EPOCH).unwrap_err();
        assert_eq!(err.kind(), "InvalidInput");
    }
}
