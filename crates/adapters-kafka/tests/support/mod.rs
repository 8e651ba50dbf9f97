//! Test support shared by the pipeline fault tests and the figures: a private tansu broker
//! behind a fault-injecting TCP proxy (`credo-testkit`), a PostgreSQL schema of its own, and
//! an observed audit log. Needs `CREDO_TEST_POSTGRES_URL` and `CREDO_TEST_TANSU_BIN`, both exported by
//! `cargo xtask services env`.
#![allow(dead_code)] // each test binary uses a different part

use async_trait::async_trait;
use credo_adapters_kafka::{KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
use credo_adapters_postgres::{PgConfig, PgStores};
use credo_pipeline::{
    AuditConsumer, Backoff, ConsumerConfig, ConsumerHandle, ConsumerStats, OutboxRelay,
    RelayConfig, RelayStats,
};
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, Clock, Delivery, EncodedEvent,
    EventId, EventSink, NonZeroU32, Page, PageRequest, StoreResult, SystemClock, TenantId,
    Timestamp, UserId,
};
use credo_testkit::{PrivateTansu, required};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub const EVENTS: usize = 10_000;
pub const SUBJECTS: usize = 20;

// --- the pipeline under test --------------------------------------------------------------

/// Wraps the PostgreSQL audit log the consumer writes into: notes when each event was first
/// written (arrival order and instant), and can hang after a write, as a consumer killed
/// between its write and its offset commit would.
pub struct Observed {
    pub inner: Arc<dyn AuditLog>,
    pub arrivals: Mutex<(Vec<EventId>, HashMap<EventId, Instant>)>,
    pub written: AtomicUsize,
    pub hang_after_events: AtomicUsize,
    pub hung: Notify,
}

impl Observed {
    pub fn new(inner: Arc<dyn AuditLog>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            arrivals: Mutex::default(),
            written: AtomicUsize::new(0),
            hang_after_events: AtomicUsize::new(usize::MAX),
            hung: Notify::new(),
        })
    }
}

#[async_trait]
impl AuditLog for Observed {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let outcome = self.inner.append_batch(events).await?;
        let now = Instant::now();
        {
            let mut a = self.arrivals.lock();
            for id in ids {
                if let std::collections::hash_map::Entry::Vacant(slot) = a.1.entry(id) {
                    slot.insert(now);
                    a.0.push(id);
                }
            }
        }
        let written = self
            .written
            .fetch_add(outcome.inserted as usize, Ordering::SeqCst)
            + outcome.inserted as usize;
        if written >= self.hang_after_events.load(Ordering::SeqCst) {
            self.hang_after_events.store(usize::MAX, Ordering::SeqCst);
            self.hung.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(outcome)
    }
    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>> {
        self.inner.get(tenant, id).await
    }
    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.inner.query(tenant, query, page).await
    }
    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64> {
        self.inner.count(tenant, query).await
    }
    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64> {
        self.inner.purge_before(before, category, limit).await
    }
}

/// Counts what reaches the broker (events, first deliveries aside).
pub struct CountingSink {
    pub inner: KafkaSink,
    pub published: AtomicU64,
    /// When each event's publish was first acknowledged.
    pub acked_at: Mutex<HashMap<EventId, Instant>>,
}

#[async_trait]
impl EventSink for CountingSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let deliveries = self.inner.publish(batch).await?;
        let now = Instant::now();
        let mut acked = self.acked_at.lock();
        for (m, d) in batch.iter().zip(&deliveries) {
            if *d == Delivery::Published {
                acked.entry(m.id).or_insert(now);
                self.published.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(deliveries)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.inner.delivery_timeout()
    }
}

pub struct Pipeline {
    pub broker: PrivateTansu,
    pub pg: PgStores,
    pub config: KafkaConfig,
    pub tenant: TenantId,
    pub subjects: Vec<UserId>,
    pub log: Arc<Observed>,
    pub recorded: Mutex<Vec<(EventId, usize, Instant)>>,
}

impl Pipeline {
    pub async fn start(name: &str) -> Option<Pipeline> {
        let url = required("CREDO_TEST_POSTGRES_URL")?;
        let broker = PrivateTansu::start().await?;
        let mut pg = PgConfig::new(url);
        pg.schema = Some(format!("credo_kf_{name}_{}", std::process::id()));
        let pg = PgStores::connect(&pg, Arc::new(SystemClock)).await.unwrap();
        pg.drop_schema().await.unwrap();
        pg.migrate().await.unwrap();
        let mut config = KafkaConfig::new(broker.brokers()).single_node_dev();
        config.topic = format!("credo.faults.{name}");
        config.dlq_topic = format!("credo.faults.{name}.dlq");
        config.group_id = format!("credo-faults-{name}");
        config.delivery_timeout = Duration::from_secs(3);
        config.health_timeout = Duration::from_secs(5);
        ensure_topics(&config).await.unwrap();
        let log = Observed::new(pg.audit_log());
        Some(Pipeline {
            broker,
            pg,
            config,
            tenant: TenantId::new(),
            subjects: (0..SUBJECTS).map(|_| UserId::new()).collect(),
            log,
            recorded: Mutex::default(),
        })
    }

    pub fn sink(&self) -> Arc<CountingSink> {
        Arc::new(CountingSink {
            inner: KafkaSink::new(&self.config).unwrap(),
            published: AtomicU64::new(0),
            acked_at: Mutex::default(),
        })
    }

