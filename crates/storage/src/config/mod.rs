//! The facade's typed configuration: which backend serves each port, and each backend's
//! settings. Read from an optional TOML file and environment variables (the environment
//! wins); every error names the setting.

use credo_ports::redact::{redact_property, redact_url};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A backend that can serve a store port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded in-memory backend (feature `inmemory`).
    #[default]
    InMemory,
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// Redis (feature `redis`): sessions and rate limits only.
    Redis,
}

impl Backend {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::InMemory => "inmemory",
            Backend::Postgres => "postgres",
            Backend::Redis => "redis",
        }
    }
}

/// Where the relay publishes audit events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSink {
    /// Straight into the audit store (in-memory and PostgreSQL-only deployments).
    #[default]
    Direct,
    /// To the Kafka topic, materialized by the audit consumer (feature `kafka`).
    Kafka,
}

/// The backend of each port. Users, consents and audit must share one backend: their audit
/// events go to that backend's outbox in the same transaction as the change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Backends {
    /// `inmemory` or `postgres`.
    pub users: Backend,
    /// `inmemory`, `postgres` or `redis`.
    pub sessions: Backend,
    /// `inmemory` or `postgres`.
    pub consents: Backend,
    /// `inmemory` or `postgres`.
    pub audit: Backend,
    /// `inmemory`, `postgres` or `redis`.
    pub rate_limits: Backend,
    /// `direct` or `kafka`.
    pub audit_sink: AuditSink,
}

/// `[postgres]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSettings {
    /// Connection URL (any libpq `sslmode`). Also read from `DATABASE_URL`.
    pub url: String,
    /// Pool size (default 20).
    #[serde(default = "d_pg_pool")]
    pub max_connections: u32,
    /// Connections of the outbox relay's own pool (default 2).
    #[serde(default = "d_outbox_pool")]
    pub outbox_connections: u32,
    /// Pool acquire timeout (default 5000).
    #[serde(default = "d_5000")]
    pub acquire_timeout_ms: u64,
    /// `statement_timeout` (default 5000).
    #[serde(default = "d_5000")]
    pub statement_timeout_ms: u64,
    /// Schema of the tables and of the migrations table (default: the server's
    /// `search_path`, usually `public`); created by `migrate` if missing. Every connection's
    /// `search_path` is set to it.
    #[serde(default)]
    pub schema: Option<String>,
    /// Table recording our applied migrations (default `_credo_storage_migrations`, which a
    /// host's own sqlx migrations in `_sqlx_migrations` never clash with).
    #[serde(default = "d_migrations_table")]
    pub migrations_table: String,
    /// Run the embedded migrations at start-up (default false).
    #[serde(default)]
    pub migrate: bool,
}

/// `[redis]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://` or `rediss://` URL. Also read from `REDIS_URL`.
    pub url: String,
    /// Connections (default 4).
    #[serde(default = "d_redis_pool")]
    pub pool_size: usize,
    /// Command timeout (default 3000).
    #[serde(default = "d_3000")]
    pub command_timeout_ms: u64,
    /// Key prefix (default `credo`).
    #[serde(default = "d_prefix")]
    pub key_prefix: String,
    /// Rate limiter time source: `server` (Redis `TIME`, default) or `clock`.
    #[serde(default = "d_server")]
    pub rate_limit_time: String,
}

