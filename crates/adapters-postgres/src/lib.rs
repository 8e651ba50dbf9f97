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

mod capabilities;
pub use capabilities::CAPABILITIES;
mod audit;
mod audit_partitions;
mod config;
mod consents;
mod error;
mod leases;
mod locks;
mod outbox;
mod rate_limits;
mod sessions;
#[cfg(feature = "test-support")]
pub mod testing;
mod time;
mod users;

pub use audit::PgAuditStore;
pub use audit_partitions::PgAuditPartitions;
pub use config::{LeaseClock, MAX_CONNECTIONS, MAX_TIMEOUT, PgConfig, redact};
pub use consents::PgConsentStore;
pub use leases::PgLeases;
pub use outbox::PgOutbox;
pub use rate_limits::PgRateLimitStore;
pub use sessions::PgSessionStore;
pub use users::PgUserStore;

use async_trait::async_trait;
use credo_ports::SecretString;
use credo_ports::redact::{self, Secrets};
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, HealthCheck, HealthStatus, JobLeases, Outbox,
    RateLimitStore, SessionStore, StoreError, StoreResult, UserStore,
};
use sqlx::ConnectOptions;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use error::map_err;

/// The table our applied migrations are recorded in, unless [`PgConfig::migrations_table`]
/// says otherwise. Not sqlx's default `_sqlx_migrations`, so that a host service running its
/// own sqlx migrations in the same database and schema never sees ours (nor we its).
pub const DEFAULT_MIGRATIONS_TABLE: &str = "_credo_storage_migrations";

/// The table earlier releases recorded our migrations in (sqlx's default). On the first
/// [`PgStores::migrate`] with a new table, our rows found there are copied over.
pub const LEGACY_MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Embedded, versioned migrations (`crates/adapters-postgres/migrations`), recorded in
/// [`DEFAULT_MIGRATIONS_TABLE`]. [`PgStores::migrate`] uses a copy recording into
/// [`PgConfig::migrations_table`].
pub static MIGRATOR: Migrator = Migrator {
    table_name: Cow::Borrowed(DEFAULT_MIGRATIONS_TABLE),
    ..sqlx::migrate!("./migrations")
};

/// Every PostgreSQL store over one connection pool, and the outbox over a small one of its own.
#[derive(Clone)]
pub struct PgStores {
    pool: PgPool,
    outbox_pool: PgPool,
    clock: Arc<dyn Clock>,
    schema: Option<String>,
    migrations_table: String,
    lease_clock: LeaseClock,
    /// The URL's secrets, scrubbed from driver errors of migrations and health checks.
    secrets: Secrets,
    /// Held while any clone lives: the URL file's watcher stops once it is gone.
    _alive: Arc<()>,
}

/// The connect options of the main pool and of the outbox's, from `url`: where the URL is
/// handed to the driver.
fn connect_options(
    config: &PgConfig,
    url: &SecretString,
) -> Result<(PgConnectOptions, PgConnectOptions), sqlx::Error> {
    let options = PgConnectOptions::from_str(url.expose_secret())?.disable_statement_logging();
    let timeout_ms = config.statement_timeout.as_millis().to_string();
    let mut params = vec![("statement_timeout", timeout_ms)];
    if let Some(schema) = &config.schema {
        params.push(("search_path", schema.clone()));
    }
    if let Some(role) = &config.role {
        params.push(("role", role.clone()));
    }
    let main = options.clone().options(params.clone());
    // A queue table's statistics lag behind it: claims must not be planned from them.
    for off in ["enable_sort", "jit"] {
        params.push((off, "off".into()));
    }
    Ok((main, options.options(params)))
}

/// Reads `config.url_file` every `config.url_refresh` while `alive` has an owner; a changed
/// URL becomes the pools' options for the connections they open next.
fn watch_url_file(
    config: &PgConfig,
    path: std::path::PathBuf,
    pools: [PgPool; 2],
    secrets: Secrets,
    alive: std::sync::Weak<()>,
) {
    let config = config.clone();
    let mut last = config.url.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(config.url_refresh).await;
            if alive.upgrade().is_none() || pools[0].is_closed() {
                return;
            }
            let url = match std::fs::read_to_string(&path) {
                Ok(text) => SecretString::from(redact::secret_file_text(text)),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e.kind(), "postgres: the URL file cannot be read; the pools keep the URL they have");
                    continue;
                }
            };
            if url == last {
                continue;
            }
            secrets.add(redact::url_secrets(url.expose_secret()));
            match connect_options(&config, &url) {
                Ok((main, outbox)) => {
                    pools[0].set_connect_options(main);
                    pools[1].set_connect_options(outbox);
                    tracing::info!(file = %path.display(), url = %redact::redact_url(url.expose_secret()), "postgres: the URL file changed; new connections use it");
                    last = url;
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %secrets.scrub(&e.to_string()), "postgres: the URL file holds no valid URL; the pools keep the URL they have")
                }
            }
        }
    });
}

