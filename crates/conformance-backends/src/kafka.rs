use crate::PostgresHarness;
use async_trait::async_trait;
use credo_adapters_kafka::{
    KafkaConfig, KafkaHealth, KafkaSink, KafkaSource, SourceHandle, ensure_topics,
};
use credo_conformance::harness::{Harness, Port, Stores, Support};
use credo_pipeline::{AuditConsumer, ConsumerConfig, ConsumerHandle};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, Delivery, EncodedEvent,
    EventId, EventSink, HealthCheck, HealthStatus, ManualClock, NonZeroU32, Page, PageRequest,
    StoreError, StoreResult, TenantId, Timestamp,
};
use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Environment variable naming the test broker(s).
pub const BROKERS_VAR: &str = "CREDO_TEST_KAFKA_BROKERS";

/// How long a publish may wait for the consumer to materialize it.
const SETTLE: Duration = Duration::from_secs(30);

#[cfg(feature = "testcontainers")]
type Container = testcontainers_modules::testcontainers::ContainerAsync<
    testcontainers_modules::kafka::apache::Kafka,
>;

/// The PostgreSQL → Kafka → PostgreSQL audit pipeline: PostgreSQL stores and outbox, a
/// [`KafkaSink`] to a real broker, and an [`AuditConsumer`] reading a [`KafkaSource`] into the
/// same PostgreSQL audit log. Only the `pipeline` port applies; the stores themselves are checked in
/// the `postgres` column.
///
/// The broker comes from `CREDO_TEST_KAFKA_BROKERS`, else (feature `testcontainers`) an Apache
/// Kafka container when a Docker engine answers, else the backend is skipped with the reason.
/// Consumers are expensive to start (a group join), so each one runs in a *lane* (topic, group,
/// consumer) that is reused by later cases, like PostgreSQL schemas; the consumer writes into
/// whichever schema the lane's current holder has.
pub struct KafkaHarness {
    postgres: PostgresHarness,
    configured: Option<String>,
    brokers: tokio::sync::OnceCell<Result<String, String>>,
    #[cfg(feature = "testcontainers")]
    container: Mutex<Option<Container>>,
    free: Arc<Mutex<Vec<Arc<Lane>>>>,
    next: AtomicU32,
}

impl KafkaHarness {
    /// A harness for the brokers in `CREDO_TEST_KAFKA_BROKERS` and the PostgreSQL server in
    /// `CREDO_TEST_POSTGRES_URL`.
    pub fn from_env() -> Self {
        Self {
            postgres: PostgresHarness::from_env().with_schema_prefix("credo_k"),
            configured: std::env::var(BROKERS_VAR).ok().filter(|b| !b.is_empty()),
            brokers: tokio::sync::OnceCell::new(),
            #[cfg(feature = "testcontainers")]
            container: Mutex::new(None),
            free: Arc::default(),
            next: AtomicU32::new(0),
        }
    }

    async fn brokers(&self) -> Result<String, String> {
        self.brokers
            .get_or_init(|| {
                crate::server_url(self.configured.as_ref(), BROKERS_VAR, || {
                    self.start_container()
                })
            })
            .await
            .clone()
    }

    #[cfg(feature = "testcontainers")]
    async fn start_container(&self) -> Result<String, String> {
        use testcontainers_modules::kafka::apache;
        use testcontainers_modules::testcontainers::runners::AsyncRunner;
        let node = apache::Kafka::default()
            .start()
            .await
            .map_err(|e| format!("testcontainers: starting kafka: {e}"))?;
        let port = node
            .get_host_port_ipv4(apache::KAFKA_PORT)
            .await
            .map_err(|e| format!("testcontainers: {e}"))?;
        *self.container.lock() = Some(node);
        Ok(format!("127.0.0.1:{port}"))
    }

    #[cfg(not(feature = "testcontainers"))]
    async fn start_container(&self) -> Result<String, String> {
        Err("built without the `testcontainers` feature".into())
    }

    /// Test settings: a fresh topic and group per lane, the test broker's settings
    /// (`single_node_dev`), and short batching waits so a case's events settle quickly.
    fn config(&self, brokers: &str) -> KafkaConfig {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let run = uuid::Uuid::new_v4().simple().to_string();
        let mut c = KafkaConfig::new(brokers).single_node_dev();
        c.topic = format!("credo.conformance.{}.{run}.{n}", std::process::id());
        c.dlq_topic = format!("{}.dlq", c.topic);
        c.group_id = format!("credo-conformance-{run}-{n}");
        c.linger = Duration::from_millis(1);
        c
    }

