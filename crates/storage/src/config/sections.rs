//! Every setting of the facade, declared once: type, environment kind, bounds, default and
//! secrecy. The adapters' defaults are read from the adapters' config types, never repeated.

use super::declare::{Check, Default, Secret, Setting, settings};
use super::{AuditSink, Backend};
use credo_ports::SecretString;
use credo_ports::capability::Port;
use std::collections::BTreeMap;

/// A day, the bound of timeouts no backend bounds itself.
const DAY_MS: i128 = 86_400_000;
/// PostgreSQL's and librdkafka's bound of a millisecond setting.
const INT_MAX: i128 = i32::MAX as i128;
/// Default bound of each readiness check.
pub(crate) const DEFAULT_HEALTH_TIMEOUT_MS: u64 = 2_000;
/// Default bound of shutdown.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// A default read from an adapter's config type, when that adapter is compiled in.
macro_rules! from_adapter {
    ($feature:literal, $make:expr, |$c:ident| $e:expr) => {{
        #[cfg(feature = $feature)]
        fn read() -> Option<String> {
            let $c = $make;
            Some($e)
        }
        #[cfg(not(feature = $feature))]
        fn read() -> Option<String> {
            None
        }
        Default::From(read)
    }};
}

macro_rules! pg {
    (|$c:ident| $e:expr) => {
        from_adapter!(
            "postgres",
            credo_adapters_postgres::PgConfig::new(""),
            |$c| $e
        )
    };
}
macro_rules! redis {
    (|$c:ident| $e:expr) => {
        from_adapter!("redis", credo_adapters_redis::RedisConfig::new(""), |$c| $e)
    };
}
macro_rules! kafka {
    (|$c:ident| $e:expr) => {
        from_adapter!("kafka", credo_adapters_kafka::KafkaConfig::new(""), |$c| $e)
    };
}

/// Milliseconds of a duration, as the reference shows them.
fn ms(d: std::time::Duration) -> String {
    d.as_millis().to_string()
}

/// A relay default (the pipeline is always compiled in).
macro_rules! relay {
    (|$c:ident| $e:expr) => {{
        fn read() -> Option<String> {
            let $c = credo_pipeline::RelayConfig::default();
            Some($e)
        }
        Default::From(read)
    }};
}

fn default_backend() -> Option<String> {
    Some(Backend::default().as_str().into())
}

fn default_sink() -> Option<String> {
    Some(AuditSink::default().as_str().into())
}

settings! {
    /// The backend of each port. Users, consents and audit must share one backend: their audit
    /// events go to that backend's outbox in the same transaction as the change.
    #[derive(Default, PartialEq, Eq)]
    #[serde(default)]
    pub struct Backends in "backends" {
        /// Backend of the user store.
        users: Backend => Setting::text()
            .default(Default::From(default_backend))
            .check(Check::ServedBy(Port::Users)),
        /// Backend of the session store.
        sessions: Backend => Setting::text()
            .default(Default::From(default_backend))
            .check(Check::ServedBy(Port::Sessions)),
        /// Backend of the consent store.
        consents: Backend => Setting::text()
            .default(Default::From(default_backend))
            .check(Check::ServedBy(Port::Consents)),
        /// Backend of the audit log (and of the outbox the other stores record into).
        audit: Backend => Setting::text()
            .default(Default::From(default_backend))
            .check(Check::ServedBy(Port::Audit)),
        /// Backend of the rate limiter.
        rate_limits: Backend => Setting::text()
            .default(Default::From(default_backend))
            .check(Check::ServedBy(Port::RateLimits)),
        /// Where the relay publishes audit events: straight into the audit store, or to Kafka.
        audit_sink: AuditSink => Setting::text()
            .default(Default::From(default_sink))
            .check(Check::OneOf(&["direct", "kafka"])),
    }
}