impl PgStores {
    /// Checks the settings ([`PgConfig::validate`]), then connects a pool (lazily: the first
    /// query opens connections, so a service can start while the database is down and report
    /// it through [`PgStores::health`]).
    pub async fn connect(config: &PgConfig, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        config.validate()?;
        let (main, outbox) =
            connect_options(config, &config.url).map_err(|e| config.url_error(e))?;
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(main);
        let outbox_pool = PgPoolOptions::new()
            .max_connections(config.outbox_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(outbox);
        tracing::debug!(url = %config.redacted_url(), pool = config.max_connections, outbox_pool = config.outbox_connections, "postgres pools configured");
        let secrets = Secrets::new(config.secrets());
        let alive = Arc::new(());
        if let Some(path) = &config.url_file {
            watch_url_file(
                config,
                path.clone(),
                [pool.clone(), outbox_pool.clone()],
                secrets.clone(),
                Arc::downgrade(&alive),
            );
        }
        Ok(Self {
            pool,
            outbox_pool,
            clock,
            schema: config.schema.clone(),
            migrations_table: config.migrations_table.clone(),
            lease_clock: config.lease_clock,
            secrets,
            _alive: alive,
        })
    }

    /// The same pool and schema, evaluating time against another clock.
    #[must_use = "returns a new value and leaves this one unchanged"]
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..self.clone()
        }
    }

    fn scrubbed(&self, e: StoreError) -> StoreError {
        self.secrets.scrub_error(e)
    }

    /// Creates the schema if one is configured, then applies pending migrations, recording
    /// them in [`PgConfig::migrations_table`], all under sqlx's migration lock (a PostgreSQL
    /// advisory lock, so N instances starting at once migrate one after the other).
    ///
    /// **Upgrade from earlier releases**, which recorded our migrations in sqlx's default
    /// `_sqlx_migrations`: when the migrations table does not exist yet and
    /// `_sqlx_migrations` (in the same schema) holds our migrations — same versions, same
    /// checksums — those rows are copied into the new table in one transaction instead of
    /// the migrations running again. Rows of anyone else (a host's own migrations) are never
    /// read into ours nor touched; ours stay in `_sqlx_migrations` too, for a rollback.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = migrator_for(&self.migrations_table);
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| self.scrubbed(map_err(e)))?;
        if let Some(schema) = &self.schema {
            // The name was validated in `connect`; identifiers cannot be bound as parameters.
            let ddl = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
            sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
                .execute(&mut *conn)
                .await
                .map_err(|e| self.scrubbed(map_err(e)))?;
        }
        conn.lock().await.map_err(|e| self.migrate_err(e))?;
        let result = async {
            adopt_legacy_rows(&mut conn, &migrator).await?;
            // Locks again (advisory locks nest within a session) and unlocks once.
            // `run_direct` is `run` on a connection, without the `Acquire` bound whose
            // lifetimes make this future not `Send` for every lifetime.
            migrator.run_direct(None, &mut *conn, false).await
        }
        .await;
        // Still under the migration lock: one instance re-keys, the others wait for it.
        let rekeyed = match result {
            Ok(()) => users::rekey_emails(&mut conn).await.map(|_| ()),
            Err(e) => Err(self.migrate_err(e)),
        };
        let unlocked = conn.unlock().await;
        rekeyed.map_err(|e| self.scrubbed(e))?;
        unlocked.map_err(|e| self.migrate_err(e))
    }

    fn migrate_err(&self, e: sqlx::migrate::MigrateError) -> StoreError {
        self.scrubbed(match e {
            sqlx::migrate::MigrateError::Execute(e) => map_err(e),
            other => StoreError::Unavailable(credo_ports::Cause::with_source(
                format!("migration failed: {other}"),
                other,
            )),
        })
    }

    /// Grants `role` what the stores need in this schema and nothing more (run it as the
    /// schema's owner, after [`migrate`](Self::migrate)): read and write on the tables of
    /// users, sessions, revoked tokens, consents, rate limits, the outbox and the job leases;
    /// only `SELECT` and `INSERT` on `audit_events`, whose events it removes only through
    /// the retention and partition functions of migration 0009 (granted here, and bound by
    /// `audit_retention_floor`); read on the floor and the migrations table. No `UPDATE`,
    /// `DELETE` or `TRUNCATE` on the audit log, no DDL, no ownership. Idempotent.
    ///
    /// `InvalidInput` for a role that is not a plain identifier; the server's error (as
    /// `Unavailable`) for a role that does not exist.
    pub async fn grant_app_role(&self, role: &str) -> StoreResult<()> {
        if !config::valid_identifier(role) {
            return Err(StoreError::invalid(
                "role",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => sqlx::query_scalar("SELECT current_schema()")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.scrubbed(map_err(e)))?,
        };
        let table = &self.migrations_table;
        // Identifiers were validated above or by `connect`; they cannot be bound.
        let statements = [
            format!("GRANT USAGE ON SCHEMA \"{schema}\" TO {role}"),
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON users, sessions, revoked_tokens, \
                 consents, rate_limits, outbox, maintenance_leases TO {role}"
            ),
            format!("GRANT SELECT, INSERT ON audit_events TO {role}"),
            format!("GRANT SELECT ON audit_retention_floor, {table} TO {role}"),
            format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"{schema}\" TO {role}"),
            format!(
                "GRANT EXECUTE ON FUNCTION credo_audit_purge(timestamptz, text, integer), \
                 credo_audit_partition_create(text, uuid, uuid), \
                 credo_audit_partition_drop(text, timestamptz) TO {role}"
            ),
        ];
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for sql in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(|e| self.scrubbed(map_err(e)))?;
        }
        tx.commit().await.map_err(map_err)?;
        tracing::info!(%role, %schema, "application role granted");
        Ok(())
    }

    /// The pool (for services that share it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Rows per table of this backend (`users`, `sessions`, `revoked_tokens`, `consents`,
    /// `audit_events`, `outbox`, `rate_limits`, `maintenance_leases`): what maintenance
    /// shrinks, for operators and tests. Counts every row, so it reads whole tables.
    pub async fn row_counts(&self) -> StoreResult<std::collections::BTreeMap<&'static str, u64>> {
        let mut out = std::collections::BTreeMap::new();
        for table in [
            "users",
            "sessions",
            "revoked_tokens",
            "consents",
            "audit_events",
            "outbox",
            "rate_limits",
            "maintenance_leases",
        ] {
            let sql = format!("SELECT count(*) FROM {table}");
            let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.scrubbed(map_err(e)))?;
            out.insert(table, n as u64);
        }
        Ok(out)
    }

    /// Sizes of the store pool (`main`) and the outbox's own (`outbox`), for metrics.
    pub fn pool_stats(&self) -> [credo_ports::telemetry::PoolStats; 2] {
        let stats = |name, pool: &PgPool| credo_ports::telemetry::PoolStats {
            pool: name,
            max: pool.options().get_max_connections(),
            open: pool.size(),
            idle: pool.num_idle() as u32,
        };
        [
            stats("main", &self.pool),
            stats("outbox", &self.outbox_pool),
        ]
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
    /// The time partitions of `audit_events`, for the maintenance runner's whole-partition
    /// retention.
    pub fn audit_partitions(&self) -> Arc<dyn credo_ports::partitions::AuditPartitions> {
        Arc::new(PgAuditPartitions::new(self.pool.clone()))
    }
    /// The relay-facing outbox.
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(PgOutbox::new(
            self.outbox_pool.clone(),
            self.clock.clone(),
            self.lease_clock,
        ))
    }

    /// The rate limiter.
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        Arc::new(PgRateLimitStore::new(self.pool.clone(), self.clock.clone()))
    }
    /// Leases of the maintenance jobs (table `maintenance_leases`), timed on the lease clock.
    pub fn leases(&self) -> Arc<dyn JobLeases> {
        Arc::new(PgLeases::new(
            self.pool.clone(),
            self.clock.clone(),
            self.lease_clock,
        ))
    }
    /// A health check (`database`): `SELECT 1` within `timeout`.
    pub fn health(&self, timeout: Duration) -> Arc<dyn HealthCheck> {
        Arc::new(PgHealth {
            pool: self.pool.clone(),
            timeout,
            secrets: self.secrets.clone(),
        })
    }
}

