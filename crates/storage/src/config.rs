//! The facade's typed configuration: which backend serves each port, and each backend's
//! settings. Read from an optional TOML file and environment variables (the environment
//! wins); every error names the setting.

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
    /// Schema of the tables (default: the server's `search_path`).
    #[serde(default)]
    pub schema: Option<String>,
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

/// Conventional variables read when the `CREDO_` one is not set.
const ALIASES: &[(&str, &str, &str)] = &[
    ("DATABASE_URL", "postgres", "url"),
    ("REDIS_URL", "redis", "url"),
    ("KAFKA_BROKERS", "kafka", "brokers"),
];

/// Variables under `CREDO_` that are not storage settings.
const NOT_SETTINGS: &[&str] = &["CREDO_CONFIG_FILE", "CREDO_HTTP_ADDR"];

fn env_name(section: &str, key: &str) -> String {
    if section.is_empty() {
        format!("CREDO_{}", key.to_ascii_uppercase())
    } else {
        format!(
            "CREDO_{}_{}",
            section.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        )
    }
}

impl StorageConfig {
    /// Parses a TOML document.
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
    /// A `CREDO_` variable that is no setting is an error, so typos do not pass silently.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// [`from_env`](Self::from_env) over the given variables.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let mut table = match vars.get("CREDO_CONFIG_FILE").filter(|p| !p.is_empty()) {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new("CREDO_CONFIG_FILE", format!("reading {path}: {e}"))
                })?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError::new(format!("CREDO_CONFIG_FILE ({path})"), e.to_string())
                })?
            }
            None => toml::Table::new(),
        };
        for (var, value) in &vars {
            if !var.starts_with("CREDO_")
                || var.starts_with("CREDO_TEST_")
                || NOT_SETTINGS.contains(&var.as_str())
            {
                continue;
            }
            if let Some(name) = var.strip_prefix("CREDO_KAFKA_PROPERTY_") {
                let property = name.to_ascii_lowercase().replace('_', ".");
                section(&mut table, "kafka")
                    .entry("properties")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::new("kafka.properties", "must be a table"))?
                    .insert(property, toml::Value::String(value.clone()));
                continue;
            }
            let Some((s, k, kind)) = ENV_SETTINGS.iter().find(|(s, k, _)| env_name(s, k) == *var)
            else {
                return Err(ConfigError::new(
                    var.clone(),
                    "not a credo-storage setting (see StorageConfig::from_env for the names)",
                ));
            };
            set(&mut table, s, k, *kind, var, value)?;
        }
        for (alias, s, k) in ALIASES {
            if let Some(value) = vars.get(*alias)
                && !vars.contains_key(&env_name(s, k))
            {
                set(&mut table, s, k, Kind::Str, alias, value)?;
            }
        }
        Self::from_table(table)
    }

    fn from_table(table: toml::Table) -> Result<Self, ConfigError> {
        // serde_path_to_error would be one more dependency; toml's own message names the key.
        StorageConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new("(config)", e.to_string()))
    }

    /// Bound of each readiness check.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms.unwrap_or(2_000))
    }

    /// Bound of shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms.unwrap_or(10_000))
    }
}

fn section<'a>(table: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    if name.is_empty() {
        return table;
    }
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("sections are tables")
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
    section(table, s).insert(k.to_string(), v);
    Ok(())
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("outbox_connections", &self.outbox_connections)
            .field("schema", &self.schema)
            .field("migrate", &self.migrate)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("group_id", &self.group_id)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
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
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5/d"),
            "postgres://u:***@h:5/d"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