settings! {
    /// `[postgres]`: the PostgreSQL backend (`PgConfig`).
    pub struct PostgresSettings in "postgres" {
        /// Connection URL (any libpq `sslmode`); never printed with its secrets. Required,
        /// inline or through `url_file`.
        #[serde(default)]
        url: SecretString => Setting::text()
            .required()
            .check(Check::NonEmpty)
            .secret(Secret::Url)
            .alias("DATABASE_URL")
            .accepted("a `postgres://` URL"),
        /// A file holding the URL instead of `url` (a container or Kubernetes secret), read at
        /// start and again every `url_refresh_ms`: a rotated password reaches the connections
        /// opened after it, without a restart.
        #[serde(default)]
        url_file: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .alias("DATABASE_URL_FILE")
            .default(Default::Value("none")),
        /// How often `url_file` is read again.
        #[serde(default)]
        url_refresh_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(pg!(|c| ms(c.url_refresh))),
        /// Pool size.
        #[serde(default)]
        max_connections: Option<u32> => Setting::int(1, 10_000)
            .default(pg!(|c| c.max_connections.to_string())),
        /// Connections of the outbox relay's own pool.
        #[serde(default)]
        outbox_connections: Option<u32> => Setting::int(1, 10_000)
            .default(pg!(|c| c.outbox_connections.to_string())),
        /// Pool acquire timeout.
        #[serde(default)]
        acquire_timeout_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(pg!(|c| ms(c.acquire_timeout))),
        /// `statement_timeout` of every connection (at most PostgreSQL's limit).
        #[serde(default)]
        statement_timeout_ms: Option<u64> => Setting::int(1, INT_MAX)
            .default(pg!(|c| ms(c.statement_timeout))),
        /// Schema of the tables and of the migrations table, created by `migrate` if missing;
        /// every connection's `search_path` is set to it.
        #[serde(default)]
        schema: Option<String> => Setting::text()
            .check(Check::Identifier)
            .default(Default::Value("the server's `search_path`")),
        /// Table recording our applied migrations (a host's own sqlx migrations in
        /// `_sqlx_migrations` never clash with it).
        #[serde(default)]
        migrations_table: Option<String> => Setting::text()
            .check(Check::Identifier)
            .default(pg!(|c| format!("`{}`", c.migrations_table))),
        /// Run the embedded migrations at start-up.
        #[serde(default)]
        migrate: bool => Setting::flag("false"),
        /// Role every connection acts as (`SET ROLE`): the application role, when the URL's
        /// login is a member of it (docs/security.md).
        #[serde(default)]
        role: Option<String> => Setting::text()
            .check(Check::Identifier)
            .default(Default::Value("the URL's login role")),
        /// After migrating (`migrate`, or `credo-admin migrations up`), grant this
        /// application role what the stores need and nothing more (read-write tables, an
        /// append-only audit log, the retention functions); the URL's login must own the
        /// schema (docs/security.md).
        #[serde(default)]
        app_role: Option<String> => Setting::text()
            .check(Check::Identifier)
            .default(Default::Value("none: no grants")),
    }
}

settings! {
    /// `[redis]`: the Redis backend (`RedisConfig`), for sessions and rate limits.
    pub struct RedisSettings in "redis" {
        /// `redis://` or `rediss://` URL; never printed with its secrets. Required, inline or
        /// through `url_file`.
        #[serde(default)]
        url: SecretString => Setting::text()
            .required()
            .check(Check::NonEmpty)
            .secret(Secret::Url)
            .alias("REDIS_URL")
            .accepted("a `redis://` or `rediss://` URL"),
        /// A file holding the URL instead of `url` (a container or Kubernetes secret), read at
        /// start; its user and password are read again for every new connection, so a rotated
        /// password takes effect at the next reconnection, without a restart.
        #[serde(default)]
        url_file: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .alias("REDIS_URL_FILE")
            .default(Default::Value("none")),
        /// Connections.
        #[serde(default)]
        pool_size: Option<usize> => Setting::int(1, 1_024)
            .default(redis!(|c| c.pool_size.to_string())),
        /// Command timeout.
        #[serde(default)]
        command_timeout_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(redis!(|c| ms(c.command_timeout))),
        /// Prefix of every key.
        #[serde(default)]
        key_prefix: Option<String> => Setting::text()
            .check(Check::KeyPrefix)
            .default(redis!(|c| format!("`{}`", c.key_prefix))),
        /// The rate limiter's time source: Redis `TIME` (`server`) or the service's clock
        /// (`clock`).
        #[serde(default)]
        rate_limit_time: Option<String> => Setting::text()
            .check(Check::OneOf(&["server", "clock"]))
            .default(redis!(|c| format!("`{}`", c.rate_limit_time.as_str()))),
        /// PEM file of the CA certificate(s) that verify the server's certificate, instead of
        /// the system's trust store (`rediss://` only; docs/security.md).
        #[serde(default)]
        tls_ca_file: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(Default::Value("the system's trust store"))
            .accepted("a PEM file"),
        /// PEM file of the client certificate for mutual TLS, with `tls_key_file`
        /// (`rediss://` only).
        #[serde(default)]
        tls_cert_file: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(Default::Value("none"))
            .accepted("a PEM file"),
        /// PEM file of the client certificate's private key, with `tls_cert_file`.
        #[serde(default)]
        tls_key_file: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(Default::Value("none"))
            .accepted("a PEM file"),
    }
}

