//! Settings into the adapters' own config types. Only a setting that was given overrides the
//! adapter's default, so the adapters' defaults are the only defaults.

use super::sections::{
    DEFAULT_AUDIT_INTERVAL_MS, DEFAULT_AUDIT_KEEP_DAYS, DEFAULT_AUDIT_PARTITION_DAYS,
    DEFAULT_AUDIT_PARTITIONS_AHEAD, DEFAULT_OUTBOX_INTERVAL_MS, DEFAULT_OUTBOX_KEEP_MS,
    DEFAULT_READINESS_CACHE_MS, DEFAULT_REPORT_EVERY_MS, DEFAULT_SHORT_JOB_INTERVAL_MS,
    DEFAULT_STALL_AFTER_MS,
};
use super::{ConfigError, MaintenanceSettings, ReadinessSettings, RelaySettings};
use credo_pipeline::{MaintenanceConfig, RelayConfig};
use credo_ports::{AuditCategory, NonZeroU32};
use std::time::Duration;

/// Overrides an adapter's default with a setting that was given.
fn set<T>(field: &mut T, setting: Option<T>) {
    if let Some(v) = setting {
        *field = v;
    }
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

impl super::PostgresSettings {
    /// `[postgres]` with `url` and every other setting unset (the adapter's defaults).
    #[must_use]
    pub fn new(url: impl Into<credo_ports::SecretString>) -> Self {
        Self {
            url: url.into(),
            url_file: None,
            url_refresh_ms: None,
            max_connections: None,
            outbox_connections: None,
            acquire_timeout_ms: None,
            statement_timeout_ms: None,
            schema: None,
            migrations_table: None,
            migrate: false,
            role: None,
            app_role: None,
        }
    }
}

impl super::RedisSettings {
    /// `[redis]` with `url` and every other setting unset (the adapter's defaults).
    #[must_use]
    pub fn new(url: impl Into<credo_ports::SecretString>) -> Self {
        Self {
            url: url.into(),
            url_file: None,
            pool_size: None,
            command_timeout_ms: None,
            key_prefix: None,
            rate_limit_time: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl super::KafkaSettings {
    /// `[kafka]` with `brokers` and every other setting unset (the adapter's defaults).
    #[must_use]
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: None,
            dlq_topic: None,
            group_id: None,
            client_id: None,
            delivery_timeout_ms: None,
            linger_ms: None,
            session_timeout_ms: None,
            heartbeat_interval_ms: None,
            max_poll_interval_ms: None,
            fetch_wait_max_ms: None,
            ensure_topics: false,
            partitions: None,
            replication: None,
            retention_ms: None,
            dlq_retention_ms: None,
            min_insync_replicas: None,
            properties: Default::default(),
        }
    }
}

#[cfg(feature = "postgres")]
impl super::PostgresSettings {
    /// The PostgreSQL adapter's config: its defaults, overridden by what is set.
    pub fn pg_config(&self) -> credo_adapters_postgres::PgConfig {
        let mut c = credo_adapters_postgres::PgConfig::new(&self.url);
        set(&mut c.max_connections, self.max_connections);
        set(&mut c.outbox_connections, self.outbox_connections);
        set(&mut c.acquire_timeout, self.acquire_timeout_ms.map(ms));
        set(&mut c.statement_timeout, self.statement_timeout_ms.map(ms));
        set(&mut c.schema, self.schema.clone().map(Some));
        set(&mut c.migrations_table, self.migrations_table.clone());
        set(&mut c.role, self.role.clone().map(Some));
        set(
            &mut c.url_file,
            self.url_file.clone().map(|f| Some(f.into())),
        );
        set(&mut c.url_refresh, self.url_refresh_ms.map(ms));
        c
    }
}

#[cfg(feature = "redis")]
impl super::RedisSettings {
    /// The Redis adapter's config: its defaults, overridden by what is set.
    pub fn redis_config(&self) -> Result<credo_adapters_redis::RedisConfig, ConfigError> {
        use credo_adapters_redis::TimeSource;
        let mut c = credo_adapters_redis::RedisConfig::new(&self.url);
        set(
            &mut c.url_file,
            self.url_file.clone().map(|f| Some(f.into())),
        );
        set(&mut c.pool_size, self.pool_size);
        set(&mut c.command_timeout, self.command_timeout_ms.map(ms));
        set(&mut c.key_prefix, self.key_prefix.clone());
        let time = match self.rate_limit_time.as_deref() {
            None => None,
            Some("server") => Some(TimeSource::Server),
            Some("clock") => Some(TimeSource::Clock),
            Some(other) => {
                return Err(ConfigError::new(
                    "redis.rate_limit_time",
                    format!("{other:?}: expected \"server\" or \"clock\""),
                ));
            }
        };
        set(&mut c.rate_limit_time, time);
        let file = |f: &Option<String>| f.as_ref().map(|p| Some(std::path::PathBuf::from(p)));
        set(&mut c.tls_ca_file, file(&self.tls_ca_file));
        set(&mut c.tls_cert_file, file(&self.tls_cert_file));
        set(&mut c.tls_key_file, file(&self.tls_key_file));
        Ok(c)
    }
}

#[cfg(feature = "kafka")]
impl super::KafkaSettings {
    /// The Kafka transport's config: its defaults, overridden by what is set (the health
    /// timeout is the facade's `health_timeout_ms`, set by the wiring).
    pub fn kafka_config(&self) -> credo_adapters_kafka::KafkaConfig {
        let mut c = credo_adapters_kafka::KafkaConfig::new(&self.brokers);
        set(&mut c.topic, self.topic.clone());
        set(&mut c.dlq_topic, self.dlq_topic.clone());
        set(&mut c.group_id, self.group_id.clone());
        set(&mut c.client_id, self.client_id.clone());
        set(&mut c.delivery_timeout, self.delivery_timeout_ms.map(ms));
        set(&mut c.linger, self.linger_ms.map(ms));
        set(&mut c.fetch_wait_max, self.fetch_wait_max_ms.map(ms));
        set(&mut c.partitions, self.partitions);
        set(&mut c.replication, self.replication);
        set(&mut c.retention, self.retention_ms.map(|v| Some(ms(v))));
        set(
            &mut c.dlq_retention,
            self.dlq_retention_ms.map(|v| Some(ms(v))),
        );
        set(
            &mut c.min_insync_replicas,
            self.min_insync_replicas.map(Some),
        );
        let some_ms = |v: u64| Some(ms(v));
        set(&mut c.session_timeout, self.session_timeout_ms.map(some_ms));
        set(
            &mut c.heartbeat_interval,
            self.heartbeat_interval_ms.map(some_ms),
        );
        set(
            &mut c.max_poll_interval,
            self.max_poll_interval_ms.map(some_ms),
        );
        c.properties.extend(self.properties.clone());
        c
    }
}

impl RelaySettings {
    /// The relay's config: its defaults, overridden by what is set.
    pub fn relay_config(&self) -> RelayConfig {
        let mut c = RelayConfig::default();
        set(&mut c.batch, self.batch);
        set(&mut c.lease, self.lease_ms.map(ms));
        set(&mut c.idle_poll, self.idle_poll_ms.map(ms));
        set(&mut c.max_failures, self.max_failures);
        c
    }
}

impl ReadinessSettings {
    /// The outbox backlog limits: the pipeline's defaults, overridden by what is set.
    pub fn backlog(&self) -> credo_pipeline::BacklogThresholds {
        let mut c = credo_pipeline::BacklogThresholds::default();
        set(&mut c.depth_warning, self.backlog_warning);
        set(&mut c.depth_critical, self.backlog_critical);
        set(&mut c.age_warning, self.backlog_age_warning_ms.map(ms));
        set(&mut c.age_critical, self.backlog_age_critical_ms.map(ms));
        c
    }

    /// How long a readiness report is served.
    pub fn cache(&self) -> Duration {
        ms(self.cache_ms.unwrap_or(DEFAULT_READINESS_CACHE_MS))
    }

    /// How often the facade reports readiness by itself (`None`: only when probed).
    pub fn report_every(&self) -> Option<Duration> {
        let every = self.report_every_ms.unwrap_or(DEFAULT_REPORT_EVERY_MS);
        (every > 0).then(|| ms(every))
    }

    /// Silence after which the relay or consumer is `failed`.
    pub fn stall_after(&self) -> Duration {
        ms(self.stall_after_ms.unwrap_or(DEFAULT_STALL_AFTER_MS))
    }

    /// A warning threshold above its critical one would skip `degraded`.
    pub(crate) fn check_order(&self) -> Result<(), ConfigError> {
        let b = self.backlog();
        if b.depth_warning > b.depth_critical {
            return Err(ConfigError::new(
                "readiness.backlog_warning",
                format!(
                    "{}: must not exceed readiness.backlog_critical ({})",
                    b.depth_warning, b.depth_critical
                ),
            ));
        }
        if b.age_warning > b.age_critical {
            return Err(ConfigError::new(
                "readiness.backlog_age_warning_ms",
                format!(
                    "{}: must not exceed readiness.backlog_age_critical_ms ({})",
                    b.age_warning.as_millis(),
                    b.age_critical.as_millis()
                ),
            ));
        }
        Ok(())
    }
}

/// A job's schedule as [`MaintenanceSettings::schedule`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Schedule {
    /// How often the job runs.
    pub interval: Duration,
    /// For the outbox and audit jobs, the age of what it purges.
    pub keep: Duration,
}

/// The maintenance jobs the facade knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaintenanceJob {
    /// Expired sessions and token revocations.
    Sessions,
    /// Idle rate-limit keys.
    RateLimits,
    /// Published outbox rows.
    Outbox,
    /// Audit events of one category past its retention.
    Audit(AuditCategory),
    /// The partitions of a partitioned audit log: made ahead, dropped whole past the longest
    /// retention.
    AuditPartitions,
}