    async fn new_lane(&self) -> Result<Arc<Lane>, String> {
        let config = self.config(&self.brokers().await?);
        ensure_topics(&config)
            .await
            .map_err(|e| format!("creating topics: {e}"))?;
        let target = Arc::new(Target(RwLock::new(None)));
        let source = KafkaSource::new(&config).map_err(|e| format!("source: {e}"))?;
        let source_handle = source.handle();
        let consumer_config = {
            let mut c = ConsumerConfig::default();
            c.batch_wait = Duration::from_millis(2);
            c
        };
        let consumer = AuditConsumer::new(Arc::new(source), target.clone(), consumer_config)
            .map_err(|e| format!("consumer: {e}"))?;
        let handle = consumer.handle();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(consumer.run(stopped));
        if !source_handle.wait_assigned(Duration::from_secs(60)).await {
            return Err(format!(
                "consumer group {} got no assignment within 60 s",
                config.group_id
            ));
        }
        Ok(Arc::new(Lane {
            sink: KafkaSink::new(&config).map_err(|e| format!("sink: {e}"))?,
            source: source_handle,
            consumer: handle,
            target,
            _stop: stop,
        }))
    }
}

/// A topic with its running consumer. Dropping it stops the consumer.
struct Lane {
    sink: KafkaSink,
    source: SourceHandle,
    consumer: ConsumerHandle,
    target: Arc<Target>,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// The conformance view of the Kafka path: a publish returns once the broker acknowledged the
/// batch *and* the consumer handled every message of it, so a drained relay means a settled
/// log, as with the direct sinks.
struct SettlingSink(Arc<Lane>);

#[async_trait]
impl EventSink for SettlingSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let published = self.0.sink.publish_acked(batch).await?;
        if self.0.source.wait_for(&published.stored, SETTLE).await {
            Ok(published.deliveries)
        } else {
            Err(StoreError::Unavailable(
                format!(
                    "published but not materialized within {SETTLE:?} ({:?})",
                    self.0.consumer.stats()
                )
                .into(),
            ))
        }
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.0.sink.delivery_timeout().map(|d| d + SETTLE)
    }
}

/// Returns the lane to the free list when the stores are dropped.
struct LaneLease {
    lane: Option<Arc<Lane>>,
    free: Arc<Mutex<Vec<Arc<Lane>>>>,
    _postgres: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Drop for LaneLease {
    fn drop(&mut self) {
        if let Some(lane) = self.lane.take() {
            *lane.target.0.write() = None;
            self.free.lock().push(lane);
        }
    }
}

/// The audit log the lane's consumer writes into: the current holder's (or a wrapper of it).
struct Target(RwLock<Option<Arc<dyn AuditLog>>>);

impl Target {
    fn get(&self) -> StoreResult<Arc<dyn AuditLog>> {
        self.0
            .read()
            .clone()
            .ok_or_else(|| StoreError::Unavailable("lane has no holder".into()))
    }
}

#[async_trait]
impl AuditLog for Target {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        self.get()?.append_batch(events).await
    }
    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        self.get()?.get(tenant, id).await
    }
    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.get()?.query(tenant, query, page).await
    }
    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        self.get()?.count(tenant, query).await
    }
    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        self.get()?.purge_before(before, category, limit).await
    }
}

#[async_trait]
impl Harness for KafkaHarness {
    fn name(&self) -> &'static str {
        "kafka"
    }

    async fn available(&self) -> Result<(), String> {
        self.postgres.available().await?;
        let brokers = self.brokers().await?;
        let mut config = KafkaConfig::new(&brokers);
        config.health_timeout = Duration::from_secs(5);
        match KafkaHealth::new(&config)
            .map_err(|e| e.to_string())?
            .check()
            .await
        {
            // The probe's default topics need not exist.
            HealthStatus::Ok | HealthStatus::Degraded(_) => Ok(()),
            HealthStatus::Failed(why) => Err(format!("kafka at {brokers}: {why}")),
            other => Err(format!("kafka at {brokers}: {other:?}")),
        }
    }

    fn supports(&self, port: Port) -> Support {
        credo_adapters_kafka::CAPABILITIES.supports(port)
    }

    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        let pg = self.postgres.fresh(clock).await?;
        let reused = self.free.lock().pop();
        let lane = match reused {
            Some(lane) => lane,
            None => self.new_lane().await?,
        };
        *lane.target.0.write() = Some(pg.audit_log()?);
        let lease = LaneLease {
            lane: Some(lane.clone()),
            free: self.free.clone(),
            _postgres: pg.lease.clone(),
        };
        // The lane's consumer writes into the log the sink is asked for.
        let sinks: credo_conformance::harness::SinkFactory = Arc::new(move |log| {
            *lane.target.0.write() = Some(log);
            Arc::new(SettlingSink(lane.clone()))
        });
        Ok(Stores {
            sink: Some(sinks),
            lease: Some(Arc::new(lease)),
            ..pg
        })
    }
}
