//! Users: one record per `(tenant, id)`, email unique per tenant (case-insensitive, trimmed).

use crate::page::{Cursor, Page, PageRequest};
use crate::{StoreResult, TenantId, Timestamp, UserId, validate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Whether a user may sign in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserStatus {
    /// May sign in.
    Active,
    /// Disabled.
    Inactive,
}

impl UserStatus {
    /// The stored spelling (`active`, `inactive`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id, chosen by the caller at creation.
    pub id: UserId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Email as given, trimmed (case kept); uniqueness compares it lower-cased.
    pub email: String,
    /// Whether the email was verified.
    pub email_verified: bool,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Active or inactive.
    pub status: UserStatus,
    /// When the record was created (store clock).
    pub created_at: Timestamp,
    /// When the record last changed (store clock).
    pub updated_at: Timestamp,
    /// Starts at 1 and increments on every change; used for optimistic concurrency.
    pub version: u64,
}

impl User {
    /// The keyset position of this user in [`UserStore::list`].
    #[must_use]
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id.0,
        }
    }
}

/// Input to [`UserStore::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// Id of the new user (callers usually pass `UserId::new()`).
    pub id: UserId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Email (validated, trimmed before storing).
    pub email: String,
    /// Whether the email is already verified.
    pub email_verified: bool,
    /// Given name (1..=256 bytes, no control characters).
    pub first_name: String,
    /// Family name (1..=256 bytes, no control characters).
    pub last_name: String,
    /// Initial status.
    pub status: UserStatus,
}

impl NewUser {
    /// An active, unverified user with a fresh id.
    pub fn new(tenant_id: TenantId, email: &str, first_name: &str, last_name: &str) -> Self {
        Self {
            id: UserId::new(),
            tenant_id,
            email: email.to_string(),
            email_verified: false,
            first_name: first_name.to_string(),
            last_name: last_name.to_string(),
            status: UserStatus::Active,
        }
    }

    /// Rejects bad input before any I/O.
    pub fn validate(&self) -> StoreResult<()> {
        validate::email(&self.email)?;
        validate::text("first_name", &self.first_name)?;
        validate::text("last_name", &self.last_name)
    }

    /// The record this input creates at `now` (email trimmed, version 1).
    #[must_use]
    pub fn into_user(self, now: Timestamp) -> User {
        User {
            id: self.id,
            tenant_id: self.tenant_id,
            email: validate::normalize_email(&self.email),
            email_verified: self.email_verified,
            first_name: self.first_name,
            last_name: self.last_name,
            status: self.status,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// Changes for [`UserStore::update`]; `None` leaves a field as it is. At least one must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserUpdate {
    /// New email (uniqueness re-checked).
    pub email: Option<String>,
    /// New verification flag.
    pub email_verified: Option<bool>,
    /// New given name.
    pub first_name: Option<String>,
    /// New family name.
    pub last_name: Option<String>,
    /// New status.
    pub status: Option<UserStatus>,
}

impl UserUpdate {
    /// Rejects an empty update or bad field values before any I/O.
    pub fn validate(&self) -> StoreResult<()> {
        if self.changed_fields().is_empty() {
            return Err(crate::StoreError::invalid("update", "no field to change"));
        }
        if let Some(e) = &self.email {
            validate::email(e)?;
        }
        if let Some(n) = &self.first_name {
            validate::text("first_name", n)?;
        }
        if let Some(n) = &self.last_name {
            validate::text("last_name", n)?;
        }
        Ok(())
    }

    /// Names of the fields this update sets (recorded in the `user.updated` audit event).
    #[must_use]
    pub fn changed_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.email.is_some() {
            f.push("email");
        }
        if self.email_verified.is_some() {
            f.push("email_verified");
        }
        if self.first_name.is_some() {
            f.push("first_name");
        }
        if self.last_name.is_some() {
            f.push("last_name");
        }
        if self.status.is_some() {
            f.push("status");
        }
        f
    }

    /// Applies the update to `user` at `now`: fields replaced, `updated_at` set, version + 1.
    pub fn apply(&self, user: &mut User, now: Timestamp) {
        if let Some(e) = &self.email {
            user.email = validate::normalize_email(e);
        }
        if let Some(v) = self.email_verified {
            user.email_verified = v;
        }
        if let Some(n) = &self.first_name {
            user.first_name = n.clone();
        }
        if let Some(n) = &self.last_name {
            user.last_name = n.clone();
        }
        if let Some(s) = self.status {
            user.status = s;
        }
        user.updated_at = now;
        user.version += 1;
    }
}

/// Stores users. Every create, update and delete records an audit event atomically with the
/// change (see [`crate::audit::events`]).
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates a user. `Conflict` if the id exists or the email (trimmed, case-folded) is taken
    /// in the tenant.
    async fn create(&self, user: NewUser) -> StoreResult<User>;
    /// The user with this id in this tenant.
    async fn get(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>>;
    /// The user with this email (trimmed, case-insensitive) in this tenant.
    async fn find_by_email(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>>;
    /// Returns the user with this email, creating it from `user` if none exists, in one atomic
    /// step. The flag is true when the user was created.
    async fn find_or_create(&self, user: NewUser) -> StoreResult<(User, bool)>;
    /// Applies `update`. `NotFound` if absent; `Conflict` if `expected_version` is given and
    /// differs, or if the new email is taken by another user of the tenant.
    async fn update(
        &self,
        tenant: TenantId,
        id: UserId,
        update: UserUpdate,
        expected_version: Option<u64>,
    ) -> StoreResult<User>;
    /// Deletes the user. `NotFound` if absent.
    async fn delete(&self, tenant: TenantId, id: UserId) -> StoreResult<()>;
    /// One page of the tenant's users ordered by `(created_at, id)`.
    async fn list(&self, tenant: TenantId, page: PageRequest) -> StoreResult<Page<User>>;
    /// Number of users in the tenant.
    async fn count(&self, tenant: TenantId) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored spelling is the serialized one (the `status` column).
    #[test]
    fn status_spelling_matches_serde() {
        for (s, word) in [
            (UserStatus::Active, "active"),
            (UserStatus::Inactive, "inactive"),
        ] {
            assert_eq!(s.as_str(), word);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(word));
        }
    }
}