impl MaintenanceSettings {
    /// Whether the runner runs.
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    /// The runner's settings (this instance's lease holder name is a fresh random one).
    pub fn config(&self) -> MaintenanceConfig {
        let mut c = MaintenanceConfig::default();
        if let Some(batch) = self.batch.and_then(NonZeroU32::new) {
            c.batch = batch;
        }
        set(&mut c.pause, self.pause_ms.map(ms));
        set(&mut c.lease, self.lease_ms.map(ms));
        set(&mut c.failing_after, self.failing_after);
        c
    }

    /// The job's schedule, or `None` when it is switched off (or the runner is).
    pub fn schedule(&self, job: MaintenanceJob) -> Option<Schedule> {
        const DAY: u64 = 86_400_000;
        let (on, interval, keep_ms) = match job {
            MaintenanceJob::Sessions => (
                self.sessions,
                self.sessions_interval_ms
                    .unwrap_or(DEFAULT_SHORT_JOB_INTERVAL_MS),
                0,
            ),
            MaintenanceJob::RateLimits => (
                self.rate_limits,
                self.rate_limits_interval_ms
                    .unwrap_or(DEFAULT_SHORT_JOB_INTERVAL_MS),
                0,
            ),
            MaintenanceJob::Outbox => (
                self.outbox,
                self.outbox_interval_ms
                    .unwrap_or(DEFAULT_OUTBOX_INTERVAL_MS),
                self.outbox_keep_ms.unwrap_or(DEFAULT_OUTBOX_KEEP_MS),
            ),
            MaintenanceJob::AuditPartitions => (
                Some(self.audit.unwrap_or(true) && self.audit_partitions.unwrap_or(true)),
                self.audit_interval_ms.unwrap_or(DEFAULT_AUDIT_INTERVAL_MS),
                self.longest_audit_keep_days().saturating_mul(DAY),
            ),
            MaintenanceJob::Audit(category) => {
                let days = match category {
                    AuditCategory::Compliance => self.audit_keep_compliance_days,
                    AuditCategory::Security => self.audit_keep_security_days,
                    AuditCategory::Operations => self.audit_keep_operations_days,
                    // A category added later keeps the default (the longest) retention.
                    _ => None,
                };
                (
                    self.audit,
                    self.audit_interval_ms.unwrap_or(DEFAULT_AUDIT_INTERVAL_MS),
                    days.unwrap_or(DEFAULT_AUDIT_KEEP_DAYS).saturating_mul(DAY),
                )
            }
        };
        (self.enabled() && on.unwrap_or(true)).then(|| Schedule {
            interval: ms(interval),
            keep: ms(keep_ms),
        })
    }

