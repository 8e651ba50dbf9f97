//! [`Storage::connect`]: configuration to wired stores.

use crate::config::{AuditSink, Backend, ConfigError, StorageConfig};
use crate::maintenance::{Purged, leased};
use credo_pipeline::maintenance::{JobReport, Maintenance};
use credo_pipeline::{
    AuditConsumer, BacklogCheck, ConsumerConfig, DirectSink, HeartbeatCheck, OutboxRelay,
};
use credo_ports::capability::Port;
use credo_ports::partitions::AuditPartitions;
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, EventSink, EventSource, HealthCheck, JobLeases,
    Outbox, RateLimitStore, Readiness, SessionStore, StoreError, SystemClock, UserStore,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why [`Storage::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A setting is missing, malformed, or asks for something impossible.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A backend could not be set up (unreachable at start-up, migration failed, ...).
    #[error("setting `{setting}`: {source}")]
    Backend {
        /// The setting of the backend that failed.
        setting: &'static str,
        /// What the backend said.
        source: StoreError,
    },
}

fn backend_err(setting: &'static str) -> impl FnOnce(StoreError) -> StorageError {
    move |source| StorageError::Backend { setting, source }
}

/// An adapter's refusal of one of its settings (`InvalidInput { field }`), named as the
/// configuration names it (`statement_timeout` -> `postgres.statement_timeout_ms`); any
/// other error is the backend's, under `fallback`.
#[cfg(any(feature = "postgres", feature = "redis", feature = "kafka"))]
fn setting_err(
    section: &'static str,
    fallback: &'static str,
) -> impl FnOnce(StoreError) -> StorageError {
    move |e| match e {
        StoreError::InvalidInput { field, reason } => {
            let field = field
                .strip_prefix(section)
                .map_or(field, |f| f.trim_start_matches('.'));
            StorageError::Config(ConfigError::new(
                crate::config::declared_setting(section, field),
                reason,
            ))
        }
        other => backend_err(fallback)(other),
    }
}

/// What [`Storage::shutdown`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Background tasks (relay, consumer) that stopped by themselves within the bound.
    pub stopped: Vec<&'static str>,
    /// Tasks still running at the bound, then aborted (their batches are left to leases and
    /// uncommitted offsets, so nothing is lost).
    pub aborted: Vec<&'static str>,
}

/// Every store of a service, wired from a [`StorageConfig`].
pub struct Storage {
    /// User store.
    pub users: Arc<dyn UserStore>,
    /// Session store.
    pub sessions: Arc<dyn SessionStore>,
    /// Consent store.
    pub consents: Arc<dyn ConsentStore>,
    /// Audit recorder: `record` writes the event into the outbox, durably; the relay (and, with
    /// Kafka, the consumer) moves it to the log.
    pub audit: Arc<dyn AuditRecorder>,
    /// The materialized audit log: query, count, retention.
    pub audit_log: Arc<dyn AuditLog>,
    /// Rate limiter.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// The outbox the relay drains (depth, lag, dead letters and their re-queueing).
    pub outbox: Arc<dyn Outbox>,
    readiness: Arc<Readiness>,
    /// Dropping it (with `Storage`) stops the relay and the consumer.
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    maintenance: Option<Arc<Maintenance>>,
    shutdown_timeout: Duration,
    #[cfg(feature = "inmemory")]
    pub(crate) inmemory: Option<credo_adapters_inmemory::InMemoryStores>,
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<credo_adapters_postgres::PgStores>,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<credo_adapters_redis::RedisStores>,
}

/// Connections opened so far, one per backend.
#[derive(Default)]
struct Opened {
    #[cfg(feature = "inmemory")]
    inmemory: Option<credo_adapters_inmemory::InMemoryStores>,
    #[cfg(feature = "postgres")]
    postgres: Option<credo_adapters_postgres::PgStores>,
    #[cfg(feature = "redis")]
    redis: Option<credo_adapters_redis::RedisStores>,
    checks: Vec<Arc<dyn HealthCheck>>,
}

fn missing_feature(setting: &'static str, backend: &str) -> StorageError {
    ConfigError::new(
        setting,
        format!("`{backend}` needs the `{backend}` cargo feature of credo-storage, which this build lacks"),
    )
    .into()
}

/// The [`Ports`] of a backend that implements every one of them.
#[allow(unused_macros)] // unused when neither inmemory nor postgres is compiled in
macro_rules! every_port {
    ($s:expr, $partitions:expr) => {
        Ports {
            users: Some($s.users()),
            sessions: Some($s.sessions()),
            consents: Some($s.consents()),
            audit: Some($s.audit()),
            audit_log: Some($s.audit_log()),
            rate_limits: Some($s.rate_limits()),
            outbox: Some($s.outbox()),
            leases: Some($s.leases()),
            audit_partitions: $partitions,
        }
    };
}

/// The stores one backend offers, as trait objects.
struct Ports {
    users: Option<Arc<dyn UserStore>>,
    sessions: Option<Arc<dyn SessionStore>>,
    consents: Option<Arc<dyn ConsentStore>>,
    audit: Option<Arc<dyn AuditRecorder>>,
    audit_log: Option<Arc<dyn AuditLog>>,
    rate_limits: Option<Arc<dyn RateLimitStore>>,
    outbox: Option<Arc<dyn Outbox>>,
    /// Leases of the maintenance jobs over this backend's data.
    leases: Option<Arc<dyn JobLeases>>,
    /// The time partitions of its audit log, when it partitions it.
    audit_partitions: Option<Arc<dyn AuditPartitions>>,
}

impl Opened {
    async fn open(
        &mut self,
        backend: Backend,
        setting: &'static str,
        config: &StorageConfig,
        clock: &Arc<dyn Clock>,
    ) -> Result<Ports, StorageError> {
        let _ = (config, clock);
        match backend {
            #[cfg(feature = "inmemory")]
            Backend::InMemory => {
                let s = self.inmemory.get_or_insert_with(|| {
                    let s = credo_adapters_inmemory::InMemoryStores::new(clock.clone());
                    self.checks.push(s.health());
                    s
                });
                Ok(every_port!(s, None))
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                if self.postgres.is_none() {
                    let pg = config.postgres.as_ref().ok_or_else(|| {
                        ConfigError::new(
                            "postgres.url",
                            format!("`{setting} = \"postgres\"` needs [postgres] url (CREDO_POSTGRES_URL or DATABASE_URL)"),
                        )
                    })?;
                    let c = pg.pg_config();
                    let stores = credo_adapters_postgres::PgStores::connect(&c, clock.clone())
                        .await
                        .map_err(setting_err("postgres", "postgres.url"))?;
                    if pg.migrate {
                        stores
                            .migrate()
                            .await
                            .map_err(backend_err("postgres.migrate"))?;
                        if let Some(role) = &pg.app_role {
                            stores
                                .grant_app_role(role)
                                .await
                                .map_err(backend_err("postgres.app_role"))?;
                        }
                    }
                    self.checks.push(stores.health(config.health_timeout()));
                    self.postgres = Some(stores);
                }
                let s = self.postgres.as_ref().expect("opened above");
                Ok(every_port!(s, Some(s.audit_partitions())))
            }
            #[cfg(feature = "redis")]
            Backend::Redis => {
                if self.redis.is_none() {
                    let r = config.redis.as_ref().ok_or_else(|| {
                        ConfigError::new(
                            "redis.url",
                            format!("`{setting} = \"redis\"` needs [redis] url (CREDO_REDIS_URL or REDIS_URL)"),
                        )
                    })?;
                    let c = r.redis_config()?;
                    let stores = credo_adapters_redis::RedisStores::connect(&c, clock.clone())
                        .await
                        .map_err(setting_err("redis", "redis.url"))?;
                    self.checks.push(stores.health(config.health_timeout()));
                    self.redis = Some(stores);
                }
                let s = self.redis.as_ref().expect("opened above");
                Ok(Ports {
                    users: None,
                    sessions: Some(s.sessions()),
                    consents: None,
                    audit: None,
                    audit_log: None,
                    rate_limits: Some(s.rate_limits()),
                    outbox: None,
                    leases: Some(s.leases()),
                    audit_partitions: None,
                })
            }
            #[allow(unreachable_patterns)]
            other => Err(missing_feature(setting, other.as_str())),
        }
    }
}

