use crate::InMemoryOutbox;
use crate::mutants::{self, Switch};
use async_trait::async_trait;
use credo_ports::audit::events;
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    Clock, NewUser, StoreError, StoreResult, TenantId, Timestamp, User, UserId, UserStore,
    UserUpdate, validate,
};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct TenantUsers {
    pub(crate) by_id: HashMap<UserId, User>,
    pub(crate) by_email: HashMap<String, UserId>,
    order: BTreeSet<(Timestamp, UserId)>,
}

/// In-memory [`UserStore`]. One lock per tenant makes the email check and the insert (and the
/// outbox enqueue) one atomic step; a global id index keeps ids unique across tenants.
pub struct InMemoryUserStore {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) outbox: Arc<InMemoryOutbox>,
    pub(crate) tenants: DashMap<TenantId, TenantUsers>,
    owners: DashMap<UserId, TenantId>,
    pub(crate) mutant: Switch,
}

enum Mode {
    Create,
    FindOrCreate,
}

impl InMemoryUserStore {
    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }

    pub(crate) fn new(clock: Arc<dyn Clock>, outbox: Arc<InMemoryOutbox>, mutant: Switch) -> Self {
        Self {
            clock,
            outbox,
            tenants: DashMap::new(),
            owners: DashMap::new(),
            mutant,
        }
    }

    fn key(&self, email: &str) -> String {
        self.mutant.email_key(email)
    }

    fn insert(&self, new: NewUser, mode: Mode) -> StoreResult<(User, bool)> {
        new.validate()?;
        let now = self.clock.now();
        let key = self.key(&new.email);
        // Lock order: owners entry, then the tenant; never the reverse while nested.
        let owner = self.owners.entry(new.id);
        let mut tenant = self.tenants.entry(new.tenant_id).or_default();
        if let Some(existing) = self.mutant.email_owner(&tenant.by_email, &key) {
            return match mode {
                Mode::FindOrCreate => Ok((tenant.by_id[&existing].clone(), false)),
                Mode::Create => Err(StoreError::Conflict(
                    "email already registered in this tenant".into(),
                )),
            };
        }
        let Entry::Vacant(owner) = owner else {
            return Err(StoreError::Conflict(format!(
                "user id {} already exists",
                new.id
            )));
        };
        let user = new.into_user(now);
        let late = self
            .mutant
            .record(&self.outbox, vec![events::user_created(&user, now)])?;
        tenant.by_email.insert(key, user.id);
        tenant.order.insert((user.created_at, user.id));
        tenant.by_id.insert(user.id, user.clone());
        self.mutant.record_late(&self.outbox, late)?;
        owner.insert(user.tenant_id);
        Ok((user, true))
    }
}

#[async_trait]
impl UserStore for InMemoryUserStore {
    async fn create(&self, user: NewUser) -> StoreResult<User> {
        self.insert(user, Mode::Create).map(|(u, _)| u)
    }

    async fn get(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
        Ok(self
            .tenants
            .get(&tenant)
            .and_then(|t| t.by_id.get(&id).cloned()))
    }

    async fn find_by_email(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>> {
        validate::email(email)?;
        let key = self.key(email);
        Ok(self.tenants.get(&tenant).and_then(|t| {
            self.mutant
                .email_owner(&t.by_email, &key)
                .map(|id| t.by_id[&id].clone())
        }))
    }

    async fn find_or_create(&self, user: NewUser) -> StoreResult<(User, bool)> {
        self.insert(user, Mode::FindOrCreate)
    }

    async fn update(
        &self,
        tenant: TenantId,
        id: UserId,
        update: UserUpdate,
        expected_version: Option<u64>,
    ) -> StoreResult<User> {
        if self.mutant.is(mutants::Mutant::UpdateUnlocked) {
            return mutants::update_unlocked(self, tenant, id, update, expected_version).await;
        }
        update.validate()?;
        let now = self.clock.now();
        let Some(mut t) = self.tenants.get_mut(&tenant) else {
            return Err(StoreError::not_found("user"));
        };
        let t = &mut *t;
        let Some(current) = t.by_id.get(&id) else {
            return Err(StoreError::not_found("user"));
        };
        if let Some(v) = expected_version.filter(|v| *v != current.version) {
            return Err(StoreError::Conflict(format!(
                "version mismatch: expected {v}, found {}",
                current.version
            )));
        }
        let old_key = self.key(&current.email);
        let new_key = update.email.as_deref().map(|e| self.key(e));
        if let Some(k) = &new_key
            && self
                .mutant
                .email_owner(&t.by_email, k)
                .is_some_and(|owner| owner != id)
        {
            return Err(StoreError::Conflict(
                "email already registered in this tenant".into(),
            ));
        }
        let mut user = current.clone();
        update.apply(&mut user, now);
        self.outbox
            .enqueue([events::user_updated(&user, &update.changed_fields(), now)])?;
        t.by_id.insert(id, user.clone());
        if let Some(k) = new_key {
            t.by_email.remove(&old_key);
            t.by_email.insert(k, id);
        }
        Ok(user)
    }

    async fn delete(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        let now = self.clock.now();
        // Lock order as in `insert`: the id's owner entry, then the tenant. The owner entry
        // is held until the user is gone from both, so the id is never free while its user
        // is still visible, nor taken while its email is already free.
        let Entry::Occupied(owner) = self.owners.entry(id) else {
            return Err(StoreError::not_found("user"));
        };
        if *owner.get() != tenant {
            return Err(StoreError::not_found("user"));
        }
        {
            let Some(mut t) = self.tenants.get_mut(&tenant) else {
                return Err(StoreError::not_found("user"));
            };
            if !t.by_id.contains_key(&id) {
                return Err(StoreError::not_found("user"));
            }
            self.outbox
                .enqueue([events::user_deleted(tenant, id, now)])?;
            let user = t.by_id.remove(&id).expect("checked above");
            let key = self.key(&user.email);
            t.by_email.remove(&key);
            t.order.remove(&(user.created_at, id));
        }
        owner.remove();
        Ok(())
    }

    async fn list(&self, tenant: TenantId, page: PageRequest) -> StoreResult<Page<User>> {
        page.validate()?;
        let Some(t) = self.tenants.get(&tenant) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let start = match page.after {
            Some(c) => Bound::Excluded((c.at, UserId::from_uuid(c.id))),
            None => Bound::Unbounded,
        };
        let items = t
            .order
            .range((start, Bound::Unbounded))
            .take(page.limit + 1)
            .map(|(_, id)| t.by_id[id].clone())
            .collect();
        Ok(Page::from_overfetch(items, page.limit, User::cursor))
    }

    async fn count(&self, tenant: TenantId) -> StoreResult<u64> {
        Ok(self
            .tenants
            .get(&tenant)
            .map_or(0, |t| t.by_id.len() as u64))
    }
}