/// `[kafka]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`. Also read from `KAFKA_BROKERS`.
    pub brokers: String,
    /// Audit topic (default `credo.audit.events`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Dead-letter topic (default `credo.audit.events.dlq`).
    #[serde(default)]
    pub dlq_topic: Option<String>,
    /// Consumer group (default `credo-audit-materializer`).
    #[serde(default)]
    pub group_id: Option<String>,
    /// `client.id` (default `credo-storage`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// `message.timeout.ms` (default 30000).
    #[serde(default)]
    pub delivery_timeout_ms: Option<u64>,
    /// `linger.ms` (default 5).
    #[serde(default)]
    pub linger_ms: Option<u64>,
    /// `session.timeout.ms` (default: the client's, 45000).
    #[serde(default)]
    pub session_timeout_ms: Option<u64>,
    /// `heartbeat.interval.ms` (default: the client's).
    #[serde(default)]
    pub heartbeat_interval_ms: Option<u64>,
    /// `max.poll.interval.ms` (default: the client's).
    #[serde(default)]
    pub max_poll_interval_ms: Option<u64>,
    /// `fetch.wait.max.ms` (default 100).
    #[serde(default)]
    pub fetch_wait_max_ms: Option<u64>,
    /// Create the topics at start-up if missing (default false).
    #[serde(default)]
    pub ensure_topics: bool,
    /// Partitions of created topics (default 6).
    #[serde(default)]
    pub partitions: Option<i32>,
    /// Replication of created topics (default 3).
    #[serde(default)]
    pub replication: Option<i32>,
    /// Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[relay]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelaySettings {
    /// Rows per pass (default 100).
    pub batch: usize,
    /// Claim lease, measured on the database's clock (default 60000); must be longer than
    /// `kafka.delivery_timeout_ms`.
    pub lease_ms: u64,
    /// Pause after an empty pass (default 100).
    pub idle_poll_ms: u64,
    /// Rejections after which an event is set aside as a dead letter (default 5).
    pub max_failures: u32,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 100,
            lease_ms: 60_000,
            idle_poll_ms: 100,
            max_failures: 5,
        }
    }
}

/// The whole configuration.
///
/// ```
/// use credo_storage::config::{Backend, StorageConfig};
/// let config = StorageConfig::from_toml_str(r#"
///     [backends]
///     users = "postgres"
///     consents = "postgres"
///     audit = "postgres"
///     sessions = "redis"
///     rate_limits = "redis"
///     audit_sink = "kafka"
///     [postgres]
///     url = "postgres://credo:secret@db:5432/credo"
///     migrate = true
///     [redis]
///     url = "redis://cache:6379"
///     [kafka]
///     brokers = "broker:9092"
/// "#).unwrap();
/// assert_eq!(config.backends.sessions, Backend::Redis);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `[backends]`.
    pub backends: Backends,
    /// `[postgres]`, needed when a port uses PostgreSQL.
    pub postgres: Option<PostgresSettings>,
    /// `[redis]`, needed when a port uses Redis.
    pub redis: Option<RedisSettings>,
    /// `[kafka]`, needed when `audit_sink = "kafka"`.
    pub kafka: Option<KafkaSettings>,
    /// `[relay]`.
    pub relay: RelaySettings,
    /// Bound of each readiness check (default 2000).
    pub health_timeout_ms: Option<u64>,
    /// Bound of [`crate::Storage::shutdown`] (default 10000).
    pub shutdown_timeout_ms: Option<u64>,
}

/// A configuration error, naming the setting (and its environment variable).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("setting `{setting}`: {reason}")]
pub struct ConfigError {
    /// `section.key`, and the variable when it came from the environment.
    pub setting: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
}

/// Every setting that can come from the environment: `CREDO_<SECTION>_<KEY>`.
const ENV_SETTINGS: &[(&str, &str, Kind)] = &[
    ("backends", "users", Kind::Str),
    ("backends", "sessions", Kind::Str),
    ("backends", "consents", Kind::Str),
    ("backends", "audit", Kind::Str),
    ("backends", "rate_limits", Kind::Str),
    ("backends", "audit_sink", Kind::Str),
    ("postgres", "url", Kind::Str),
    ("postgres", "max_connections", Kind::Int),
    ("postgres", "outbox_connections", Kind::Int),
    ("postgres", "acquire_timeout_ms", Kind::Int),
    ("postgres", "statement_timeout_ms", Kind::Int),
    ("postgres", "schema", Kind::Str),
    ("postgres", "migrations_table", Kind::Str),
    ("postgres", "migrate", Kind::Bool),
    ("redis", "url", Kind::Str),
    ("redis", "pool_size", Kind::Int),
    ("redis", "command_timeout_ms", Kind::Int),
    ("redis", "key_prefix", Kind::Str),
    ("redis", "rate_limit_time", Kind::Str),
    ("kafka", "brokers", Kind::Str),
    ("kafka", "topic", Kind::Str),
    ("kafka", "dlq_topic", Kind::Str),
    ("kafka", "group_id", Kind::Str),
    ("kafka", "client_id", Kind::Str),
    ("kafka", "delivery_timeout_ms", Kind::Int),
    ("kafka", "linger_ms", Kind::Int),
    ("kafka", "session_timeout_ms", Kind::Int),
    ("kafka", "heartbeat_interval_ms", Kind::Int),
    ("kafka", "max_poll_interval_ms", Kind::Int),
    ("kafka", "fetch_wait_max_ms", Kind::Int),
    ("kafka", "ensure_topics", Kind::Bool),
    ("kafka", "partitions", Kind::Int),
    ("kafka", "replication", Kind::Int),
    ("relay", "batch", Kind::Int),
    ("relay", "lease_ms", Kind::Int),
    ("relay", "idle_poll_ms", Kind::Int),
    ("relay", "max_failures", Kind::Int),
    ("", "health_timeout_ms", Kind::Int),
    ("", "shutdown_timeout_ms", Kind::Int),
];