fn compiled(backend: Backend) -> bool {
    match backend {
        Backend::InMemory => cfg!(feature = "inmemory"),
        Backend::Postgres => cfg!(feature = "postgres"),
        Backend::Redis => cfg!(feature = "redis"),
    }
}

/// Everything that can be known wrong before connecting to anything.
fn validate(config: &StorageConfig) -> Result<(), StorageError> {
    // Single settings, and each port's backend against what its adapter declares it serves.
    config.validate()?;
    let b = &config.backends;
    if b.users != b.consents || b.users != b.audit {
        return Err(ConfigError::new(
            "backends.audit",
            format!(
                "users ({}), consents ({}) and audit ({}) must use one backend: their audit \
                 events are written to that backend's outbox in the same transaction",
                b.users.as_str(),
                b.consents.as_str(),
                b.audit.as_str()
            ),
        )
        .into());
    }
    for (setting, backend) in [
        ("backends.users", b.users),
        ("backends.sessions", b.sessions),
        ("backends.rate_limits", b.rate_limits),
    ] {
        if !compiled(backend) {
            return Err(missing_feature(setting, backend.as_str()));
        }
    }
    if b.audit_sink == AuditSink::Kafka && !cfg!(feature = "kafka") {
        return Err(missing_feature("backends.audit_sink", "kafka"));
    }
    Ok(())
}

