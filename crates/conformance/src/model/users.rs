//! The model's [`UserStore`].

use super::{Inner, World, events, page_of, rules};
use credo_ports::{
    Cursor, NewUser, Page, PageRequest, StoreError, StoreResult, TenantId, Timestamp, User, UserId,
    UserStore, UserUpdate,
};
use std::sync::Arc;

/// Users kept in `World::users`; ids are global, emails unique per tenant by their key
/// (`rules::email_key`).
pub(crate) struct ModelUsers(pub(crate) Arc<Inner>);

/// A user's position in listings: `(created_at, id)`.
fn position(u: &User) -> Cursor {
    Cursor {
        at: u.created_at,
        id: u.id.0,
    }
}

impl World {
    fn user_by_email(&self, tenant: TenantId, email: &str) -> Option<&User> {
        let key = rules::email_key(email);
        self.users
            .iter()
            .find(|u| u.tenant_id == tenant && rules::email_key(&u.email) == key)
    }

    /// Inserts a validated new user: `Conflict` on an id taken in any tenant or an email taken
    /// in the tenant. Enqueues `user.created` with it.
    fn insert_user(&mut self, new: NewUser, now: Timestamp) -> StoreResult<User> {
        if self.users.iter().any(|u| u.id == new.id) {
            return Err(StoreError::Conflict(format!("user id {} exists", new.id)));
        }
        if self.user_by_email(new.tenant_id, &new.email).is_some() {
            return Err(StoreError::Conflict("email already taken in tenant".into()));
        }
        // Stored as given but for the email's stored form; version 1.
        let user = User {
            id: new.id,
            tenant_id: new.tenant_id,
            email: rules::stored_email(&new.email),
            email_verified: new.email_verified,
            first_name: new.first_name,
            last_name: new.last_name,
            status: new.status,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        self.users.push(user.clone());
        self.enqueue(events::user_created(&user, now), now);
        Ok(user)
    }
}

#[async_trait::async_trait]
impl UserStore for ModelUsers {
    async fn create(&self, user: NewUser) -> StoreResult<User> {
        let now = self.0.now();
        rules::new_user(&user)?;
        self.0.world.lock().insert_user(user, now)
    }

    async fn get(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
        let w = self.0.world.lock();
        Ok(w.users
            .iter()
            .find(|u| u.tenant_id == tenant && u.id == id)
            .cloned())
    }

