//! The PostgreSQL backend of credo-storage, on [`sqlx`].
//!
//! Implements UserStore, SessionStore, ConsentStore, AuditRecorder, AuditLog, RateLimitStore
//! and the transactional Outbox (the direct sink of deployments without Kafka is
//! `credo_pipeline::DirectSink` over [`PgStores::audit_log`]). User and consent mutations
//! insert their audit event into the outbox in the same transaction as the change.
//!
//! ```no_run
//! # async fn demo() -> Result<(), credo_ports::StoreError> {
//! use std::sync::Arc;
//! use credo_adapters_postgres::{PgConfig, PgStores};
//! use credo_ports::SystemClock;
//!
//! let config = PgConfig::new("postgres://credo:secret@db.internal:5432/credo?sslmode=verify-full");
//! let stores = PgStores::connect(&config, Arc::new(SystemClock)).await?;
//! stores.migrate().await?;
//! let users = stores.users();
//! # Ok(()) }
//! ```

mod audit;
mod consents;
mod error;
mod outbox;
mod rate_limits;
mod sessions;
mod time;
mod users;

pub use audit::PgAuditStore;
pub use consents::PgConsentStore;
pub use outbox::PgOutbox;
pub use rate_limits::PgRateLimitStore;
pub use sessions::PgSessionStore;
pub use users::PgUserStore;

use async_trait::async_trait;
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, EncodedEvent, HealthCheck, HealthStatus, Outbox,
    RateLimitStore, SessionStore, StoreError, StoreResult, UserStore,
};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use error::map_err;

/// Embedded, versioned migrations (`crates/adapters-postgres/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection settings. `Debug` never shows the password.
#[derive(Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/db?sslmode=...`; every `sslmode` libpq knows is
    /// accepted, including `verify-full` (certificate and host name checked).
    pub url: String,
    /// Largest number of pooled connections (default 20).
    pub max_connections: u32,
    /// Connections of the outbox's own pool (default 2): the relay's claims never wait behind
    /// service requests (nor the reverse), and its sessions plan claims the same way whatever
    /// the table statistics say (no sorts or JIT; see [`PgOutbox`]).
    pub outbox_connections: u32,
    /// Longest wait for a pooled connection before `Unavailable` (default 5 s).
    pub acquire_timeout: Duration,
    /// Server-side bound on every statement (default 5 s).
    pub statement_timeout: Duration,
    /// Schema holding the tables (default: the server's `search_path`). Tests use one schema
    /// each; it is created by [`PgStores::migrate`] if missing.
    pub schema: Option<String>,
    /// The clock outbox leases are measured on (default: the database's).
    pub lease_clock: LeaseClock,
}

/// The clock outbox claim leases (and retry delays) are measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeaseClock {
    /// The database server's `now()` (the default): every relay, whatever its host's clock,
    /// agrees on when a lease ends.
    #[default]
    Database,
    /// The stores' injected [`Clock`]: for tests that move time by hand.
    Store,
}

impl PgConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 20,
            outbox_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            schema: None,
            lease_clock: LeaseClock::Database,
        }
    }

    /// The URL with its password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("outbox_connections", &self.outbox_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("schema", &self.schema)
            .field("lease_clock", &self.lease_clock)
            .finish()
    }
}