/// The store `backend` opened for `port`. Validation has refused a backend whose adapter
/// does not declare `port`, so a miss means the declaration and the adapter disagree.
fn pick<T: ?Sized>(
    store: Option<Arc<T>>,
    setting: &'static str,
    backend: Backend,
    port: Port,
) -> Result<Arc<T>, StorageError> {
    store.ok_or_else(|| {
        ConfigError::new(
            setting,
            format!(
                "the {} backend does not implement {port}; choose {}",
                backend.as_str(),
                Backend::choices(port)
            ),
        )
        .into()
    })
}

impl Storage {
    /// Wires the stores `config` asks for, on the system clock.
    pub async fn connect(config: &StorageConfig) -> Result<Storage, StorageError> {
        Self::connect_with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`connect`](Self::connect) with the clock every store evaluates time against (tests).
    pub async fn connect_with_clock(
        config: &StorageConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Storage, StorageError> {
        Self::wire(config, clock, true).await
    }

    /// [`connect`](Self::connect) without starting anything in the background: no relay, no
    /// audit consumer (so no Kafka client joins the consumer group), no maintenance runner,
    /// no periodic readiness reports. For operator tools that act once and exit
    /// (`credo-admin`), whose own relay would race the service's for the rows they inspect.
    /// The stores, [`outbox`](Self::outbox), [`run_maintenance`](Self::run_maintenance) and
    /// [`readiness`](Self::readiness) work as with `connect`, except that readiness has no
    /// `relay` or `audit-consumer` check (nothing runs here to report them) and, with Kafka,
    /// checks the broker only (`kafka.ensure_topics` is not acted on). Migrations run when
    /// `postgres.migrate` says so, as with `connect`.
    pub async fn connect_without_tasks(config: &StorageConfig) -> Result<Storage, StorageError> {
        Self::wire(config, Arc::new(SystemClock), false).await
    }

    /// [`connect_with_clock`](Self::connect_with_clock), with the background tasks only when
    /// `background`.
    async fn wire(
        config: &StorageConfig,
        clock: Arc<dyn Clock>,
        background: bool,
    ) -> Result<Storage, StorageError> {
        let started = std::time::Instant::now();
        validate(config)?;
        let b = &config.backends;
        let mut opened = Opened::default();
        let users = opened
            .open(b.users, "backends.users", config, &clock)
            .await?;
        let sessions = opened
            .open(b.sessions, "backends.sessions", config, &clock)
            .await?;
        let limits = opened
            .open(b.rate_limits, "backends.rate_limits", config, &clock)
            .await?;
        let purged = Purged {
            sessions: leased(sessions.sessions.clone(), &sessions.leases),
            rate_limits: leased(limits.rate_limits.clone(), &limits.leases),
            outbox: leased(users.outbox.clone(), &users.leases),
            audit_log: leased(users.audit_log.clone(), &users.leases),
            audit_partitions: leased(users.audit_partitions.clone(), &users.leases),
        };
        let audit = pick(users.audit, "backends.audit", b.audit, Port::Audit)?;
        let audit_log = pick(users.audit_log, "backends.audit", b.audit, Port::Audit)?;
        let outbox = pick(users.outbox, "backends.audit", b.audit, Port::Outbox)?;

        // The audit path, step by step: the sink the relay publishes to and, with Kafka, the
        // consumer that materializes the topic into the log. None of it without background
        // tasks: only the broker's check then.
        let (mut relay, mut consumer) = (None, None);
        if background {
            let sink: Arc<dyn EventSink> = match b.audit_sink {
                AuditSink::Direct => Arc::new(DirectSink::new(audit_log.clone())),
                AuditSink::Kafka => {
                    let (sink, source) = kafka_transport(config, &mut opened).await?;
                    consumer = Some(
                        AuditConsumer::new(source, audit_log.clone(), ConsumerConfig::default())
                            .map_err(backend_err("kafka.brokers"))?,
                    );
                    sink
                }
            };
            relay = Some(
                OutboxRelay::new(outbox.clone(), sink, config.relay.relay_config())
                    .map_err(|e| relay_error(e, b.audit_sink))?,
            );
        } else if b.audit_sink == AuditSink::Kafka {
            kafka_check(config, &mut opened)?;
        }
        // Readiness sees the pipeline: a relay or consumer that stopped passing, a backlog.
        let stall_after = config.readiness.stall_after();
        let idle_wait = ConsumerConfig::default().idle_wait;
        if consumer.is_some() && stall_after <= idle_wait {
            // An idle consumer beats once per idle wait: a shorter limit would fail it.
            return Err(ConfigError::new(
                "readiness.stall_after_ms",
                format!(
                    "must be longer than the audit consumer's idle wait ({} ms)",
                    idle_wait.as_millis()
                ),
            )
            .into());
        }
        if let Some(relay) = &relay {
            opened.checks.push(Arc::new(HeartbeatCheck::new(
                "relay",
                relay.heartbeat(),
                stall_after,
            )));
        }
        if let Some(consumer) = &consumer {
            opened.checks.push(Arc::new(HeartbeatCheck::new(
                "audit-consumer",
                consumer.heartbeat(),
                stall_after,
            )));
        }
        opened.checks.push(Arc::new(BacklogCheck::new(
            outbox.clone(),
            config.readiness.backlog(),
        )));
        let maintenance = crate::maintenance::build(&config.maintenance, &clock, purged)?;
        if let Some(m) = &maintenance {
            opened.checks.push(Arc::new(m.health()));
        }
        crate::exported::initialize(
            b.audit_sink == AuditSink::Kafka,
            maintenance.iter().flat_map(|m| m.jobs().map(|j| j.name())),
        );
        // Every task ends when `stop` says so or is dropped with the `Storage`.
        let (stop, stopped) = watch::channel(false);
        let stopped_reports = stopped.clone();
        let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();
        if let Some(m) = maintenance.as_ref().filter(|_| background) {
            tasks.push(("maintenance", tokio::spawn(m.clone().run(stopped.clone()))));
        }
        if let Some(relay) = relay {
            let relay_stop = stopped.clone();
            tasks.push((
                "relay",
                tokio::spawn(async move {
                    relay.run(relay_stop).await;
                }),
            ));
        }
        if let Some(consumer) = consumer {
            tasks.push((
                "audit-consumer",
                tokio::spawn(async move {
                    consumer.run(stopped).await;
                }),
            ));
        }
        let pools = crate::exported::Pools {
            #[cfg(feature = "postgres")]
            postgres: opened.postgres.clone(),
            #[cfg(feature = "redis")]
            redis: opened.redis.clone(),
        };
        let readiness = Arc::new(
            Readiness::new(
                std::mem::take(&mut opened.checks),
                config.health_timeout(),
                clock,
            )
            .cached_for(config.readiness.cache())
            .observed_by(crate::exported::observer(pools)),
        );
        // Reports made by the facade itself keep the readiness and pool metrics current
        // when nothing probes.
        if background && let Some(every) = config.readiness.report_every() {
            let (readiness, mut stop) = (readiness.clone(), stopped_reports);
            tasks.push((
                "readiness-reports",
                tokio::spawn(async move {
                    loop {
                        let _ = readiness.report().await;
                        tokio::select! {
                            _ = tokio::time::sleep(every) => {}
                            _ = stop.wait_for(|s| *s) => return,
                        }
                    }
                }),
            ));
        }
        metrics::gauge!(credo_ports::telemetry::STARTUP_SECONDS)
            .set(started.elapsed().as_secs_f64());
        use crate::instrument as i;
        Ok(Storage {
            users: Arc::new(i::Users {
                inner: pick(users.users, "backends.users", b.users, Port::Users)?,
                backend: b.users.as_str(),
            }),
            sessions: Arc::new(i::Sessions {
                inner: pick(
                    sessions.sessions,
                    "backends.sessions",
                    b.sessions,
                    Port::Sessions,
                )?,
                backend: b.sessions.as_str(),
            }),
            consents: Arc::new(i::Consents {
                inner: pick(
                    users.consents,
                    "backends.consents",
                    b.consents,
                    Port::Consents,
                )?,
                backend: b.consents.as_str(),
            }),
            audit: Arc::new(i::Recorder {
                inner: audit,
                backend: b.audit.as_str(),
            }),
            audit_log: Arc::new(i::Log {
                inner: audit_log,
                backend: b.audit.as_str(),
            }),
            rate_limits: Arc::new(i::RateLimits(i::TimedRateLimits {
                inner: pick(
                    limits.rate_limits,
                    "backends.rate_limits",
                    b.rate_limits,
                    Port::RateLimits,
                )?,
                backend: b.rate_limits.as_str(),
            })),
            outbox,
            readiness,
            stop,
            tasks,
            maintenance,
            shutdown_timeout: config.shutdown_timeout(),
            #[cfg(feature = "inmemory")]
            inmemory: opened.inmemory.take(),
            #[cfg(feature = "postgres")]
            postgres: opened.postgres.take(),
            #[cfg(feature = "redis")]
            redis: opened.redis.take(),
        })
    }

    /// One check per backend in use (`memory`, `database`, `redis`, `kafka`), for
    /// `GET /health/ready`.
    pub fn readiness(&self) -> Arc<Readiness> {
        self.readiness.clone()
    }

    /// The PostgreSQL backend, when a port uses it (for operator tools: its pool, its
    /// migrations table).
    #[cfg(feature = "postgres")]
    pub fn postgres(&self) -> Option<&credo_adapters_postgres::PgStores> {
        self.postgres.as_ref()
    }

    /// Runs every maintenance job once now, one after the other, each under its lease (a
    /// job another instance is running reports `Busy`); empty when maintenance is off.
    pub async fn run_maintenance(&self) -> Vec<JobReport> {
        match &self.maintenance {
            Some(m) => m.run_once().await,
            None => Vec::new(),
        }
    }

    /// Stops the relay and the consumer: each finishes (or releases) the batch in hand, within
    /// the configured bound; what is still running then is aborted. Connections close after.
    pub async fn shutdown(self) -> ShutdownReport {
        let started = std::time::Instant::now();
        self.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        let mut report = ShutdownReport::default();
        for (name, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(_) => report.stopped.push(name),
                Err(_) => {
                    task.abort();
                    report.aborted.push(name);
                }
            }
        }
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres {
            pg.close().await;
        }
        metrics::gauge!(credo_ports::telemetry::SHUTDOWN_SECONDS)
            .set(started.elapsed().as_secs_f64());
        report
    }
}