    async fn find_by_email(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>> {
        rules::email(email)?;
        let w = self.0.world.lock();
        Ok(w.user_by_email(tenant, email).cloned())
    }

    async fn find_or_create(&self, user: NewUser) -> StoreResult<(User, bool)> {
        let now = self.0.now();
        rules::new_user(&user)?;
        let mut w = self.0.world.lock();
        if let Some(existing) = w.user_by_email(user.tenant_id, &user.email) {
            return Ok((existing.clone(), false));
        }
        w.insert_user(user, now).map(|u| (u, true))
    }

    async fn update(
        &self,
        tenant: TenantId,
        id: UserId,
        update: UserUpdate,
        expected_version: Option<u64>,
    ) -> StoreResult<User> {
        let now = self.0.now();
        rules::user_update(&update)?;
        let mut w = self.0.world.lock();
        let Some(idx) = w
            .users
            .iter()
            .position(|u| u.tenant_id == tenant && u.id == id)
        else {
            return Err(StoreError::not_found("user"));
        };
        if let Some(expected) = expected_version
            && expected != w.users[idx].version
        {
            return Err(StoreError::Conflict(format!(
                "expected version {expected}, found {}",
                w.users[idx].version
            )));
        }
        if let Some(email) = &update.email
            && w.user_by_email(tenant, email).is_some_and(|u| u.id != id)
        {
            return Err(StoreError::Conflict("email already taken in tenant".into()));
        }
        // Every field the update sets is replaced (the email in its stored form); every
        // accepted update is a change: `updated_at` is now and the version goes up by one.
        let user = &mut w.users[idx];
        if let Some(email) = &update.email {
            user.email = rules::stored_email(email);
        }
        if let Some(verified) = update.email_verified {
            user.email_verified = verified;
        }
        if let Some(first) = &update.first_name {
            user.first_name = first.clone();
        }
        if let Some(last) = &update.last_name {
            user.last_name = last.clone();
        }
        if let Some(status) = update.status {
            user.status = status;
        }
        user.updated_at = now;
        user.version += 1;
        let user = user.clone();
        w.enqueue(
            events::user_updated(&user, &rules::changed_fields(&update), now),
            now,
        );
        Ok(user)
    }

    async fn delete(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let before = w.users.len();
        w.users.retain(|u| !(u.tenant_id == tenant && u.id == id));
        if w.users.len() == before {
            return Err(StoreError::not_found("user"));
        }
        w.enqueue(events::user_deleted(tenant, id, now), now);
        Ok(())
    }

    async fn list(&self, tenant: TenantId, page: PageRequest) -> StoreResult<Page<User>> {
        rules::page(&page)?;
        let w = self.0.world.lock();
        let mut users: Vec<User> = w
            .users
            .iter()
            .filter(|u| u.tenant_id == tenant)
            .filter(|u| page.after.is_none_or(|after| position(u) > after))
            .cloned()
            .collect();
        users.sort_by_key(position);
        Ok(page_of(users, page.limit, position))
    }

    async fn count(&self, tenant: TenantId) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.users.iter().filter(|u| u.tenant_id == tenant).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{NewUser, PageRequest, TenantId, UserStatus, UserUpdate};
    use std::time::Duration;

    fn upd_email(e: &str) -> UserUpdate {
        UserUpdate {
            email: Some(e.into()),
            ..UserUpdate::default()
        }
    }

    #[tokio::test]
    async fn email_conflict_is_case_folded_and_trimmed_and_per_tenant() {
        let (m, _) = model();
        let users = m.users();
        let t = TenantId::new();
        let a = users
            .create(NewUser::new(t, " Alice@Example.com ", "A", "L"))
            .await
            .unwrap();
        assert_eq!(a.email, "Alice@Example.com", "trimmed, case kept");
        let err = users
            .create(NewUser::new(t, "alice@EXAMPLE.COM", "B", "L"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "Conflict");
        // Another tenant may use the same email.
        let other = TenantId::new();
        users
            .create(NewUser::new(other, "alice@example.com", "C", "L"))
            .await
            .unwrap();
        // Lookup is case-insensitive and tenant-scoped.
        let found = users.find_by_email(t, "ALICE@example.com").await.unwrap();
        assert_eq!(found.map(|u| u.id), Some(a.id));
        assert_eq!(users.count(t).await.unwrap(), 1);
        // Ids are global: reusing one in another tenant conflicts.
        let mut dup = NewUser::new(TenantId::new(), "z@example.com", "Z", "Z");
        dup.id = a.id;
        assert_eq!(users.create(dup).await.unwrap_err().kind(), "Conflict");
        // Only the two successful creates were audited.
        assert_eq!(m.outbox().depth().await.unwrap(), 2);
    }

    #[tokio::test]
    async fn invalid_input_wins_over_not_found() {
        let (m, _) = model();
        let users = m.users();
        let err = users
            .update(
                TenantId::new(),
                credo_ports::UserId::new(),
                UserUpdate::default(),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "InvalidInput");
        let err = users
            .find_by_email(TenantId::new(), "nope")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "InvalidInput");
    }

    #[tokio::test]
    async fn update_checks_version_and_email_of_others_only() {
        let (m, clock) = model();
        let users = m.users();
        let t = TenantId::new();
        let a = users
            .create(NewUser::new(t, "a@example.com", "A", "L"))
            .await
            .unwrap();
        let b = users
            .create(NewUser::new(t, "b@example.com", "B", "L"))
            .await
            .unwrap();
        let err = users
            .update(t, a.id, upd_email("B@example.com"), None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "Conflict");
        let err = users
            .update(t, a.id, upd_email("x@example.com"), Some(7))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "Conflict");
        clock.advance(Duration::from_secs(1));
        // Changing the case of one's own email is fine.
        let a2 = users
            .update(t, a.id, upd_email("A@Example.com"), Some(1))
            .await
            .unwrap();
        assert_eq!((a2.version, a2.email.as_str()), (2, "A@Example.com"));
        assert_eq!(a2.updated_at, T0.saturating_add(Duration::from_secs(1)));
        assert_eq!(a2.created_at, T0);
        // Other tenant: not found.
        let err = users
            .update(
                TenantId::new(),
                b.id,
                UserUpdate {
                    status: Some(UserStatus::Inactive),
                    ..UserUpdate::default()
                },
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "NotFound");
        users.delete(t, b.id).await.unwrap();
        assert_eq!(users.delete(t, b.id).await.unwrap_err().kind(), "NotFound");
        // create a, create b, update a, delete b.
        assert_eq!(m.outbox().depth().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn find_or_create_returns_existing_without_event() {
        let (m, _) = model();
        let users = m.users();
        let t = TenantId::new();
        let (a, created) = users
            .find_or_create(NewUser::new(t, "a@example.com", "A", "L"))
            .await
            .unwrap();
        assert!(created);
        let (again, created) = users
            .find_or_create(NewUser::new(t, " A@EXAMPLE.com", "X", "Y"))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, a);
        assert_eq!(m.outbox().depth().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn list_paginates_by_created_at_then_id() {
        let (m, clock) = model();
        let users = m.users();
        let t = TenantId::new();
        let mut all = Vec::new();
        for i in 0..7 {
            // Two users per instant, so ties on created_at are broken by id.
            if i % 2 == 0 {
                clock.advance(Duration::from_secs(1));
            }
            let u = users
                .create(NewUser::new(t, &format!("u{i}@example.com"), "F", "L"))
                .await
                .unwrap();
            all.push(u);
        }
        users
            .create(NewUser::new(TenantId::new(), "x@example.com", "F", "L"))
            .await
            .unwrap();
        all.sort_by_key(|u| (u.created_at, u.id));
        let mut seen = Vec::new();
        let mut page = PageRequest::first(3);
        loop {
            let p = users.list(t, page).await.unwrap();
            assert!(p.items.len() <= 3);
            seen.extend(p.items);
            match p.next {
                Some(c) => page.after = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, all);
        // An exact multiple of the limit ends without an empty trailing page.
        let p = users.list(t, PageRequest::first(7)).await.unwrap();
        assert_eq!((p.items.len(), p.next), (7, None));
        assert_eq!(
            users
                .list(t, PageRequest::first(0))
                .await
                .unwrap_err()
                .kind(),
            "InvalidInput"
        );
    }
}
