//! The facade's typed configuration: which backend serves each port, and each backend's
//! settings. Read from an optional TOML file and environment variables (the environment
//! wins); every error names the setting.

mod adapters;
pub mod declare;
pub mod reference;
mod sections;

use credo_ports::capability::{Capabilities, Port, Support};
use declare::{Kind, Setting};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

pub use adapters::{MaintenanceJob, Schedule};
pub use sections::{
    Backends, KafkaSettings, MaintenanceSettings, PostgresSettings, ReadinessSettings,
    RedisSettings, RelaySettings, StorageConfig,
};

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

impl declare::Value for Backend {
    /// Refuses a backend whose adapter declares it does not serve the setting's port. A
    /// backend not compiled in is refused later, naming its cargo feature.
    fn check(&self, setting: &Setting) -> Result<(), ConfigError> {
        let declare::Check::ServedBy(port) = setting.check else {
            return Ok(());
        };
        if let Some(Support::No(why)) = self.capabilities().map(|c| c.supports(port)) {
            return Err(ConfigError::new(
                setting.path(),
                format!(
                    "{} does not implement this port ({why}); choose {}",
                    self.as_str(),
                    Backend::choices(port)
                ),
            ));
        }
        Ok(())
    }
}

impl declare::Value for AuditSink {
    fn check(&self, _: &Setting) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl AuditSink {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditSink::Direct => "direct",
            AuditSink::Kafka => "kafka",
        }
    }
}

impl Backend {
    /// Every backend that can serve a store port.
    pub const ALL: [Backend; 3] = [Backend::InMemory, Backend::Postgres, Backend::Redis];

    /// The ports its adapter declares it serves; `None` when its cargo feature is not
    /// compiled in.
    pub fn capabilities(self) -> Option<Capabilities> {
        #[allow(unreachable_patterns)] // every arm is compiled in with every feature
        match self {
            #[cfg(feature = "inmemory")]
            Backend::InMemory => Some(credo_adapters_inmemory::CAPABILITIES),
            #[cfg(feature = "postgres")]
            Backend::Postgres => Some(credo_adapters_postgres::CAPABILITIES),
            #[cfg(feature = "redis")]
            Backend::Redis => Some(credo_adapters_redis::CAPABILITIES),
            _ => None,
        }
    }

    /// The compiled-in backends that serve `port`.
    pub fn serving(port: Port) -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.capabilities().is_some_and(|c| c.serves(port)))
            .collect()
    }

    /// The compiled-in backends that serve `port`, as an error message offers them
    /// (`inmemory or postgres`).
    pub(crate) fn choices(port: Port) -> String {
        let names: Vec<&str> = Backend::serving(port).iter().map(|b| b.as_str()).collect();
        names.join(" or ")
    }

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

/// The default prefix of the environment variables.
pub const DEFAULT_ENV_PREFIX: &str = "CREDO_";

/// Every setting that can come from the environment, as declared.
pub fn settings() -> impl Iterator<Item = &'static Setting> {
    sections::all()
}

/// `section.key` of the declared setting an adapter's field comes from: the field itself, or
/// its `_ms` form (`statement_timeout` -> `postgres.statement_timeout_ms`); an undeclared
/// field keeps its own name.
pub(crate) fn declared_setting(section: &str, field: &str) -> String {
    let key = settings()
        .filter(|s| s.section == section)
        .map(|s| s.key)
        .find(|key| *key == field || key.strip_suffix("_ms") == Some(field))
        .unwrap_or(field);
    format!("{section}.{key}")
}

