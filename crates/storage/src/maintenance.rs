//! The maintenance runner as the configuration asks for it: one job per switched-on purge,
//! each leased on the backend whose data it purges.

use crate::config::{MaintenanceJob, MaintenanceSettings};
use crate::wiring::{Storage, StorageError};
use credo_pipeline::maintenance::{Job, Maintenance};
use credo_ports::partitions::AuditPartitions;
use credo_ports::{
    AuditCategory, AuditLog, Clock, JobLeases, Outbox, RateLimitStore, SessionStore,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A store with the leases of its backend.
pub(crate) type Leased<T> = Option<(Arc<T>, Arc<dyn JobLeases>)>;

/// `store` with `leases`, when the backend has both.
pub(crate) fn leased<T: ?Sized>(
    store: Option<Arc<T>>,
    leases: &Option<Arc<dyn JobLeases>>,
) -> Leased<T> {
    store.zip(leases.clone())
}

/// The stores maintenance purges.
pub(crate) struct Purged {
    pub(crate) sessions: Leased<dyn SessionStore>,
    pub(crate) rate_limits: Leased<dyn RateLimitStore>,
    pub(crate) outbox: Leased<dyn Outbox>,
    pub(crate) audit_log: Leased<dyn AuditLog>,
    /// The audit log's partitions, when its backend partitions it.
    pub(crate) audit_partitions: Leased<dyn AuditPartitions>,
}

/// The runner, or `None` when `[maintenance] enabled = false` or every job is off.
pub(crate) fn build(
    settings: &MaintenanceSettings,
    clock: &Arc<dyn Clock>,
    purged: Purged,
) -> Result<Option<Arc<Maintenance>>, StorageError> {
    let mut jobs = Vec::new();
    if let (Some((store, leases)), Some(s)) =
        (purged.sessions, settings.schedule(MaintenanceJob::Sessions))
    {
        jobs.push(Job::sessions(store, leases, s.interval));
    }
    if let (Some((store, leases)), Some(s)) = (
        purged.rate_limits,
        settings.schedule(MaintenanceJob::RateLimits),
    ) {
        jobs.push(Job::rate_limits(store, leases, s.interval));
    }
    if let (Some((outbox, leases)), Some(s)) =
        (purged.outbox, settings.schedule(MaintenanceJob::Outbox))
    {
        jobs.push(Job::outbox(
            outbox,
            leases,
            s.interval,
            s.keep,
            clock.clone(),
        ));
    }
    // With whole-partition retention on, the purges of the categories kept longest wait two
    // partitions longer: they take only what partitions keep back (events outside every
    // partition, or that occurred long after their id was minted) instead of emptying each
    // partition row by row just before it is dropped.
    let mut row_purge_lag = Duration::ZERO;
    if let (Some((partitions, leases)), Some(s)) = (
        purged.audit_partitions,
        settings.schedule(MaintenanceJob::AuditPartitions),
    ) {
        let layout = settings.partition_layout();
        row_purge_lag = Duration::from_secs(2 * 86_400 * u64::from(layout.period_days.get()));
        jobs.push(Job::audit_partitions(
            partitions,
            leases,
            s.interval,
            layout,
            s.keep,
            clock.clone(),
        ));
    }
    if let Some((log, leases)) = purged.audit_log {
        let longest = Duration::from_secs(86_400 * settings.longest_audit_keep_days());
        for category in [
            AuditCategory::Compliance,
            AuditCategory::Security,
            AuditCategory::Operations,
        ] {
            if let Some(s) = settings.schedule(MaintenanceJob::Audit(category)) {
                let keep = if s.keep >= longest {
                    s.keep.saturating_add(row_purge_lag)
                } else {
                    s.keep
                };
                jobs.push(Job::audit(
                    log.clone(),
                    leases.clone(),
                    s.interval,
                    category,
                    keep,
                    clock.clone(),
                ));
            }
        }
    }
    if jobs.is_empty() {
        return Ok(None);
    }
    let m = Maintenance::new(jobs, settings.config())
        .map_err(|e| StorageError::Config(crate::ConfigError::new("maintenance", e.to_string())))?;
    Ok(Some(Arc::new(m)))
}

impl Storage {
    /// How many records each backend in use holds, by kind, keyed `backend.kind`:
    /// `memory.sessions`, `postgres.outbox`, `redis.rl` (Redis key kinds: `s`, `u`, `jti`,
    /// `rl`, `sid`, `lease`). What maintenance shrinks, for operators and tests; PostgreSQL
    /// counts whole tables and Redis walks its keys, so this is no hot-path call.
    pub async fn stored_counts(&self) -> Result<BTreeMap<String, u64>, credo_ports::StoreError> {
        #[allow(unused_mut)] // no backend compiled in
        let mut out = BTreeMap::new();
        #[cfg(feature = "inmemory")]
        if let Some(m) = &self.inmemory {
            let f = m.footprint();
            for (kind, n) in [
                ("users", f.users),
                ("sessions", f.sessions),
                ("revoked_tokens", f.revoked_tokens),
                ("consents", f.consents),
                ("audit_events", f.audit_events),
                ("outbox", f.outbox_rows),
                ("rate_limits", f.rate_limit_keys),
            ] {
                out.insert(format!("memory.{kind}"), n as u64);
            }
        }
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.postgres {
            for (table, n) in pg.row_counts().await? {
                out.insert(format!("postgres.{table}"), n);
            }
        }
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            for (kind, n) in r.key_counts().await? {
                out.insert(format!("redis.{kind}"), n);
            }
        }
        Ok(out)
    }
}