    /// The longest retention of any audit category, in days: a partition holds them all.
    pub fn longest_audit_keep_days(&self) -> u64 {
        [
            self.audit_keep_compliance_days,
            self.audit_keep_security_days,
            self.audit_keep_operations_days,
        ]
        .into_iter()
        .map(|d| d.unwrap_or(DEFAULT_AUDIT_KEEP_DAYS))
        .max()
        .unwrap_or(DEFAULT_AUDIT_KEEP_DAYS)
    }

    /// The audit partitions' period and how many are made ahead.
    pub fn partition_layout(&self) -> credo_pipeline::maintenance::PartitionLayout {
        let days = self
            .audit_partition_days
            .unwrap_or(DEFAULT_AUDIT_PARTITION_DAYS);
        credo_pipeline::maintenance::PartitionLayout {
            period_days: NonZeroU32::new(u32::try_from(days).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN),
            ahead: u32::try_from(
                self.audit_partitions_ahead
                    .unwrap_or(DEFAULT_AUDIT_PARTITIONS_AHEAD),
            )
            .unwrap_or(u32::MAX),
        }
    }

    /// The pause must be shorter than the lease, which is renewed between batches.
    pub(crate) fn check_order(&self) -> Result<(), ConfigError> {
        let c = self.config();
        if c.pause >= c.lease {
            return Err(ConfigError::new(
                "maintenance.pause_ms",
                format!(
                    "{}: must be shorter than maintenance.lease_ms ({}), which is renewed between batches",
                    c.pause.as_millis(),
                    c.lease.as_millis()
                ),
            ));
        }
        Ok(())
    }
}