/// The variable of `setting` under `prefix` (`CREDO_POSTGRES_URL`); for the property map, the
/// prefix of its variables (`CREDO_KAFKA_PROPERTY_`).
pub fn env_var(prefix: &str, setting: &Setting) -> String {
    if setting.kind == Kind::Map {
        return format!("{prefix}{}_PROPERTY_", setting.section.to_ascii_uppercase());
    }
    env_name(prefix, setting.section, setting.key)
}

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
    // A top-level setting's stem is its key without the unit (`HEALTH_TIMEOUT`).
    settings()
        .map(|s| {
            if s.section.is_empty() {
                s.key.trim_end_matches("_ms").to_ascii_uppercase()
            } else {
                format!("{}_", s.section.to_ascii_uppercase())
            }
        })
        .any(|stem| rest.starts_with(&stem))
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
    /// `CREDO_POSTGRES_`, `CREDO_REDIS_`, `CREDO_KAFKA_`, `CREDO_RELAY_`, `CREDO_READINESS_`)
    /// or starting like a top-level setting (`CREDO_HEALTH_TIMEOUT`, `CREDO_SHUTDOWN_TIMEOUT`). There, a name
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
            let Some(setting) = settings()
                .filter(|s| s.kind != Kind::Map)
                .find(|s| env_name(prefix, s.section, s.key) == *var)
            else {
                return Err(ConfigError::new(
                    var.clone(),
                    format!(
                        "not a credo-storage setting, though it is in its namespace \
                         ({prefix}<SECTION>_<KEY>; see StorageConfig::from_env for the names)"
                    ),
                ));
            };
            set(&mut table, setting, var, value)?;
        }
        for setting in settings() {
            if let Some(alias) = setting.alias
                && let Some(value) = vars.get(alias)
                && !vars.contains_key(&env_name(prefix, setting.section, setting.key))
            {
                set(&mut table, setting, alias, value)?;
            }
        }
        Self::from_table(table)
    }

    fn from_table(mut table: toml::Table) -> Result<Self, ConfigError> {
        read_secret_files(&mut table)?;
        // serde_path_to_error would be one more dependency; toml's own message names the key.
        let config = StorageConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::new("(config)", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Bound of each readiness check.
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(
            self.health_timeout_ms
                .unwrap_or(sections::DEFAULT_HEALTH_TIMEOUT_MS),
        )
    }

    /// Bound of shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(
            self.shutdown_timeout_ms
                .unwrap_or(sections::DEFAULT_SHUTDOWN_TIMEOUT_MS),
        )
    }

    /// Checks every duration, size and name against its declaration, naming the setting: no
    /// timeout of 0 (drivers read it as "no timeout"), no pool of 0, nothing beyond what the
    /// backend accepts (a day for timeouts PostgreSQL, Redis or librdkafka would take
    /// longer). Run by the loaders and by [`crate::Storage::connect`] (for configurations
    /// built in code).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_fields()?;
        self.readiness.check_order()?;
        self.maintenance.check_order()
    }
}

/// The secrets given by file (`*_FILE` variables, `url_file` keys, `<property>.file` Kafka
/// properties) read into the values they stand for. A value given both inline and by file is
/// an error; so is a file that cannot be read (named, never its content).
fn read_secret_files(table: &mut toml::Table) -> Result<(), ConfigError> {
    fn read(setting: &str, path: &toml::Value) -> Result<String, ConfigError> {
        let path = path
            .as_str()
            .ok_or_else(|| ConfigError::new(setting, "must be a file path"))?;
        std::fs::read_to_string(path)
            .map(credo_ports::redact::secret_file_text)
            .map_err(|e| ConfigError::new(setting, format!("reading {path}: {}", e.kind())))
    }
    for name in ["postgres", "redis"] {
        let Some(section) = table.get_mut(name).and_then(|v| v.as_table_mut()) else {
            continue;
        };
        if let Some(path) = section.get("url_file") {
            let setting = format!("{name}.url_file");
            if section.contains_key("url") {
                return Err(ConfigError::new(
                    setting,
                    format!("give {name}.url inline or by file, not both"),
                ));
            }
            let url = read(&setting, path)?;
            section.insert("url".into(), toml::Value::String(url));
        }
    }
    if let Some(props) = table
        .get_mut("kafka")
        .and_then(|v| v.as_table_mut())
        .and_then(|k| k.get_mut("properties"))
        .and_then(|v| v.as_table_mut())
    {
        let by_file: Vec<String> = props
            .keys()
            .filter(|k| k.ends_with(".file"))
            .cloned()
            .collect();
        for key in by_file {
            let property = key.trim_end_matches(".file").to_string();
            let setting = format!("kafka.properties.{key}");
            if props.contains_key(&property) {
                return Err(ConfigError::new(
                    setting,
                    format!("give {property} inline or by file, not both"),
                ));
            }
            let Some(path) = props.remove(&key) else {
                continue;
            };
            let value = read(&setting, &path)?;
            props.insert(property, toml::Value::String(value));
        }
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
    setting: &Setting,
    var: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let (s, k, kind) = (setting.section, setting.key, setting.kind);
    let setting = || format!("{} ({var})", setting.path());
    let v = match kind {
        Kind::Text | Kind::Map | Kind::Section => toml::Value::String(value.to_string()),
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

#[cfg(test)]
mod tests;