settings! {
    /// `[kafka]`: the Kafka audit transport (`KafkaConfig`).
    pub struct KafkaSettings in "kafka" {
        /// `bootstrap.servers`.
        brokers: String => Setting::text().required().check(Check::NonEmpty).alias("KAFKA_BROKERS"),
        /// Audit topic.
        #[serde(default)]
        topic: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(kafka!(|c| format!("`{}`", c.topic))),
        /// Dead-letter topic.
        #[serde(default)]
        dlq_topic: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(kafka!(|c| format!("`{}`", c.dlq_topic))),
        /// Consumer group of the audit consumer.
        #[serde(default)]
        group_id: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(kafka!(|c| format!("`{}`", c.group_id))),
        /// `client.id`.
        #[serde(default)]
        client_id: Option<String> => Setting::text()
            .check(Check::NonEmpty)
            .default(kafka!(|c| format!("`{}`", c.client_id))),
        /// `message.timeout.ms` (0 would be infinite).
        #[serde(default)]
        delivery_timeout_ms: Option<u64> => Setting::int(1, INT_MAX)
            .default(kafka!(|c| ms(c.delivery_timeout))),
        /// `linger.ms` (0 sends at once).
        #[serde(default)]
        linger_ms: Option<u64> => Setting::int(0, 900_000).default(kafka!(|c| ms(c.linger))),
        /// `session.timeout.ms`.
        #[serde(default)]
        session_timeout_ms: Option<u64> => Setting::int(1, 3_600_000)
            .default(kafka!(|c| c.session_timeout.map_or("librdkafka's".into(), ms))),
        /// `heartbeat.interval.ms`.
        #[serde(default)]
        heartbeat_interval_ms: Option<u64> => Setting::int(1, 3_600_000)
            .default(kafka!(|c| c.heartbeat_interval.map_or("librdkafka's".into(), ms))),
        /// `max.poll.interval.ms`.
        #[serde(default)]
        max_poll_interval_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(kafka!(|c| c.max_poll_interval.map_or("librdkafka's".into(), ms))),
        /// `fetch.wait.max.ms`.
        #[serde(default)]
        fetch_wait_max_ms: Option<u64> => Setting::int(1, 300_000)
            .default(kafka!(|c| ms(c.fetch_wait_max))),
        /// Create the topics at start-up if missing.
        #[serde(default)]
        ensure_topics: bool => Setting::flag("false"),
        /// Partitions of created topics.
        #[serde(default)]
        partitions: Option<i32> => Setting::int(1, 1_000_000)
            .default(kafka!(|c| c.partitions.to_string())),
        /// Replication of created topics.
        #[serde(default)]
        replication: Option<i32> => Setting::int(1, 1_000)
            .default(kafka!(|c| c.replication.to_string())),
        /// `retention.ms` of the audit topic `ensure_topics` creates: also how far back the
        /// audit log can be rebuilt from the topic.
        #[serde(default)]
        retention_ms: Option<u64> => Setting::int(1, i64::MAX as i128)
            .default(kafka!(|c| c.retention.map_or("the broker's".into(), ms))),
        /// `retention.ms` of the dead-letter topic `ensure_topics` creates.
        #[serde(default)]
        dlq_retention_ms: Option<u64> => Setting::int(1, i64::MAX as i128)
            .default(kafka!(|c| c.dlq_retention.map_or("the broker's".into(), ms))),
        /// `min.insync.replicas` of the topics `ensure_topics` creates (at most `replication`).
        #[serde(default)]
        min_insync_replicas: Option<i32> => Setting::int(1, 1_000)
            .default(kafka!(|c| c.min_insync_replicas.map_or("the broker's".into(), |n| n.to_string()))),
        /// Any librdkafka property (`security.protocol`, `sasl.*`, `ssl.*`, ...); values whose
        /// name holds a secret are never printed.
        #[serde(default)]
        properties: BTreeMap<String, SecretString> => Setting::new(super::declare::Kind::Map)
            .check(Check::NamedEntries)
            .secret(Secret::Properties)
            .accepted("`properties.<name>`: any librdkafka property"),
    }
}

