//! The embedded in-memory backend of credo-storage: every port, on [`dashmap`] and short
//! critical sections, for tests, development and single-instance services.
//!
//! ```
//! use std::sync::Arc;
//! use credo_adapters_inmemory::InMemoryStores;
//! use credo_ports::{NewUser, SystemClock, TenantId};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let stores = InMemoryStores::new(Arc::new(SystemClock));
//! let users = stores.users();
//! let tenant = TenantId::new();
//! let alice = users.create(NewUser::new(tenant, "alice@example.com", "Alice", "Liddell")).await?;
//! assert_eq!(users.find_by_email(tenant, " ALICE@example.com").await?, Some(alice));
//! // The creation was recorded in the outbox in the same critical section.
//! assert_eq!(stores.outbox().depth().await?, 1);
//! # Ok::<(), credo_ports::StoreError>(())
//! # }).unwrap();
//! ```

mod capabilities;
pub use capabilities::CAPABILITIES;
mod audit;
mod consents;
mod leases;
mod mutants;
mod outbox;
mod rate_limit;
mod sessions;
mod users;

pub use audit::InMemoryAuditStore;
pub use consents::InMemoryConsentStore;
pub use leases::InMemoryLeases;
#[cfg(feature = "mutants")]
pub use mutants::Mutant;
use mutants::Switch;
pub use outbox::InMemoryOutbox;
pub use rate_limit::InMemoryRateLimitStore;
pub use sessions::InMemorySessionStore;
pub use users::InMemoryUserStore;

use async_trait::async_trait;
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, HealthCheck, HealthStatus, JobLeases, Outbox,
    RateLimitStore, SessionStore, UserStore,
};
use std::sync::Arc;
use std::time::Duration;

/// Settings of the in-memory backend.
#[derive(Clone, Debug)]
pub struct InMemoryConfig {
    /// How often (store clock) a rate-limit check sweeps idle keys out of memory.
    pub rate_limit_sweep_interval: Duration,
}

impl Default for InMemoryConfig {
    fn default() -> Self {
        Self {
            rate_limit_sweep_interval: Duration::from_secs(60),
        }
    }
}

/// Every in-memory store, wired to one shared outbox so user and consent mutations and
/// `AuditRecorder::record` enqueue their events atomically with the change.
#[derive(Clone)]
pub struct InMemoryStores {
    users: Arc<InMemoryUserStore>,
    sessions: Arc<InMemorySessionStore>,
    consents: Arc<InMemoryConsentStore>,
    audit: Arc<InMemoryAuditStore>,
    rate_limits: Arc<InMemoryRateLimitStore>,
    outbox: Arc<InMemoryOutbox>,
    leases: Arc<InMemoryLeases>,
}

impl InMemoryStores {
    /// Fresh, empty stores evaluating time against `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_config(clock, InMemoryConfig::default())
    }

    /// Fresh, empty stores with explicit settings.
    pub fn with_config(clock: Arc<dyn Clock>, config: InMemoryConfig) -> Self {
        Self::build(clock, config, Switch::default())
    }

    fn build(clock: Arc<dyn Clock>, config: InMemoryConfig, mutant: Switch) -> Self {
        let outbox = Arc::new(InMemoryOutbox::new(clock.clone(), mutant));
        Self {
            users: Arc::new(InMemoryUserStore::new(
                clock.clone(),
                outbox.clone(),
                mutant,
            )),
            sessions: Arc::new(InMemorySessionStore::new(clock.clone(), mutant)),
            consents: Arc::new(InMemoryConsentStore::new(
                clock.clone(),
                outbox.clone(),
                mutant,
            )),
            audit: Arc::new(InMemoryAuditStore::new(outbox.clone())),
            leases: Arc::new(InMemoryLeases::new(clock.clone())),
            rate_limits: Arc::new(InMemoryRateLimitStore::new(
                clock,
                config.rate_limit_sweep_interval,
                mutant,
            )),
            outbox,
        }
    }

    /// The user store.
    pub fn users(&self) -> Arc<dyn UserStore> {
        self.users.clone()
    }
    /// The session store (with the token revocation list).
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        self.sessions.clone()
    }
    /// The consent store.
    pub fn consents(&self) -> Arc<dyn ConsentStore> {
        self.consents.clone()
    }
    /// The audit recorder (`record` enqueues into the outbox).
    pub fn audit(&self) -> Arc<dyn AuditRecorder> {
        self.audit.clone()
    }
    /// The materialized audit log (what a sink writes into and queries read).
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        self.audit.clone()
    }
    /// The rate limiter.
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        self.rate_limits.clone()
    }
    /// The concrete rate limiter (for memory introspection).
    pub fn rate_limits_inner(&self) -> Arc<InMemoryRateLimitStore> {
        self.rate_limits.clone()
    }
    /// The relay-facing outbox.
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        self.outbox.clone()
    }
    /// The concrete outbox (for tests that write rows as another version would, or make its
    /// writes fail). Only with the `test-support` feature.
    #[cfg(feature = "test-support")]
    pub fn outbox_inner(&self) -> Arc<InMemoryOutbox> {
        self.outbox.clone()
    }
    /// Leases of the maintenance jobs (process-local: this backend is one instance).
    pub fn leases(&self) -> Arc<dyn JobLeases> {
        self.leases.clone()
    }
    /// How many records the stores hold, per kind: what maintenance shrinks (sessions, token
    /// revocations, rate-limit keys, outbox rows, audit events) and what it leaves (users,
    /// consents).
    pub fn footprint(&self) -> Footprint {
        Footprint {
            users: self.users.len(),
            sessions: self.sessions.sessions.len(),
            revoked_tokens: self.sessions.tokens.len(),
            consents: self.consents.len(),
            audit_events: self.audit.len(),
            outbox_rows: self.outbox.len(),
            rate_limit_keys: self.rate_limits.key_count(),
        }
    }
    /// A health check that is always ok (named `memory`).
    pub fn health(&self) -> Arc<dyn HealthCheck> {
        Arc::new(MemoryHealth)
    }
}

/// Record counts of [`InMemoryStores::footprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Footprint {
    /// Users (deleted ones are gone).
    pub users: usize,
    /// Sessions, expired ones included until purged.
    pub sessions: usize,
    /// Token revocations, expired ones included until purged.
    pub revoked_tokens: usize,
    /// Consent records.
    pub consents: usize,
    /// Materialized audit events.
    pub audit_events: usize,
    /// Outbox rows: pending, published and set aside.
    pub outbox_rows: usize,
    /// Rate-limit keys with state.
    pub rate_limit_keys: usize,
}

struct MemoryHealth;

#[async_trait]
impl HealthCheck for MemoryHealth {
    fn name(&self) -> &str {
        "memory"
    }
    async fn check(&self) -> HealthStatus {
        HealthStatus::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credo_ports::ManualClock;

    /// The component name is part of the `/health` contract (PRD-020 FR-1): dashboards and
    /// alerts select on it.
    #[tokio::test]
    async fn health_is_named_memory_and_ok() {
        let clock = Arc::new(ManualClock::new(credo_ports::Timestamp::from_secs(0)));
        let health = InMemoryStores::new(clock).health();
        assert_eq!(health.name(), "memory");
        assert_eq!(health.check().await, HealthStatus::Ok);
    }
}