/// Replaces the password of a `scheme://user:password@host` URL (and any `password=` query
/// parameter) with `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest = &out[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@')
            && let Some(colon) = rest[..at].find(':')
        {
            let start = scheme_end + 3 + colon + 1;
            out.replace_range(start..scheme_end + 3 + at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

fn valid_schema_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Every PostgreSQL store over one connection pool, and the outbox over a small one of its own.
#[derive(Clone)]
pub struct PgStores {
    pool: PgPool,
    outbox_pool: PgPool,
    clock: Arc<dyn Clock>,
    schema: Option<String>,
    lease_clock: LeaseClock,
}

impl PgStores {
    /// Connects a pool (lazily: the first query opens connections, so a service can start while
    /// the database is down and report it through [`PgStores::health`]).
    pub async fn connect(config: &PgConfig, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(&config.url)
            .map_err(|e| StoreError::invalid("url", format!("{}: {e}", config.redacted_url())))?;
        let timeout_ms = config.statement_timeout.as_millis().to_string();
        let mut params = vec![("statement_timeout", timeout_ms)];
        if let Some(schema) = &config.schema {
            if !valid_schema_name(schema) {
                return Err(StoreError::invalid(
                    "schema",
                    "must be 1..=63 of [a-z0-9_], not starting with a digit",
                ));
            }
            params.push(("search_path", schema.clone()));
        }
        options = options.disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(options.clone().options(params.clone()));
        // A queue table's statistics lag behind it: claims must not be planned from them.
        for off in ["enable_sort", "jit"] {
            params.push((off, "off".into()));
        }
        let outbox_pool = PgPoolOptions::new()
            .max_connections(config.outbox_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(options.options(params));
        tracing::debug!(url = %config.redacted_url(), pool = config.max_connections, outbox_pool = config.outbox_connections, "postgres pools configured");
        Ok(Self {
            pool,
            outbox_pool,
            clock,
            schema: config.schema.clone(),
            lease_clock: config.lease_clock,
        })
    }

    /// The same pool and schema, evaluating time against another clock.
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool: self.pool.clone(),
            outbox_pool: self.outbox_pool.clone(),
            clock,
            schema: self.schema.clone(),
            lease_clock: self.lease_clock,
        }
    }

    /// Creates the schema if one is configured, then applies pending migrations.
    pub async fn migrate(&self) -> StoreResult<()> {
        if let Some(schema) = &self.schema {
            // The name was validated in `connect`; identifiers cannot be bound as parameters.
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        }
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            other => StoreError::Unavailable(format!("migration failed: {other}")),
        })
    }

    /// Drops the configured schema and everything in it (test clean-up).
    pub async fn drop_schema(&self) -> StoreResult<()> {
        let Some(schema) = &self.schema else {
            return Err(StoreError::InvalidState("no schema configured".into()));
        };
        let ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Deletes every row of every table of this backend (test isolation between cases that
    /// reuse one schema). Never called by the stores themselves.
    pub async fn clear_all_tables(&self) -> StoreResult<()> {
        sqlx::raw_sql(
            "DELETE FROM users; DELETE FROM sessions; DELETE FROM revoked_tokens; DELETE FROM consents;
             DELETE FROM audit_events; DELETE FROM outbox; DELETE FROM rate_limits;",
        )
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// The pool (for services that share it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pools.
    pub async fn close(&self) {
        self.outbox_pool.close().await;
        self.pool.close().await;
    }

    /// The user store.
    pub fn users(&self) -> Arc<dyn UserStore> {
        Arc::new(PgUserStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// The session store (with the token revocation list).
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::new(PgSessionStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// The consent store.
    pub fn consents(&self) -> Arc<dyn ConsentStore> {
        Arc::new(PgConsentStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// The audit recorder (`record` writes to the outbox).
    pub fn audit(&self) -> Arc<dyn AuditRecorder> {
        Arc::new(PgAuditStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// The materialized audit log (`audit_events`).
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        Arc::new(PgAuditStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// The relay-facing outbox.
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(PgOutbox::new(
            self.outbox_pool.clone(),
            self.clock.clone(),
            self.lease_clock,
        ))
    }
    /// Inserts an outbox row as given, as another program (an older or newer version, or
    /// damage) could have left it. For tests of the pipeline's handling of such rows.
    #[doc(hidden)]
    pub async fn enqueue_raw(&self, message: &EncodedEvent) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        outbox::insert(&mut conn, message, self.clock.now()).await
    }
    /// The rate limiter.
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        Arc::new(PgRateLimitStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// A health check (`database`): `SELECT 1` within `timeout`.
    pub fn health(&self, timeout: Duration) -> Arc<dyn HealthCheck> {
        Arc::new(PgHealth {
            pool: self.pool.clone(),
            timeout,
        })
    }
}

struct PgHealth {
    pool: PgPool,
    timeout: Duration,
}

#[async_trait]
impl HealthCheck for PgHealth {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> HealthStatus {
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(Ok(_)) => HealthStatus::Ok,
            Ok(Err(e)) => HealthStatus::Failed(map_err(e).to_string()),
            Err(_) => HealthStatus::Failed(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            redact("postgres://u:p@ss:w@h/db?sslmode=verify-full"),
            "postgres://u:***@h/db?sslmode=verify-full"
        );
        assert_eq!(
            redact("postgres://h/db?user=u&password=x"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let dbg = format!("{:?}", PgConfig::new("postgres://u:hunter2@h/db"));
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_schema_name("t_0123abc"));
        for bad in ["", "1abc", "a-b", "A", "a;drop", &"a".repeat(64)] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}
