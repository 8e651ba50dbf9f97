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
mod locks;
mod outbox;
mod rate_limits;
mod sessions;
#[cfg(feature = "test-support")]
mod testing;
mod time;
mod users;

pub use audit::PgAuditStore;
pub use consents::PgConsentStore;
pub use outbox::PgOutbox;
pub use rate_limits::PgRateLimitStore;
pub use sessions::PgSessionStore;
pub use users::PgUserStore;

use async_trait::async_trait;
use credo_ports::redact;
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, HealthCheck, HealthStatus, Outbox,
    RateLimitStore, SessionStore, StoreError, StoreResult, UserStore,
};
use sqlx::ConnectOptions;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::borrow::Cow;
use std::fmt;
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
    /// Schema holding the tables, the migrations table included (default: the server's
    /// `search_path`, usually `public`). Every connection's `search_path` is set to it, so
    /// the migrations' unqualified names land there; [`PgStores::migrate`] creates it if
    /// missing. A plain identifier: 1..=63 of `[a-z0-9_]`, not starting with a digit.
    pub schema: Option<String>,
    /// Table recording applied migrations, in the schema above (default
    /// [`DEFAULT_MIGRATIONS_TABLE`]). A plain identifier like the schema.
    pub migrations_table: String,
    /// The clock outbox leases are measured on (default: the database's).
    pub lease_clock: LeaseClock,
}

/// The clock outbox claim leases (and retry delays) are measured on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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
            migrations_table: DEFAULT_MIGRATIONS_TABLE.into(),
            lease_clock: LeaseClock::Database,
        }
    }

    /// The URL with its secrets replaced by `***` ([`credo_ports::redact::redact_url`]), for
    /// logs and errors.
    pub fn redacted_url(&self) -> String {
        redact::redact_url(&self.url)
    }

    /// Checks every setting before anything connects; the error names the field
    /// (`url`, `max_connections`, `outbox_connections`, `acquire_timeout`,
    /// `statement_timeout`, `schema`, `migrations_table`). A zero timeout is refused (the
    /// drivers read 0 as "no timeout"), as is one under a millisecond (it would round to 0),
    /// a `statement_timeout` beyond PostgreSQL's limit (2^31 - 1 ms), an acquire timeout over
    /// [`MAX_TIMEOUT`], and a pool of 0 or over [`MAX_CONNECTIONS`].
    pub fn validate(&self) -> StoreResult<()> {
        if self.url.trim().is_empty() {
            return Err(StoreError::invalid("url", "must not be empty"));
        }
        if let Err(e) = PgConnectOptions::from_str(&self.url) {
            return Err(self.url_error(e));
        }
        for (field, n) in [
            ("max_connections", self.max_connections),
            ("outbox_connections", self.outbox_connections),
        ] {
            if n == 0 || n > MAX_CONNECTIONS {
                return Err(StoreError::invalid(
                    field,
                    format!("{n}: must be 1..={MAX_CONNECTIONS}"),
                ));
            }
        }
        credo_ports::validate::timeout("acquire_timeout", self.acquire_timeout, MAX_TIMEOUT)?;
        credo_ports::validate::timeout(
            "statement_timeout",
            self.statement_timeout,
            Duration::from_millis(i32::MAX as u64),
        )?;
        if let Some(schema) = &self.schema
            && !valid_identifier(schema)
        {
            return Err(StoreError::invalid(
                "schema",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        if !valid_identifier(&self.migrations_table) {
            return Err(StoreError::invalid(
                "migrations_table",
                "must be 1..=63 of [a-z0-9_], not starting with a digit",
            ));
        }
        Ok(())
    }

    /// Every secret of the URL, for scrubbing driver errors.
    fn secrets(&self) -> Arc<[String]> {
        redact::url_secrets(&self.url).into()
    }

    fn url_error(&self, e: sqlx::Error) -> StoreError {
        let reason = match redact::redact_url(&self.url).as_str() {
            // Nothing of an unparseable URL is shown, not even the driver's view of it.
            redact::UNPARSEABLE_URL => {
                format!("{}: not a postgres:// URL", redact::UNPARSEABLE_URL)
            }
            shown => format!(
                "{shown}: {}",
                redact::scrub(&e.to_string(), &self.secrets())
            ),
        };
        StoreError::invalid("url", reason)
    }
}

/// Largest pool [`PgConfig::validate`] accepts (PostgreSQL's own `max_connections` is far
/// lower on any real server).
pub const MAX_CONNECTIONS: u32 = 10_000;

/// Longest timeout [`PgConfig::validate`] accepts where PostgreSQL sets no limit of its own
/// (one day): longer is a configuration mistake, and `Instant + Duration` would overflow
/// on absurd values.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("outbox_connections", &self.outbox_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("schema", &self.schema)
            .field("migrations_table", &self.migrations_table)
            .field("lease_clock", &self.lease_clock)
            .finish()
    }
}

/// The URL with its secrets replaced by `***`: a thin wrapper over the one redactor,
/// [`credo_ports::redact::redact_url`] (passwords whatever characters they hold, secret query
/// parameters, and unparseable URLs replaced whole).
pub fn redact(url: &str) -> String {
    redact::redact_url(url)
}

fn valid_identifier(s: &str) -> bool {
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
    migrations_table: String,
    lease_clock: LeaseClock,
    /// The URL's secrets, scrubbed from driver errors of migrations and health checks.
    secrets: Arc<[String]>,
}