settings! {
    /// `[relay]`: the outbox relay (`RelayConfig`).
    #[derive(Default, PartialEq, Eq)]
    #[serde(default)]
    pub struct RelaySettings in "relay" {
        /// Rows per pass.
        batch: Option<usize> => Setting::int(1, 100_000).default(relay!(|c| c.batch.to_string())),
        /// Claim lease, measured on the database's clock; must be longer than
        /// `kafka.delivery_timeout_ms`.
        lease_ms: Option<u64> => Setting::int(1, DAY_MS).default(relay!(|c| ms(c.lease))),
        /// Pause after an empty pass.
        idle_poll_ms: Option<u64> => Setting::int(1, 3_600_000)
            .default(relay!(|c| ms(c.idle_poll))),
        /// Rejections after which an event is set aside as a dead letter.
        max_failures: Option<u32> => Setting::int(1, 1_000_000)
            .default(relay!(|c| c.max_failures.to_string())),
    }
}

/// A readiness default (the pipeline is always compiled in).
macro_rules! backlog {
    (|$c:ident| $e:expr) => {{
        fn read() -> Option<String> {
            let $c = credo_pipeline::BacklogThresholds::default();
            Some($e)
        }
        Default::From(read)
    }};
}

/// Default lifetime of a readiness report.
pub(crate) const DEFAULT_READINESS_CACHE_MS: u64 = 1_000;
/// Default silence after which the relay or consumer counts as stopped.
pub(crate) const DEFAULT_STALL_AFTER_MS: u64 = 60_000;
/// Default interval of the facade's own readiness reports (which export the checks' metrics).
pub(crate) const DEFAULT_REPORT_EVERY_MS: u64 = 15_000;

settings! {
    /// `[readiness]`: what `GET /health/ready` checks beyond the backends.
    #[derive(Default, PartialEq, Eq)]
    #[serde(default)]
    pub struct ReadinessSettings in "readiness" {
        /// How long a readiness report is served before the checks run again (0: every probe
        /// runs them); probes arriving meanwhile share one run.
        cache_ms: Option<u64> => Setting::int(0, DAY_MS)
            .default(Default::Number(DEFAULT_READINESS_CACHE_MS)),
        /// How often the facade runs the readiness checks itself, so that their metrics
        /// (`credo_readiness_*`, `credo_pool_connections`) stay current without probes (0:
        /// only when probed).
        report_every_ms: Option<u64> => Setting::int(0, DAY_MS)
            .default(Default::Number(DEFAULT_REPORT_EVERY_MS)),
        /// Silence after which the relay or the audit consumer (no completed pass) is `failed`;
        /// with Kafka, longer than the consumer's idle wait (1 s), at which an idle consumer
        /// reports.
        stall_after_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(Default::Number(DEFAULT_STALL_AFTER_MS)),
        /// Pending outbox events above which readiness is `degraded`.
        backlog_warning: Option<u64> => Setting::int(0, i64::MAX as i128)
            .default(backlog!(|c| c.depth_warning.to_string())),
        /// Pending outbox events above which readiness is `failed` (at least `backlog_warning`).
        backlog_critical: Option<u64> => Setting::int(0, i64::MAX as i128)
            .default(backlog!(|c| c.depth_critical.to_string())),
        /// Age of the oldest pending event above which readiness is `degraded`.
        backlog_age_warning_ms: Option<u64> => Setting::int(1, DAY_MS * 365)
            .default(backlog!(|c| ms(c.age_warning))),
        /// Age of the oldest pending event above which readiness is `failed` (at least
        /// `backlog_age_warning_ms`).
        backlog_age_critical_ms: Option<u64> => Setting::int(1, DAY_MS * 365)
            .default(backlog!(|c| ms(c.age_critical))),
    }
}