/// A relay setting the relay refused, named as the configuration names it.
fn relay_error(e: StoreError, sink: AuditSink) -> StorageError {
    match e {
        StoreError::InvalidInput { field, reason } => {
            let reason = if field == "lease" && sink == AuditSink::Kafka {
                format!("{reason} (the delivery timeout is kafka.delivery_timeout_ms)")
            } else {
                reason
            };
            StorageError::Config(ConfigError::new(
                crate::config::declared_setting("relay", field),
                reason,
            ))
        }
        other => backend_err("relay")(other),
    }
}

/// The Kafka sink and source of the audit path, with the `kafka` readiness check.
#[cfg(feature = "kafka")]
async fn kafka_transport(
    config: &StorageConfig,
    opened: &mut Opened,
) -> Result<(Arc<dyn EventSink>, Arc<dyn EventSource>), StorageError> {
    use credo_adapters_kafka::{KafkaHealth, KafkaSink, KafkaSource, ProducerHealth};
    let c = kafka_config(config)?;
    let named = |e: StoreError| setting_err("kafka", "kafka.brokers")(e);
    if config.kafka.as_ref().is_some_and(|k| k.ensure_topics) {
        credo_adapters_kafka::ensure_topics(&c)
            .await
            .map_err(named)?;
    }
    opened
        .checks
        .push(Arc::new(KafkaHealth::new(&c).map_err(named)?));
    let sink = Arc::new(KafkaSink::new(&c).map_err(named)?);
    opened
        .checks
        .push(Arc::new(ProducerHealth::new(sink.clone())));
    Ok((sink, Arc::new(KafkaSource::new(&c).map_err(named)?)))
}