impl PgStores {
    /// Checks the settings ([`PgConfig::validate`]), then connects a pool (lazily: the first
    /// query opens connections, so a service can start while the database is down and report
    /// it through [`PgStores::health`]).
    pub async fn connect(config: &PgConfig, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        config.validate()?;
        let mut options =
            PgConnectOptions::from_str(&config.url).map_err(|e| config.url_error(e))?;
        let timeout_ms = config.statement_timeout.as_millis().to_string();
        let mut params = vec![("statement_timeout", timeout_ms)];
        if let Some(schema) = &config.schema {
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
            migrations_table: config.migrations_table.clone(),
            lease_clock: config.lease_clock,
            secrets: config.secrets(),
        })
    }

    /// The same pool and schema, evaluating time against another clock.
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..self.clone()
        }
    }

    fn scrubbed(&self, e: StoreError) -> StoreError {
        redact::scrub_error(e, &self.secrets)
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
            other => StoreError::Unavailable(format!("migration failed: {other}")),
        })
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

    /// The rate limiter.
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        Arc::new(PgRateLimitStore::new(self.pool.clone(), self.clock.clone()))
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
    secrets: Arc<[String]>,
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
            Ok(Err(e)) => {
                HealthStatus::Failed(redact::scrub(&map_err(e).to_string(), &self.secrets))
            }
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

    /// Every documented bound is accepted, one past it refused.
    #[test]
    fn limits_are_inclusive_at_their_documented_values() {
        let ok = PgConfig::new("postgres://u@h/db");
        type Change = Box<dyn Fn(&mut PgConfig, bool)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "max_connections",
                Box::new(|c, past| c.max_connections = MAX_CONNECTIONS + u32::from(past)),
            ),
            (
                "outbox_connections",
                Box::new(|c, past| c.outbox_connections = MAX_CONNECTIONS + u32::from(past)),
            ),
            (
                "acquire_timeout",
                Box::new(|c, past| {
                    c.acquire_timeout = MAX_TIMEOUT + Duration::from_millis(u64::from(past))
                }),
            ),
            (
                "statement_timeout",
                Box::new(|c, past| {
                    c.statement_timeout = Duration::from_millis(i32::MAX as u64 + u64::from(past))
                }),
            ),
        ];
        for (field, change) in cases {
            let mut at = ok.clone();
            change(&mut at, false);
            assert!(at.validate().is_ok(), "{field} at its bound: {at:?}");
            let mut past = ok.clone();
            change(&mut past, true);
            assert!(
                matches!(past.validate(), Err(StoreError::InvalidInput { field: f, .. }) if f == field),
                "{field} past its bound: {past:?}"
            );
        }
        let mut smallest = ok.clone();
        smallest.max_connections = 1;
        smallest.outbox_connections = 1;
        smallest.acquire_timeout = Duration::from_millis(1);
        smallest.statement_timeout = Duration::from_millis(1);
        smallest.validate().unwrap();
    }

    /// Logs and errors show every setting and where the server is, never a secret.
    #[test]
    fn the_redacted_url_and_debug_keep_everything_but_secrets() {
        let c = PgConfig::new("postgres://app:s3cret@db.internal:5433/credo?sslmode=require");
        let shown = "postgres://app:***@db.internal:5433/credo?sslmode=require";
        assert_eq!(c.redacted_url(), shown);
        let dbg = format!("{c:?}");
        for part in [
            shown,
            "max_connections: 20",
            "outbox_connections: 2",
            "acquire_timeout: 5s",
            "statement_timeout: 5s",
            "schema: None",
            "migrations_table: \"_credo_storage_migrations\"",
            "lease_clock: Database",
        ] {
            assert!(dbg.contains(part), "{part} missing from {dbg}");
        }
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn every_duration_and_size_is_validated_by_field() {
        let ok = PgConfig::new("postgres://u@h/db");
        ok.validate().unwrap();
        type Change = Box<dyn Fn(&mut PgConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("url", Box::new(|c| c.url = " ".into())),
            (
                "url",
                Box::new(|c| c.url = "postgres://u:hunter2@h:port/db".into()),
            ),
            ("max_connections", Box::new(|c| c.max_connections = 0)),
            (
                "max_connections",
                Box::new(|c| c.max_connections = u32::MAX),
            ),
            ("outbox_connections", Box::new(|c| c.outbox_connections = 0)),
            (
                "acquire_timeout",
                Box::new(|c| c.acquire_timeout = Duration::ZERO),
            ),
            (
                "acquire_timeout",
                Box::new(|c| c.acquire_timeout = Duration::MAX),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::ZERO),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::from_micros(999)),
            ),
            (
                "statement_timeout",
                Box::new(|c| c.statement_timeout = Duration::from_millis(1 << 31)),
            ),
            ("schema", Box::new(|c| c.schema = Some("Public".into()))),
            (
                "migrations_table",
                Box::new(|c| c.migrations_table = "a.b".into()),
            ),
        ];
        for (field, change) in cases {
            let mut c = ok.clone();
            change(&mut c);
            match c.validate() {
                Err(StoreError::InvalidInput { field: f, reason }) => {
                    assert_eq!(f, field, "{reason}");
                    assert!(!reason.contains("hunter2"), "{reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

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

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(valid_identifier("t_0123abc"));
        for bad in ["", "1abc", "a-b", "A", "a;drop", &"a".repeat(64)] {
            assert!(!valid_identifier(bad), "{bad}");
        }
    }
}