/// A maintenance default of the runner itself.
macro_rules! maintenance {
    (|$c:ident| $e:expr) => {{
        fn read() -> Option<String> {
            let $c = credo_pipeline::MaintenanceConfig::default();
            Some($e)
        }
        Default::From(read)
    }};
}

/// Seven years (of 365.25 days): the seed's audit history.
pub(crate) const DEFAULT_AUDIT_KEEP_DAYS: u64 = 2_557;
/// Default interval of the session and rate-limit purges.
pub(crate) const DEFAULT_SHORT_JOB_INTERVAL_MS: u64 = 300_000;
/// Default interval of the outbox purge.
pub(crate) const DEFAULT_OUTBOX_INTERVAL_MS: u64 = 600_000;
/// Default age of published outbox rows the outbox purge removes.
pub(crate) const DEFAULT_OUTBOX_KEEP_MS: u64 = 86_400_000;
/// Default interval of the audit retention purges.
pub(crate) const DEFAULT_AUDIT_INTERVAL_MS: u64 = 3_600_000;
/// Default days per audit partition: a week, about 605 million events at the seed's 1,000/s.
pub(crate) const DEFAULT_AUDIT_PARTITION_DAYS: u64 = 7;
/// Default audit partitions made ahead: four weeks, so a month without maintenance still
/// routes every event to its partition.
pub(crate) const DEFAULT_AUDIT_PARTITIONS_AHEAD: u64 = 4;