/// [`MIGRATOR`], recording into `table`.
fn migrator_for(table: &str) -> Migrator {
    let mut m = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    m.dangerous_set_table_name(table.to_string());
    m
}

/// The upgrade step of [`PgStores::migrate`]: copies our rows of [`LEGACY_MIGRATIONS_TABLE`]
/// into the migrator's table when that table does not exist yet. Runs under the migration
/// lock, in one transaction.
async fn adopt_legacy_rows(
    conn: &mut sqlx::PgConnection,
    migrator: &Migrator,
) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::Row;
    let table = migrator.table_name.as_ref();
    if table == LEGACY_MIGRATIONS_TABLE {
        return Ok(());
    }
    // Both names resolve through the connection's search_path, as sqlx's own statements do.
    let exists =
        sqlx::query("SELECT to_regclass($1::text) IS NOT NULL, to_regclass($2::text) IS NOT NULL")
            .bind(table)
            .bind(LEGACY_MIGRATIONS_TABLE)
            .fetch_one(&mut *conn)
            .await?;
    let (ours, legacy): (bool, bool) = (exists.get(0), exists.get(1));
    if ours || !legacy {
        return Ok(());
    }
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT version, description, installed_on, success, checksum, execution_time
         FROM {LEGACY_MIGRATIONS_TABLE} ORDER BY version"
    )))
    .fetch_all(&mut *conn)
    .await?;
    let ours: Vec<_> = rows
        .iter()
        .filter(|row| {
            let (version, checksum): (i64, Vec<u8>) = (row.get("version"), row.get("checksum"));
            migrator
                .iter()
                .any(|m| m.version == version && *m.checksum == *checksum)
        })
        .collect();
    if ours.is_empty() {
        return Ok(());
    }
    if let Some(dirty) = ours.iter().find(|r| !r.get::<bool, _>("success")) {
        let version: i64 = dirty.get("version");
        return Err(sqlx::migrate::MigrateError::Dirty(version));
    }
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    tx.ensure_migrations_table(table).await?;
    for row in &ours {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (version, description, installed_on, success, checksum, execution_time)
             VALUES ($1, $2, $3, $4, $5, $6)"
        )))
        .bind(row.get::<i64, _>("version"))
        .bind(row.get::<String, _>("description"))
        .bind(row.get::<chrono::DateTime<chrono::Utc>, _>("installed_on"))
        .bind(row.get::<bool, _>("success"))
        .bind(row.get::<Vec<u8>, _>("checksum"))
        .bind(row.get::<i64, _>("execution_time"))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(
        from = LEGACY_MIGRATIONS_TABLE,
        to = table,
        migrations = ours.len(),
        "postgres: adopted this library's migrations recorded by an earlier release"
    );
    Ok(())
}

struct PgHealth {
    pool: PgPool,
    timeout: Duration,
    secrets: Secrets,
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
            // The report is served to anyone who can probe: the driver's text (hosts, users,
            // addresses) goes to the log only.
            Ok(Err(e)) => {
                let e = map_err(e);
                tracing::warn!(
                    error = %self.secrets.scrub(&e.to_string()),
                    "postgres: readiness probe failed"
                );
                HealthStatus::Failed(format!(
                    "the probe query failed ({}); the reason is in the service log",
                    e.kind()
                ))
            }
            Err(_) => HealthStatus::Failed(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_migrations_table_is_not_sqlxs() {
        assert_eq!(MIGRATOR.table_name, DEFAULT_MIGRATIONS_TABLE);
        assert_ne!(DEFAULT_MIGRATIONS_TABLE, LEGACY_MIGRATIONS_TABLE);
        assert_eq!(
            PgConfig::new("postgres://h/db").migrations_table,
            DEFAULT_MIGRATIONS_TABLE
        );
        assert!(MIGRATOR.iter().any(|m| m.version == 2));
    }
}