/// The Kafka transport's config, from `[kafka]`.
#[cfg(feature = "kafka")]
fn kafka_config(config: &StorageConfig) -> Result<credo_adapters_kafka::KafkaConfig, StorageError> {
    let k = config.kafka.as_ref().ok_or_else(|| {
        ConfigError::new(
            "kafka.brokers",
            "`backends.audit_sink = \"kafka\"` needs [kafka] brokers (CREDO_KAFKA_BROKERS or KAFKA_BROKERS)",
        )
    })?;
    let mut c = k.kafka_config();
    c.health_timeout = config.health_timeout();
    Ok(c)
}

/// The `kafka` readiness check alone (an admin client): no producer, no consumer.
#[cfg(feature = "kafka")]
fn kafka_check(config: &StorageConfig, opened: &mut Opened) -> Result<(), StorageError> {
    let c = kafka_config(config)?;
    let check = credo_adapters_kafka::KafkaHealth::new(&c)
        .map_err(|e| setting_err("kafka", "kafka.brokers")(e))?;
    opened.checks.push(Arc::new(check));
    Ok(())
}

#[cfg(not(feature = "kafka"))]
fn kafka_check(_: &StorageConfig, _: &mut Opened) -> Result<(), StorageError> {
    Err(missing_feature("backends.audit_sink", "kafka"))
}

#[cfg(not(feature = "kafka"))]
async fn kafka_transport(
    _: &StorageConfig,
    _: &mut Opened,
) -> Result<(Arc<dyn EventSink>, Arc<dyn EventSource>), StorageError> {
    Err(missing_feature("backends.audit_sink", "kafka"))
}