/// Conventional variables read when the prefixed one is not set.
const ALIASES: &[(&str, &str, &str)] = &[
    ("DATABASE_URL", "postgres", "url"),
    ("REDIS_URL", "redis", "url"),
    ("KAFKA_BROKERS", "kafka", "brokers"),
];

/// The default prefix of the environment variables.
pub const DEFAULT_ENV_PREFIX: &str = "CREDO_";

/// Stems of top-level settings: `<PREFIX>HEALTH_TIMEOUT...` is checked for typos like a
/// section is.
const TOP_LEVEL_STEMS: &[&str] = &["health_timeout", "shutdown_timeout"];

fn env_name(prefix: &str, section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("{prefix}{}", key.to_ascii_uppercase())
    } else {
        format!(
            "{prefix}{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

/// Whether `var` is in the storage's own namespace: under one of its sections
/// (`<PREFIX>POSTGRES_...`) or a top-level setting's stem. Only those are checked for typos;
/// every other variable, `<PREFIX>`-named or not, belongs to the host and passes untouched.
fn is_ours(prefix: &str, var: &str) -> bool {
    let Some(rest) = var.strip_prefix(prefix) else {
        return false;
    };
    let sections = ENV_SETTINGS
        .iter()
        .filter(|(s, _, _)| !s.is_empty())
        .map(|(s, _, _)| format!("{}_", s.to_ascii_uppercase()));
    let stems = TOP_LEVEL_STEMS.iter().map(|s| s.to_ascii_uppercase());
    sections.chain(stems).any(|stem| rest.starts_with(&stem))
}

impl StorageConfig {
    /// Parses a TOML document and [validates](Self::validate) it.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let value: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::new("(file)", e.to_string()))?;
        Self::from_table(value)
    }

    /// The file named by `CREDO_CONFIG_FILE` (if set), overridden by the environment:
    /// `CREDO_<SECTION>_<KEY>` for every key (e.g. `CREDO_BACKENDS_USERS=postgres`,
    /// `CREDO_POSTGRES_URL`, `CREDO_RELAY_BATCH`, `CREDO_HEALTH_TIMEOUT_MS`),
    /// `CREDO_KAFKA_PROPERTY_<NAME>` for a librdkafka property (`_` becomes `.`, lowercased),
    /// and `DATABASE_URL`, `REDIS_URL`, `KAFKA_BROKERS` when the `CREDO_` variable is unset.
    /// The result is [validated](Self::validate).
    ///
    /// A good guest in a host service: only variables in the storage's own namespace are
    /// checked for typos — those under one of its sections (`CREDO_BACKENDS_`,
    /// `CREDO_POSTGRES_`, `CREDO_REDIS_`, `CREDO_KAFKA_`, `CREDO_RELAY_`) or starting like a
    /// top-level setting (`CREDO_HEALTH_TIMEOUT`, `CREDO_SHUTDOWN_TIMEOUT`). There, a name
    /// that is no setting (`CREDO_POSTGRES_URLL`) is an error; every other variable
    /// (`CREDO_HTTP_ADDR`, the host's own `CREDO_FOO`) passes untouched. A host whose own
    /// variables use `CREDO_POSTGRES_...` can move the storage's under another prefix with
    /// [`from_env_with_prefix`](Self::from_env_with_prefix).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// [`from_env`](Self::from_env) with another prefix than `CREDO_` (e.g. `AUTH_STORAGE_`
    /// reads `AUTH_STORAGE_POSTGRES_URL` and `AUTH_STORAGE_CONFIG_FILE`).
    pub fn from_env_with_prefix(prefix: &str) -> Result<Self, ConfigError> {
        Self::from_vars_with_prefix(prefix, std::env::vars())
    }

    /// [`from_env`](Self::from_env) over the given variables.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_vars_with_prefix(DEFAULT_ENV_PREFIX, vars)
    }

    /// [`from_env_with_prefix`](Self::from_env_with_prefix) over the given variables. The
    /// prefix is 1 to 64 of `[A-Z0-9_]`.
    pub fn from_vars_with_prefix(
        prefix: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if prefix.is_empty()
            || prefix.len() > 64
            || !prefix
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        {
            return Err(ConfigError::new(
                "(environment prefix)",
                format!("{prefix:?}: must be 1..=64 of [A-Z0-9_]"),
            ));
        }
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let file_var = format!("{prefix}CONFIG_FILE");
        let mut table = match vars.get(&file_var).filter(|p| !p.is_empty()) {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(file_var.clone(), format!("reading {path}: {e}"))
                })?;
                toml::from_str(&text)
                    .map_err(|e| ConfigError::new(format!("{file_var} ({path})"), e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let property_prefix = format!("{prefix}KAFKA_PROPERTY_");
        for (var, value) in &vars {
            if !is_ours(prefix, var) {
                continue;
            }
            if let Some(name) = var.strip_prefix(&property_prefix) {
                if name.is_empty() {
                    return Err(ConfigError::new(
                        var.clone(),
                        "names no librdkafka property",
                    ));
                }
                let property = name.to_ascii_lowercase().replace('_', ".");
                section(&mut table, "kafka", var)?
                    .entry("properties")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::new("kafka.properties", "must be a table"))?
                    .insert(property, toml::Value::String(value.clone()));
                continue;
            }
            let Some((s, k, kind)) = ENV_SETTINGS
                .iter()
                .find(|(s, k, _)| env_name(prefix, s, k) == *var)
            else {
                return Err(ConfigError::new(
                    var.clone(),
                    format!(
                        "not a credo-storage setting, though it is in its namespace \
                         ({prefix}<SECTION>_<KEY>; see StorageConfig::from_env for the names)"
                    ),
                ));
            };
            set(&mut table, s, k, *kind, var, value)?;
        }
        for (alias, s, k) in ALIASES {
            if let Some(value) = vars.get(*alias)
                && !vars.contains_key(&env_name(prefix, s, k))
            {
                set(&mut table, s, k, Kind::Str, alias, value)?;
            }
        }
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        // serde_path_to_error would be one more dependency; toml's own message names the key.
        let config = StorageConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new("(config)", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Bound of each readiness check.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms.unwrap_or(2_000))
    }

    /// Bound of shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms.unwrap_or(10_000))
    }

    /// Checks every duration, size and name, naming the setting: no timeout of 0 (drivers
    /// read it as "no timeout"), no pool of 0, nothing beyond what the backend accepts (a
    /// day for timeouts PostgreSQL, Redis or librdkafka would take longer). Run by the
    /// loaders and by [`crate::Storage::connect`] (for configurations built in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        const DAY_MS: u64 = 86_400_000;
        let int_max = i32::MAX as u64;
        if let Some(pg) = &self.postgres {
            non_empty("postgres.url", &pg.url)?;
            range(
                "postgres.max_connections",
                pg.max_connections.into(),
                1,
                10_000,
            )?;
            range(
                "postgres.outbox_connections",
                pg.outbox_connections.into(),
                1,
                10_000,
            )?;
            range(
                "postgres.acquire_timeout_ms",
                pg.acquire_timeout_ms,
                1,
                DAY_MS,
            )?;
            // PostgreSQL's own limit for statement_timeout.
            range(
                "postgres.statement_timeout_ms",
                pg.statement_timeout_ms,
                1,
                int_max,
            )?;
            if let Some(schema) = &pg.schema {
                identifier("postgres.schema", schema)?;
            }
            identifier("postgres.migrations_table", &pg.migrations_table)?;
        }
        if let Some(r) = &self.redis {
            non_empty("redis.url", &r.url)?;
            range("redis.pool_size", r.pool_size as u64, 1, 1_024)?;
            range("redis.command_timeout_ms", r.command_timeout_ms, 1, DAY_MS)?;
            let p = &r.key_prefix;
            if p.is_empty()
                || p.len() > 64
                || !p
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                return Err(ConfigError::new(
                    "redis.key_prefix",
                    "must be 1..=64 of [A-Za-z0-9_-]",
                ));
            }
            if !matches!(r.rate_limit_time.as_str(), "server" | "clock") {
                return Err(ConfigError::new(
                    "redis.rate_limit_time",
                    format!("{:?}: expected \"server\" or \"clock\"", r.rate_limit_time),
                ));
            }
        }
        if let Some(k) = &self.kafka {
            non_empty("kafka.brokers", &k.brokers)?;
            for (setting, value) in [
                ("kafka.topic", &k.topic),
                ("kafka.dlq_topic", &k.dlq_topic),
                ("kafka.group_id", &k.group_id),
                ("kafka.client_id", &k.client_id),
            ] {
                if let Some(v) = value {
                    non_empty(setting, v)?;
                }
            }
            // The ranges librdkafka accepts for each property; 0 is "no timeout" for
            // message.timeout.ms, and a valid "send at once" only for linger.ms.
            for (setting, value, min, max) in [
                (
                    "kafka.delivery_timeout_ms",
                    k.delivery_timeout_ms,
                    1,
                    int_max,
                ),
                ("kafka.linger_ms", k.linger_ms, 0, 900_000),
                (
                    "kafka.session_timeout_ms",
                    k.session_timeout_ms,
                    1,
                    3_600_000,
                ),
                (
                    "kafka.heartbeat_interval_ms",
                    k.heartbeat_interval_ms,
                    1,
                    3_600_000,
                ),
                (
                    "kafka.max_poll_interval_ms",
                    k.max_poll_interval_ms,
                    1,
                    DAY_MS,
                ),
                ("kafka.fetch_wait_max_ms", k.fetch_wait_max_ms, 1, 300_000),
            ] {
                if let Some(v) = value {
                    range(setting, v, min, max)?;
                }
            }
            for (setting, value, max) in [
                ("kafka.partitions", k.partitions, 1_000_000),
                ("kafka.replication", k.replication, 1_000),
            ] {
                if let Some(v) = value
                    && !(1..=max).contains(&v)
                {
                    return Err(ConfigError::new(setting, format!("{v}: must be 1..={max}")));
                }
            }
            if k.properties.keys().any(|name| name.trim().is_empty()) {
                return Err(ConfigError::new(
                    "kafka.properties",
                    "a property has no name",
                ));
            }
        }
        let r = &self.relay;
        range("relay.batch", r.batch as u64, 1, 100_000)?;
        range("relay.lease_ms", r.lease_ms, 1, DAY_MS)?;
        range("relay.idle_poll_ms", r.idle_poll_ms, 1, 3_600_000)?;
        range("relay.max_failures", r.max_failures.into(), 1, 1_000_000)?;
        for (setting, value) in [
            ("health_timeout_ms", self.health_timeout_ms),
            ("shutdown_timeout_ms", self.shutdown_timeout_ms),
        ] {
            if let Some(v) = value {
                range(setting, v, 1, DAY_MS)?;
            }
        }
        Ok(())
    }
}