    pub fn relay(&self, sink: Arc<dyn EventSink>, lease: Duration) -> OutboxRelay {
        let config = {
            let mut c = RelayConfig::default();
            c.batch = 500;
            c.lease = lease;
            c.idle_poll = Duration::from_millis(10);
            c.backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
            c
        };
        OutboxRelay::new(self.pg.outbox(), sink, config).unwrap()
    }

    pub async fn consumer(&self) -> (ConsumerHandle, Running<ConsumerStats>) {
        let source = KafkaSource::new(&self.config).unwrap();
        let assigned = source.handle();
        let consumer = AuditConsumer::new(
            Arc::new(source),
            self.log.clone(),
            ConsumerConfig::default(),
        )
        .unwrap();
        let handle = consumer.handle();
        let running = Running::spawn(|stop| consumer.run(stop));
        assert!(
            assigned.wait_assigned(Duration::from_secs(60)).await,
            "consumer got no assignment within 60 s"
        );
        (handle, running)
    }

    /// Records events `from..to` through the PostgreSQL audit store (into the outbox), each
    /// subject by one task in order, pacing `per_second` when given.
    pub async fn record(self: &Arc<Self>, from: usize, to: usize, per_second: Option<u32>) {
        let tasks = 4;
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let p = self.clone();
                tokio::spawn(async move {
                    let audit = p.pg.audit();
                    let mut tick = per_second.map(|r| {
                        let mut i = tokio::time::interval(Duration::from_secs_f64(
                            f64::from(tasks as u32) / f64::from(r),
                        ));
                        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        i
                    });
                    for n in (from..to).filter(|n| n % tasks == task) {
                        if let Some(t) = tick.as_mut() {
                            t.tick().await;
                        }
                        let subject = (n / tasks) % (SUBJECTS / tasks) * tasks + task;
                        let mut e = AuditEvent::new(
                            p.tenant,
                            SystemClock.now(),
                            AuditCategory::Security,
                            "auth.login_failed",
                        );
                        e.subject_user_id = Some(p.subjects[subject]);
                        e.metadata.insert("seq".into(), n.into());
                        let id = e.id;
                        let at = Instant::now();
                        audit.record(e).await.unwrap();
                        p.recorded.lock().push((id, subject, at));
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    }

    pub async fn wait_materialized(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let have = self.log.written.load(Ordering::SeqCst);
            if have >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {have} of {n} events materialized within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asserts the log holds exactly the recorded events and each subject's first deliveries
    /// came in recording order; returns the number materialized.
    pub async fn assert_exact(&self) -> u64 {
        let recorded = self.recorded.lock().clone();
        let count = self
            .pg
            .audit_log()
            .count(self.tenant, AuditQuery::default())
            .await
            .unwrap();
        assert_eq!(count, recorded.len() as u64, "log size vs recorded");
        let mut ids = HashSet::new();
        let mut after = None;
        loop {
            let page = self
                .pg
                .audit_log()
                .query(
                    self.tenant,
                    AuditQuery::default(),
                    PageRequest { after, limit: 1000 },
                )
                .await
                .unwrap();
            ids.extend(page.items.iter().map(|e| e.id));
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        let want: HashSet<EventId> = recorded.iter().map(|r| r.0).collect();
        assert_eq!(ids, want, "materialized ids vs recorded ids");
        let subject_of: HashMap<EventId, usize> = recorded.iter().map(|r| (r.0, r.1)).collect();
        let mut expected: HashMap<usize, Vec<EventId>> = HashMap::new();
        for (id, s, _) in &recorded {
            expected.entry(*s).or_default().push(*id);
        }
        let mut arrived: HashMap<usize, Vec<EventId>> = HashMap::new();
        for id in &self.log.arrivals.lock().0 {
            if let Some(s) = subject_of.get(id) {
                arrived.entry(*s).or_default().push(*id);
            }
        }
        for (s, want) in expected {
            assert!(
                arrived.get(&s) == Some(&want),
                "subject {s}: events arrived out of recording order"
            );
        }
        assert_eq!(
            self.pg.outbox().depth().await.unwrap(),
            0,
            "outbox not empty"
        );
        count
    }

    pub async fn finish(self: Arc<Self>) {
        let _ = self.pg.drop_schema().await;
        drop(self);
    }
}

/// A task with a shutdown signal.
pub struct Running<T> {
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    pub fn spawn<F>(f: impl FnOnce(watch::Receiver<bool>) -> F) -> Self
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(f(stopped)),
        }
    }

    /// Kills the task as a crash would (no clean shutdown) and returns once its future has
    /// been dropped, so its clients are gone before a successor starts. Starting the successor
    /// while the dead consumer still closes makes it leave mid-rebalance, which can stall the
    /// group on tansu.
    pub async fn kill(self) {
        self.task.abort();
        let ended = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("a killed task is dropped within 30 s");
        assert!(
            ended.is_err_and(|e| e.is_cancelled()),
            "the task was killed"
        );
    }

    pub async fn stop(self) -> T {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .unwrap()
    }
}

pub fn run_relay(relay: OutboxRelay) -> Running<RelayStats> {
    Running::spawn(|stop| async move { relay.run(stop).await })
}