settings! {
    /// `[maintenance]`: the purges every instance runs in the background, one instance per job
    /// at a time (a lease on the job's backend). Each job can be switched off.
    #[derive(Default, PartialEq, Eq)]
    #[serde(default)]
    pub struct MaintenanceSettings in "maintenance" {
        /// Whether the runner runs at all (off: nothing is ever purged).
        enabled: Option<bool> => Setting::flag("true"),
        /// Rows one purge statement removes at most.
        batch: Option<u32> => Setting::int(1, 100_000)
            .default(maintenance!(|c| c.batch.to_string())),
        /// Pause between two batches of a job.
        pause_ms: Option<u64> => Setting::int(0, 60_000)
            .default(maintenance!(|c| ms(c.pause))),
        /// Lease of a running job, renewed between batches: how long a crashed instance keeps
        /// its job from the others (longer than `pause_ms`).
        lease_ms: Option<u64> => Setting::int(1_000, DAY_MS)
            .default(maintenance!(|c| ms(c.lease))),
        /// Failed runs in a row after which readiness says `degraded` (check `maintenance`).
        failing_after: Option<u32> => Setting::int(1, 1_000)
            .default(maintenance!(|c| c.failing_after.to_string())),
        /// Purge expired sessions and token revocations.
        sessions: Option<bool> => Setting::flag("true"),
        /// Interval of the session purge.
        sessions_interval_ms: Option<u64> => Setting::int(1_000, DAY_MS)
            .default(Default::Number(DEFAULT_SHORT_JOB_INTERVAL_MS)),
        /// Purge the state of idle rate-limit keys.
        rate_limits: Option<bool> => Setting::flag("true"),
        /// Interval of the rate-limit purge.
        rate_limits_interval_ms: Option<u64> => Setting::int(1_000, DAY_MS)
            .default(Default::Number(DEFAULT_SHORT_JOB_INTERVAL_MS)),
        /// Purge published outbox rows (pending rows and dead letters are never purged).
        outbox: Option<bool> => Setting::flag("true"),
        /// Interval of the outbox purge.
        outbox_interval_ms: Option<u64> => Setting::int(1_000, DAY_MS)
            .default(Default::Number(DEFAULT_OUTBOX_INTERVAL_MS)),
        /// Age of the published outbox rows the outbox purge removes.
        outbox_keep_ms: Option<u64> => Setting::int(0, DAY_MS * 365)
            .default(Default::Number(DEFAULT_OUTBOX_KEEP_MS)),
        /// Delete audit events past their category's retention.
        audit: Option<bool> => Setting::flag("true"),
        /// Interval of the audit retention purges.
        audit_interval_ms: Option<u64> => Setting::int(1_000, DAY_MS)
            .default(Default::Number(DEFAULT_AUDIT_INTERVAL_MS)),
        /// Retention of `compliance` audit events, in days.
        audit_keep_compliance_days: Option<u64> => Setting::int(1, 36_500)
            .default(Default::Number(DEFAULT_AUDIT_KEEP_DAYS)),
        /// Retention of `security` audit events, in days.
        audit_keep_security_days: Option<u64> => Setting::int(1, 36_500)
            .default(Default::Number(DEFAULT_AUDIT_KEEP_DAYS)),
        /// Retention of `operations` audit events, in days.
        audit_keep_operations_days: Option<u64> => Setting::int(1, 36_500)
            .default(Default::Number(DEFAULT_AUDIT_KEEP_DAYS)),
        /// A partitioned audit log (PostgreSQL): make its partitions ahead and drop whole ones
        /// once every event in them is past the longest retention of any category, on the
        /// interval of the audit purges. The audit purges of the categories kept that long then
        /// run two partitions behind, for the events partitions keep back (docs/maintenance.md).
        audit_partitions: Option<bool> => Setting::flag("true"),
        /// Days of recording time per audit partition. A change applies to partitions made
        /// after it; existing ones keep their range.
        audit_partition_days: Option<u64> => Setting::int(1, 366)
            .default(Default::Number(DEFAULT_AUDIT_PARTITION_DAYS)),
        /// Audit partitions kept made past the one holding now.
        audit_partitions_ahead: Option<u64> => Setting::int(1, 520)
            .default(Default::Number(DEFAULT_AUDIT_PARTITIONS_AHEAD)),
    }
}

settings! {
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
    #[derive(Default)]
    #[serde(default)]
    pub struct StorageConfig in "" {
        /// `[backends]`.
        backends: Backends => Setting::section(),
        /// `[postgres]`, needed when a port uses PostgreSQL.
        postgres: Option<PostgresSettings> => Setting::section(),
        /// `[redis]`, needed when a port uses Redis.
        redis: Option<RedisSettings> => Setting::section(),
        /// `[kafka]`, needed when `audit_sink = "kafka"`.
        kafka: Option<KafkaSettings> => Setting::section(),
        /// `[relay]`.
        relay: RelaySettings => Setting::section(),
        /// `[readiness]`.
        readiness: ReadinessSettings => Setting::section(),
        /// `[maintenance]`.
        maintenance: MaintenanceSettings => Setting::section(),
        /// Bound of each readiness check.
        health_timeout_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(Default::Number(DEFAULT_HEALTH_TIMEOUT_MS)),
        /// Bound of `Storage::shutdown`.
        shutdown_timeout_ms: Option<u64> => Setting::int(1, DAY_MS)
            .default(Default::Number(DEFAULT_SHUTDOWN_TIMEOUT_MS)),
    }
}

/// Every declared section, in the order the reference lists them.
pub(crate) fn all() -> impl Iterator<Item = &'static Setting> {
    [
        Backends::SETTINGS,
        PostgresSettings::SETTINGS,
        RedisSettings::SETTINGS,
        KafkaSettings::SETTINGS,
        RelaySettings::SETTINGS,
        ReadinessSettings::SETTINGS,
        MaintenanceSettings::SETTINGS,
        StorageConfig::SETTINGS,
    ]
    .into_iter()
    .flatten()
    .filter(|s| s.kind != super::declare::Kind::Section)
}