fn range(setting: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        let why = if value == 0 && setting.ends_with("_ms") {
            " (0 would mean no timeout)"
        } else {
            ""
        };
        return Err(ConfigError::new(
            setting,
            format!("{value}: must be {min}..={max}{why}"),
        ));
    }
    Ok(())
}

fn non_empty(setting: &str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::new(setting, "must not be empty"));
    }
    Ok(())
}

fn identifier(setting: &str, s: &str) -> Result<(), ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if !ok {
        return Err(ConfigError::new(
            setting,
            format!("{s:?}: must be 1..=63 of [a-z0-9_], not starting with a digit"),
        ));
    }
    Ok(())
}

/// The table of section `name` (the root for top-level keys); an error naming `var` when the
/// file has something else under that name.
fn section<'a>(
    table: &'a mut toml::Table,
    name: &str,
    var: &str,
) -> Result<&'a mut toml::Table, ConfigError> {
    if name.is_empty() {
        return Ok(table);
    }
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| {
            ConfigError::new(
                format!("{name} ({var})"),
                format!("the file's `{name}` is not a table ([{name}])"),
            )
        })
}

fn set(
    table: &mut toml::Table,
    s: &str,
    k: &str,
    kind: Kind,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let setting = || {
        if s.is_empty() {
            format!("{k} ({var})")
        } else {
            format!("{s}.{k} ({var})")
        }
    };
    let v = match kind {
        Kind::Str => toml::Value::String(value.to_string()),
        Kind::Int => toml::Value::Integer(value.trim().parse().map_err(|_| {
            ConfigError::new(setting(), format!("{value:?} is not a whole number"))
        })?),
        Kind::Bool => toml::Value::Boolean(match value.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(ConfigError::new(
                    setting(),
                    format!("{value:?} is not true or false"),
                ));
            }
        }),
    };
    section(table, s, var)?.insert(k.to_string(), v);
    Ok(())
}

impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("outbox_connections", &self.outbox_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("schema", &self.schema)
            .field("migrations_table", &self.migrations_table)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("rate_limit_time", &self.rate_limit_time)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("delivery_timeout_ms", &self.delivery_timeout_ms)
            .field(
                "properties",
                &self
                    .properties
                    .iter()
                    .map(|(k, v)| (k.as_str(), redact_property(k, v)))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("backends", &self.backends)
            .field("postgres", &self.postgres)
            .field("redis", &self.redis)
            .field("kafka", &self.kafka)
            .field("relay", &self.relay)
            .field("health_timeout_ms", &self.health_timeout_ms)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .finish_non_exhaustive()
    }
}

fn d_outbox_pool() -> u32 {
    2
}
fn d_pg_pool() -> u32 {
    20
}
fn d_redis_pool() -> usize {
    4
}
fn d_5000() -> u64 {
    5_000
}
fn d_3000() -> u64 {
    3_000
}
fn d_prefix() -> String {
    "credo".into()
}
fn d_migrations_table() -> String {
    "_credo_storage_migrations".into()
}
fn d_server() -> String {
    "server".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_all_in_memory_with_a_direct_sink() {
        let c = StorageConfig::from_vars(vars(&[])).unwrap();
        assert_eq!(c.backends, Backends::default());
        assert_eq!(c.backends.users, Backend::InMemory);
        assert_eq!(c.backends.audit_sink, AuditSink::Direct);
        assert_eq!(c.relay, RelaySettings::default());
    }

    #[test]
    fn environment_sets_every_section_and_aliases_fill_gaps() {
        let c = StorageConfig::from_vars(vars(&[
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_SESSIONS", "redis"),
            ("CREDO_BACKENDS_AUDIT_SINK", "kafka"),
            ("DATABASE_URL", "postgres://a:b@h/db"),
            ("CREDO_POSTGRES_MIGRATE", "true"),
            ("CREDO_POSTGRES_MAX_CONNECTIONS", "7"),
            ("REDIS_URL", "redis://r"),
            ("CREDO_REDIS_URL", "redis://wins"),
            ("KAFKA_BROKERS", "k:9092"),
            ("CREDO_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
            ("CREDO_RELAY_BATCH", "250"),
            ("CREDO_TEST_POSTGRES_URL", "ignored"),
            ("CREDO_HTTP_ADDR", "ignored"),
        ]))
        .unwrap();
        assert_eq!(c.backends.users, Backend::Postgres);
        assert_eq!(c.backends.sessions, Backend::Redis);
        assert_eq!(c.backends.audit_sink, AuditSink::Kafka);
        let pg = c.postgres.unwrap();
        assert_eq!(
            (pg.url.as_str(), pg.migrate, pg.max_connections),
            ("postgres://a:b@h/db", true, 7)
        );
        assert_eq!(c.redis.unwrap().url, "redis://wins");
        let k = c.kafka.unwrap();
        assert_eq!(k.brokers, "k:9092");
        assert_eq!(k.properties["security.protocol"], "SASL_SSL");
        assert_eq!(c.relay.batch, 250);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = StorageConfig::from_vars(vars(&[("CREDO_POSTGRES_URLL", "x")])).unwrap_err();
        assert_eq!(e.setting, "CREDO_POSTGRES_URLL");
        let e = StorageConfig::from_vars(vars(&[("CREDO_RELAY_BATCH", "lots")])).unwrap_err();
        assert_eq!(e.setting, "relay.batch (CREDO_RELAY_BATCH)");
        let e = StorageConfig::from_vars(vars(&[("CREDO_BACKENDS_USERS", "mongo")])).unwrap_err();
        assert!(e.to_string().contains("mongo"), "{e}");
        let e = StorageConfig::from_toml_str("[postgres]\nurl = 'x'\npool = 3\n").unwrap_err();
        assert!(e.to_string().contains("pool"), "{e}");
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("credo-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("storage.toml");
        std::fs::write(
            &file,
            "[backends]\nusers = 'postgres'\nsessions = 'postgres'\n",
        )
        .unwrap();
        let c = StorageConfig::from_vars(vars(&[
            ("CREDO_CONFIG_FILE", file.to_str().unwrap()),
            ("CREDO_BACKENDS_SESSIONS", "redis"),
        ]))
        .unwrap();
        assert_eq!(c.backends.users, Backend::Postgres);
        assert_eq!(c.backends.sessions, Backend::Redis);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_hosts_own_credo_variables_pass_untouched() {
        let c = StorageConfig::from_vars(vars(&[
            ("CREDO_FOO", "the host's"),
            ("CREDO_HTTP_ADDR", "0.0.0.0:80"),
            ("CREDO_LOG_LEVEL", "debug"),
            ("CREDO_POSTGRESQL_URL", "another section name is the host's"),
            ("CREDO_BACKENDS_USERS", "inmemory"),
        ]))
        .unwrap();
        assert_eq!(c.backends.users, Backend::InMemory);
    }

    #[test]
    fn typos_inside_the_storages_sections_are_still_errors() {
        for typo in [
            "CREDO_POSTGRES_URLL",
            "CREDO_BACKENDS_USER",
            "CREDO_REDIS_POOLSIZE",
            "CREDO_KAFKA_BROKER",
            "CREDO_RELAY_LEASE",
            "CREDO_HEALTH_TIMEOUT",
            "CREDO_SHUTDOWN_TIMEOUT_S",
        ] {
            let e = StorageConfig::from_vars(vars(&[(typo, "1")])).unwrap_err();
            assert_eq!(e.setting, typo);
            assert!(e.reason.contains("not a credo-storage setting"), "{e}");
        }
    }

    #[test]
    fn another_prefix_moves_the_whole_namespace() {
        let c = StorageConfig::from_vars_with_prefix(
            "AUTH_STORE_",
            vars(&[
                ("AUTH_STORE_BACKENDS_USERS", "postgres"),
                ("AUTH_STORE_POSTGRES_URL", "postgres://u@h/db"),
                ("AUTH_STORE_KAFKA_BROKERS", "b:1"),
                ("AUTH_STORE_KAFKA_PROPERTY_SASL_PASSWORD", "x"),
                // The default prefix is the host's now, typos and all.
                ("CREDO_POSTGRES_URLL", "host's"),
                ("CREDO_BACKENDS_USERS", "mongo"),
            ]),
        )
        .unwrap();
        assert_eq!(c.backends.users, Backend::Postgres);
        assert_eq!(c.postgres.unwrap().url, "postgres://u@h/db");
        assert_eq!(c.kafka.unwrap().properties["sasl.password"], "x");
        let e = StorageConfig::from_vars_with_prefix(
            "AUTH_STORE_",
            vars(&[("AUTH_STORE_POSTGRES_URLL", "x")]),
        )
        .unwrap_err();
        assert_eq!(e.setting, "AUTH_STORE_POSTGRES_URLL");
        for bad in ["", "lower_", "A-B_"] {
            assert!(
                StorageConfig::from_vars_with_prefix(bad, vars(&[])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_duration_and_size_is_validated_by_name() {
        let pg = "[postgres]\nurl = 'postgres://u@h/db'\n";
        let redis = "[redis]\nurl = 'redis://h'\n";
        let kafka = "[kafka]\nbrokers = 'b:1'\n";
        for (toml, setting) in [
            (
                format!("{pg}max_connections = 0"),
                "postgres.max_connections",
            ),
            (
                format!("{pg}max_connections = 10001"),
                "postgres.max_connections",
            ),
            (
                format!("{pg}outbox_connections = 0"),
                "postgres.outbox_connections",
            ),
            (
                format!("{pg}acquire_timeout_ms = 0"),
                "postgres.acquire_timeout_ms",
            ),
            (
                format!("{pg}statement_timeout_ms = 0"),
                "postgres.statement_timeout_ms",
            ),
            (
                format!("{pg}statement_timeout_ms = 2147483648"),
                "postgres.statement_timeout_ms",
            ),
            (format!("{pg}schema = 'A;drop'"), "postgres.schema"),
            (
                format!("{pg}migrations_table = ''"),
                "postgres.migrations_table",
            ),
            ("[postgres]\nurl = ' '".to_string(), "postgres.url"),
            (format!("{redis}pool_size = 0"), "redis.pool_size"),
            (
                format!("{redis}command_timeout_ms = 0"),
                "redis.command_timeout_ms",
            ),
            (
                format!("{redis}command_timeout_ms = 9223372036854775807"),
                "redis.command_timeout_ms",
            ),
            (format!("{redis}key_prefix = 'a b'"), "redis.key_prefix"),
            (
                format!("{redis}rate_limit_time = 'sundial'"),
                "redis.rate_limit_time",
            ),
            (
                format!("{kafka}delivery_timeout_ms = 0"),
                "kafka.delivery_timeout_ms",
            ),
            (format!("{kafka}linger_ms = 900001"), "kafka.linger_ms"),
            (
                format!("{kafka}session_timeout_ms = 0"),
                "kafka.session_timeout_ms",
            ),
            (
                format!("{kafka}heartbeat_interval_ms = 0"),
                "kafka.heartbeat_interval_ms",
            ),
            (
                format!("{kafka}max_poll_interval_ms = 0"),
                "kafka.max_poll_interval_ms",
            ),
            (
                format!("{kafka}fetch_wait_max_ms = 0"),
                "kafka.fetch_wait_max_ms",
            ),
            (format!("{kafka}partitions = 0"), "kafka.partitions"),
            (format!("{kafka}replication = -1"), "kafka.replication"),
            (format!("{kafka}topic = ''"), "kafka.topic"),
            ("[relay]\nbatch = 0".to_string(), "relay.batch"),
            ("[relay]\nlease_ms = 0".to_string(), "relay.lease_ms"),
            (
                "[relay]\nidle_poll_ms = 0".to_string(),
                "relay.idle_poll_ms",
            ),
            (
                "[relay]\nmax_failures = 0".to_string(),
                "relay.max_failures",
            ),
            ("health_timeout_ms = 0".to_string(), "health_timeout_ms"),
            ("shutdown_timeout_ms = 0".to_string(), "shutdown_timeout_ms"),
            (
                "shutdown_timeout_ms = 86400001".to_string(),
                "shutdown_timeout_ms",
            ),
        ] {
            let e = StorageConfig::from_toml_str(&toml).unwrap_err();
            assert_eq!(e.setting, setting, "{toml}: {e}");
        }
        let e = StorageConfig::from_vars(vars(&[
            ("CREDO_POSTGRES_URL", "postgres://u@h/db"),
            ("CREDO_POSTGRES_STATEMENT_TIMEOUT_MS", "0"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "postgres.statement_timeout_ms");
        assert!(e.reason.contains("no timeout"), "{e}");
    }

    #[test]
    fn a_file_section_that_is_no_table_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("credo-cfg-nt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("storage.toml");
        std::fs::write(
            &file,
            "postgres = 1
",
        )
        .unwrap();
        let e = StorageConfig::from_vars(vars(&[
            ("CREDO_CONFIG_FILE", file.to_str().unwrap()),
            ("CREDO_POSTGRES_URL", "postgres://h/db"),
        ]))
        .unwrap_err();
        assert_eq!(e.setting, "postgres (CREDO_POSTGRES_URL)");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = StorageConfig::from_toml_str(
            "[postgres]\nurl = 'postgres://u:p@ss/w?rd#x@h/db?sslpassword=k3y'\n\
             [redis]\nurl = 'redis://:r3d@h'\n\
             [kafka]\nbrokers = 'b:1'\n[kafka.properties]\n\
             'sasl.password' = 'k4fka'\n'ssl.key.pem' = 'PEMDATA'\n'security.protocol' = 'SASL_SSL'\n",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        for secret in ["p@ss", "w?rd", "k3y", "r3d", "k4fka", "PEMDATA"] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
        assert!(dbg.contains("SASL_SSL"), "{dbg}");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5/d"),
            "postgres://u:***@h:5/d"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
