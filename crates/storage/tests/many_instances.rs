//! Many instances of the service (issue 16, item 2; DESIGN §4 "Many instances", §6).
//!
//! Three service instances share one PostgreSQL outbox (one schema) and one Kafka topic of six
//! partitions. Each runs its relay; instances 1 and 2 also run an audit consumer in one
//! consumer group (instance 3 relays only). Six writer tasks, two per instance, record 7,200
//! audit events over 63 order keys (3 tenants × 20 subjects, plus each tenant's subject-less
//! events) at 400 events/s, and meanwhile:
//!
//! - instance 1's relay dies after the broker acknowledged a batch and before it acked the
//!   outbox rows, and is restarted at once: the orphaned rows come back when their lease ends
//!   and are published a second time, by whichever relay claims them;
//! - instance 2's consumer dies after writing a batch and before committing its offsets, so it
//!   leaves the group; consumer 1 takes its partitions over and reads that batch again; later
//!   instance 2's consumer rejoins (a new client) and the partitions move once more.
//!
//! Then it checks exactly: the log holds the recorded events and nothing else (0 lost, equal
//! content), only the orphaned events were published twice, every message the broker stored
//! was read, and every duplicate delivered (by relays or consumers) was absorbed; and the order
//! the pipeline promises (DESIGN §6, docs/audit-pipeline.md): the message key is the order key
//! `(tenant, subject)`, so each key's messages share one partition, and each key's events (first
//! copies) stand on the topic and arrive into the log in recording order. It prints its figures.
//!
//! Built from the pipeline's pieces, not `Storage::connect`: the facade starts one relay and
//! one consumer per instance and stops them together, so it can neither run a relay-only
//! instance, nor stop one consumer while its relay goes on, nor count what each relay
//! published. Needs `CREDO_TEST_POSTGRES_URL` and `CREDO_TEST_KAFKA_BROKERS`
//! (`cargo xtask services env`); built with the `postgres` and `kafka` features.
#![cfg(all(feature = "postgres", feature = "kafka"))]

use async_trait::async_trait;
use credo_storage::envelope;
use credo_storage::kafka::{KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
use credo_storage::pipeline::{
    AuditConsumer, Backoff, ConsumerConfig, ConsumerHandle, ConsumerStats, OutboxRelay,
    RelayConfig, RelayStats,
};
use credo_storage::postgres::{PgConfig, PgStores};
use credo_storage::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, AuditRecorder, Clock, Delivery,
    EncodedEvent, EventId, EventSink, EventSource, NonZeroU32, Page, PageRequest, PartitionLag,
    SourceMessage, StoreResult, SystemClock, TenantId, Timestamp, UserId,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

const EVENTS: usize = 7_200;
/// Two per instance; each order key belongs to one writer, so its recording order is defined.
const WRITERS: usize = 6;
const TENANTS: usize = 3;
const SUBJECTS_PER_TENANT: usize = 20;
const PARTITIONS: i32 = 6;
/// Events per second over all writers: slow enough that every fault falls mid-stream (a group
/// join takes 3 to 4 s on tansu).
const RATE: f64 = 400.0;
/// The relay's lease must be longer than the delivery timeout; short, so that orphaned rows
/// come back within the stream.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);
const LEASE: Duration = Duration::from_secs(5);

const RELAY_1: &str = "relay-1";
const RELAY_1_RESTARTED: &str = "relay-1 (restarted)";
const CONSUMER_1: &str = "consumer-1";
const CONSUMER_2: &str = "consumer-2";
const CONSUMER_2_REJOINED: &str = "consumer-2 (rejoined)";

type OrderKey = (TenantId, Option<UserId>);

/// Everything the test observes, in one place.
#[derive(Default)]
struct Seen {
    /// Per order key, its events in recording order.
    recorded: HashMap<OrderKey, Vec<EventId>>,
    events: HashMap<EventId, AuditEvent>,
    /// When each `record` returned.
    recorded_at: HashMap<EventId, Instant>,
    /// Every publish the broker acknowledged.
    published: Vec<Publish>,
    /// Every message handed to a consumer.
    reads: Vec<Read>,
    /// Each event's first arrival into the log (by any consumer), in order.
    arrivals: Vec<(EventId, Instant)>,
    arrived: HashSet<EventId>,
    /// What the log's `append_batch` reported, over every consumer.
    inserted: u64,
    duplicates: u64,
    /// The batch a dying consumer wrote and never committed.
    uncommitted: Vec<EventId>,
}

struct Publish {
    relay: &'static str,
    id: EventId,
    partition: i32,
    offset: i64,
    at: Instant,
}

struct Read {
    consumer: &'static str,
    id: EventId,
    partition: i32,
    offset: i64,
    at: Instant,
}

type Shared = Arc<Mutex<Seen>>;

fn lock(seen: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().expect("no observer panicked")
}

// --- the pipeline's pieces, observed -----------------------------------------------------------

/// One relay's Kafka sink: notes where the broker stored each event. Armed, it hangs once the
/// broker has acknowledged a batch, as a relay process dying before it acks the outbox would.
struct ObservedSink {
    name: &'static str,
    inner: KafkaSink,
    seen: Shared,
    die_after_publish: AtomicBool,
    died: Notify,
    orphaned: Mutex<Vec<EventId>>,
}

#[async_trait]
impl EventSink for ObservedSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let acked = self.inner.publish_acked(batch).await?;
        let now = Instant::now();
        let ids: Vec<EventId> = batch
            .iter()
            .zip(&acked.deliveries)
            .filter(|(_, d)| **d == Delivery::Published)
            .map(|(m, _)| m.id)
            .collect();
        assert_eq!(ids.len(), acked.stored.len(), "a place per published event");
        {
            let mut seen = lock(&self.seen);
            for (&id, at) in ids.iter().zip(&acked.stored) {
                seen.published.push(Publish {
                    relay: self.name,
                    id,
                    partition: at.partition,
                    offset: at.offset,
                    at: now,
                });
            }
        }
        if self.die_after_publish.load(Ordering::SeqCst) {
            *self.orphaned.lock().unwrap() = ids;
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(acked.deliveries)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.inner.delivery_timeout()
    }
}

/// One consumer's Kafka source: notes every message it hands out.
struct ObservedSource {
    name: &'static str,
    inner: KafkaSource,
    seen: Shared,
}

#[async_trait]
impl EventSource for ObservedSource {
    async fn next_batch(
        &self,
        max: usize,
        idle: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<SourceMessage>> {
        let batch = self.inner.next_batch(max, idle, wait).await?;
        let now = Instant::now();
        let mut seen = lock(&self.seen);
        for m in &batch {
            let event = envelope::decode(m.payload.as_deref()).expect("only envelopes here");
            seen.reads.push(Read {
                consumer: self.name,
                id: event.id,
                partition: m.partition,
                offset: m.offset,
                at: now,
            });
        }
        Ok(batch)
    }
    async fn dead_letter(&self, m: &SourceMessage, reason: &str) -> StoreResult<()> {
        self.inner.dead_letter(m, reason).await
    }
    async fn commit(&self, batch: &[SourceMessage]) -> StoreResult<()> {
        self.inner.commit(batch).await
    }
    async fn lag(&self) -> StoreResult<Vec<PartitionLag>> {
        self.inner.lag().await
    }
    async fn close(&self) -> StoreResult<()> {
        self.inner.close().await
    }
}

/// The shared audit log as one consumer writes it: notes each event's first arrival and what
/// every write reported. Armed, it hangs after its next write, as a consumer process dying
/// between its write and its offset commit would.
struct Witness {
    inner: Arc<dyn AuditLog>,
    seen: Shared,
    die_after_write: AtomicBool,
    died: Notify,
}

#[async_trait]
impl AuditLog for Witness {
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        let outcome = self.inner.append_batch(events).await?;
        let now = Instant::now();
        let dying = self.die_after_write.load(Ordering::SeqCst);
        {
            let mut seen = lock(&self.seen);
            for e in events {
                if seen.arrived.insert(e.id) {
                    seen.arrivals.push((e.id, now));
                }
            }
            seen.inserted += outcome.inserted;
            seen.duplicates += outcome.duplicates;
            if dying {
                seen.uncommitted = events.iter().map(|e| e.id).collect();
            }
        }
        if dying {
            self.died.notify_one();
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

/// A background task with its stop signal.
struct Running<T> {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<T>,
}

impl<T: Send + 'static> Running<T> {
    fn spawn<F>(f: impl FnOnce(watch::Receiver<bool>) -> F) -> Self
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(f(stopped)),
        }
    }

    /// Ends it as a crash would, and returns once its clients are dropped (a consumer has left
    /// the group then: on tansu, a member leaving while another joins stalls the group).
    async fn kill(self) {
        self.task.abort();
        let ended = tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("a killed task is dropped within 30 s");
        assert!(
            ended.is_err_and(|e| e.is_cancelled()),
            "the task was killed"
        );
    }

    /// Stops it as a service shutting down does (the batch in hand is finished).
    async fn stop(self) -> T {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .expect("did not panic")
    }
}

struct Consumer {
    running: Running<ConsumerStats>,
    handle: ConsumerHandle,
    witness: Arc<Witness>,
    /// From its start to its first partition assignment.
    joined_in: Duration,
}

/// One service instance: its own pools and Kafka clients on the shared schema and topic.
struct Instance {
    pg: PgStores,
    kafka: KafkaConfig,
}

impl Instance {
    async fn connect(n: usize, pg_url: &str, brokers: &str, name: &str) -> Instance {
        let mut pg = PgConfig::new(pg_url);
        pg.schema = Some(name.to_string());
        // Three pools share the server with whatever else runs.
        pg.max_connections = 6;
        let pg = PgStores::connect(&pg, Arc::new(SystemClock)).await.unwrap();
        // Every instance migrates at start-up, as a service does; the later ones find it done.
        pg.migrate().await.unwrap();
        // The test broker's settings: tansu joins groups slowly, so a short session.
        let mut kafka = KafkaConfig::new(brokers).single_node_dev();
        kafka.topic = name.to_string();
        kafka.dlq_topic = format!("{name}.dlq");
        kafka.group_id = name.to_string();
        kafka.client_id = format!("credo-instance-{n}");
        kafka.partitions = PARTITIONS;
        kafka.delivery_timeout = DELIVERY_TIMEOUT;
        kafka.health_timeout = Duration::from_secs(5);
        Instance { pg, kafka }
    }

    /// A relay with the default batch and idle poll.
    fn relay(&self, name: &'static str, seen: &Shared) -> (Arc<ObservedSink>, Running<RelayStats>) {
        let sink = Arc::new(ObservedSink {
            name,
            inner: KafkaSink::new(&self.kafka).unwrap(),
            seen: seen.clone(),
            die_after_publish: AtomicBool::new(false),
            died: Notify::new(),
            orphaned: Mutex::default(),
        });
        let mut config = RelayConfig::default();
        config.lease = LEASE;
        config.backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let relay = OutboxRelay::new(self.pg.outbox(), sink.clone(), config).unwrap();
        (
            sink,
            Running::spawn(|stop| async move { relay.run(stop).await }),
        )
    }

    /// A consumer in the group, returned once it has partitions.
    async fn consumer(&self, name: &'static str, seen: &Shared) -> Consumer {
        let started = Instant::now();
        let source = KafkaSource::new(&self.kafka).unwrap();
        let assigned = source.handle();
        let witness = Arc::new(Witness {
            inner: self.pg.audit_log(),
            seen: seen.clone(),
            die_after_write: AtomicBool::new(false),
            died: Notify::new(),
        });
        let consumer = AuditConsumer::new(
            Arc::new(ObservedSource {
                name,
                inner: source,
                seen: seen.clone(),
            }),
            witness.clone(),
            ConsumerConfig::default(),
        )
        .unwrap();
        let handle = consumer.handle();
        let running = Running::spawn(|stop| consumer.run(stop));
        // On tansu a consumer closed before its first assignment breaks its group: none is
        // stopped before this.
        assert!(
            assigned.wait_assigned(Duration::from_secs(60)).await,
            "{name}: no partitions within 60 s"
        );
        // The handle holds the client: dropped, so that the client closes (leaves the group)
        // with the consumer.
        drop(assigned);
        Consumer {
            running,
            handle,
            witness,
            joined_in: started.elapsed(),
        }
    }
}

/// Records `count` events cycling over `keys` (this writer's alone), paced.
async fn write(
    writer: usize,
    audit: Arc<dyn AuditRecorder>,
    keys: Vec<OrderKey>,
    count: usize,
    seen: Shared,
    progress: Arc<AtomicUsize>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(WRITERS as f64 / RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..count {
        tick.tick().await;
        let key = keys[seq % keys.len()];
        let mut e = AuditEvent::new(
            key.0,
            SystemClock.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        e.subject_user_id = key.1;
        e.metadata.insert("writer".into(), writer.into());
        e.metadata.insert("seq".into(), seq.into());
        audit.record(e.clone()).await.unwrap();
        let at = Instant::now();
        {
            let mut seen = lock(&seen);
            seen.recorded_at.insert(e.id, at);
            seen.recorded.entry(key).or_default().push(e.id);
            seen.events.insert(e.id, e);
        }
        progress.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits until the writers have recorded `percent` % of the events.
async fn reach(progress: &AtomicUsize, percent: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress.load(Ordering::SeqCst) < EVENTS * percent / 100 {
        assert!(
            Instant::now() < deadline,
            "writers stalled before {percent} %"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every event of `tenants` in the log.
async fn read_log(log: &Arc<dyn AuditLog>, tenants: &[TenantId]) -> HashMap<EventId, AuditEvent> {
    let mut out = HashMap::new();
    for &t in tenants {
        let mut page = PageRequest::first(1000);
        loop {
            let p = log.query(t, AuditQuery::default(), page).await.unwrap();
            for e in p.items {
                assert!(out.insert(e.id, e).is_none(), "an event twice in the log");
            }
            match p.next {
                Some(n) => page.after = Some(n),
                None => break,
            }
        }
    }
    out
}

async fn count(log: &Arc<dyn AuditLog>, tenants: &[TenantId]) -> u64 {
    let mut n = 0;
    for &t in tenants {
        n += log.count(t, AuditQuery::default()).await.unwrap();
    }
    n
}

/// Per order key, the first copy of each event, in `ids` order.
fn first_copies_per_key(
    ids: impl IntoIterator<Item = EventId>,
    key_of: &HashMap<EventId, OrderKey>,
) -> HashMap<OrderKey, Vec<EventId>> {
    let mut once = HashSet::new();
    let mut out: HashMap<OrderKey, Vec<EventId>> = HashMap::new();
    for id in ids {
        if once.insert(id) {
            out.entry(key_of[&id]).or_default().push(id);
        }
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_lose_nothing_absorb_duplicates_and_keep_each_subject_in_order() {
    let (Some(pg_url), Some(brokers)) = (
        credo_testkit::required("CREDO_TEST_POSTGRES_URL"),
        credo_testkit::required("CREDO_TEST_KAFKA_BROKERS"),
    ) else {
        return;
    };
    // Schema, topic and group of this test alone.
    let name = credo_testkit::unique_name("credo_many");
    let mut instances = Vec::new();
    for n in 1..=3 {
        instances.push(Instance::connect(n, &pg_url, &brokers, &name).await);
    }
    ensure_topics(&instances[0].kafka).await.unwrap();
    let seen: Shared = Arc::default();
    let log = instances[0].pg.audit_log();
    let outbox = instances[0].pg.outbox();

    // One join at a time, each waiting for its assignment (tansu, above).
    let consumer_1 = instances[0].consumer(CONSUMER_1, &seen).await;
    let consumer_2 = instances[1].consumer(CONSUMER_2, &seen).await;
    let (sink_1, relay_1) = instances[0].relay(RELAY_1, &seen);
    let (_, relay_2) = instances[1].relay("relay-2", &seen);
    let (_, relay_3) = instances[2].relay("relay-3", &seen);

    let tenants: Vec<TenantId> = (0..TENANTS).map(|_| TenantId::new()).collect();
    let keys: Vec<OrderKey> = tenants
        .iter()
        .flat_map(|&t| {
            (0..SUBJECTS_PER_TENANT)
                .map(move |_| (t, Some(UserId::new())))
                .chain([(t, None)])
        })
        .collect();
    let progress = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mine: Vec<OrderKey> = keys.iter().skip(w).step_by(WRITERS).copied().collect();
            tokio::spawn(write(
                w,
                instances[w % instances.len()].pg.audit(),
                mine,
                EVENTS / WRITERS,
                seen.clone(),
                progress.clone(),
            ))
        })
        .collect();

    // Relay 1 dies mid-batch (published, not acked) and is restarted at once.
    reach(&progress, 10).await;
    sink_1.die_after_publish.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), sink_1.died.notified())
        .await
        .expect("relay 1 published a batch within 10 s");
    relay_1.kill().await;
    let relay_killed_at = Instant::now();
    let orphaned: HashSet<EventId> = sink_1.orphaned.lock().unwrap().iter().copied().collect();
    drop(sink_1); // its producer goes with the process
    let (_, relay_1b) = instances[0].relay(RELAY_1_RESTARTED, &seen);

    // Consumer 2 dies between a write and its commit, and so leaves the group.
    reach(&progress, 20).await;
    consumer_2
        .witness
        .die_after_write
        .store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(10), consumer_2.witness.died.notified())
        .await
        .expect("consumer 2 wrote a batch within 10 s");
    let died_at = Instant::now();
    consumer_2.running.kill().await;
    let left_at = Instant::now();
    let stats_2 = consumer_2.handle.stats();
    let partitions_2: BTreeSet<i32> = lock(&seen)
        .reads
        .iter()
        .filter(|r| r.consumer == CONSUMER_2)
        .map(|r| r.partition)
        .collect();
    // Consumer 1 takes them over (a rebalance) before anyone joins: on tansu a join during a
    // leave stalls the group.
    let deadline = Instant::now() + Duration::from_secs(30);
    let taken_over_in = loop {
        let first = lock(&seen)
            .reads
            .iter()
            .filter(|r| {
                r.consumer == CONSUMER_1 && r.at > died_at && partitions_2.contains(&r.partition)
            })
            .map(|r| r.at - died_at)
            .min();
        if let Some(t) = first {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "consumer 1 did not take over partitions {partitions_2:?} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // Consumer 2 rejoins with a new client, with time left for it to read.
    reach(&progress, 45).await;
    let rejoined_at = Instant::now();
    let consumer_2b = instances[1].consumer(CONSUMER_2_REJOINED, &seen).await;

    for w in writers {
        w.await.unwrap();
    }
    let recorded_in = started.elapsed();

    // Done when the log holds every event, the outbox is empty and every message the broker
    // stored has been read (the orphaned batch's second copies included).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let in_log = count(&log, &tenants).await;
        let depth = outbox.depth().await.unwrap();
        let unread = {
            let s = lock(&seen);
            let read: HashSet<(i32, i64)> =
                s.reads.iter().map(|r| (r.partition, r.offset)).collect();
            s.published
                .iter()
                .filter(|p| !read.contains(&(p.partition, p.offset)))
                .count()
        };
        if in_log == EVENTS as u64 && depth == 0 && unread == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "60 s after the last record: {in_log} of {EVENTS} in the log, outbox depth {depth}, \
             {unread} stored messages unread"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let relays: Vec<RelayStats> = vec![
        relay_1b.stop().await,
        relay_2.stop().await,
        relay_3.stop().await,
    ];
    let consumers = [
        consumer_1.running.stop().await,
        stats_2,
        consumer_2b.running.stop().await,
    ];
    // Every task has stopped: what they saw is final.
    let s = std::mem::take(&mut *lock(&seen));

    // --- 0 lost: the log holds exactly the recorded events, unchanged --------------------------
    assert_eq!(s.events.len(), EVENTS, "events recorded");
    let in_log = read_log(&log, &tenants).await;
    assert_eq!(in_log.len(), EVENTS, "events in the log");
    assert!(in_log == s.events, "the log differs from what was recorded");
    assert_eq!(outbox.depth().await.unwrap(), 0, "outbox depth");
    assert_eq!(outbox.dead_letter_count().await.unwrap(), 0, "dead letters");

    // --- published: each event once, the orphaned batch twice ----------------------------------
    assert!(!orphaned.is_empty(), "relay 1 died holding a batch");
    let mut times_published: HashMap<EventId, usize> = HashMap::new();
    for p in &s.published {
        *times_published.entry(p.id).or_default() += 1;
    }
    for id in s.events.keys() {
        let want = if orphaned.contains(id) { 2 } else { 1 };
        assert_eq!(times_published.get(id), Some(&want), "publishes of {id}");
    }
    assert_eq!(
        s.published.len(),
        EVENTS + orphaned.len(),
        "messages published"
    );
    // The broker stored each at its own place, and the consumers read every one of them.
    let stored: HashMap<(i32, i64), EventId> = s
        .published
        .iter()
        .map(|p| ((p.partition, p.offset), p.id))
        .collect();
    assert_eq!(stored.len(), s.published.len(), "one place per message");
    let mut read_places = HashSet::new();
    for r in &s.reads {
        let place = (r.partition, r.offset);
        assert_eq!(stored.get(&place), Some(&r.id), "message read at {place:?}");
        read_places.insert(place);
    }
    assert_eq!(read_places.len(), stored.len(), "stored messages read");

    // --- duplicates: every copy delivered was absorbed -----------------------------------------
    let reads = s.reads.len() as u64;
    let delivered_twice = reads - EVENTS as u64;
    assert_eq!(s.inserted, EVENTS as u64, "events the log inserted");
    assert_eq!(
        s.duplicates, delivered_twice,
        "copies absorbed vs delivered"
    );
    // The consumers' own counters agree; the dying write never returned to consumer 2.
    assert!(!s.uncommitted.is_empty(), "consumer 2 died holding a batch");
    let sum = |f: fn(&ConsumerStats) -> u64| consumers.iter().map(f).sum::<u64>();
    assert_eq!(sum(|c| c.consumed), reads, "{consumers:?}");
    assert_eq!(sum(|c| c.dead_lettered), 0, "{consumers:?}");
    assert_eq!(
        sum(|c| c.materialized + c.duplicates) + s.uncommitted.len() as u64,
        reads,
        "{consumers:?}"
    );
    for id in &s.uncommitted {
        let copies = s.reads.iter().filter(|r| r.id == *id).count();
        assert!(copies >= 2, "the uncommitted batch was delivered again");
    }

    // --- order per (tenant, subject): one partition per key, recording order -------------------
    let key_of: HashMap<EventId, OrderKey> = s
        .recorded
        .iter()
        .flat_map(|(k, ids)| ids.iter().map(move |id| (*id, *k)))
        .collect();
    let mut partitions_of: HashMap<OrderKey, BTreeSet<i32>> = HashMap::new();
    for p in &s.published {
        partitions_of
            .entry(key_of[&p.id])
            .or_default()
            .insert(p.partition);
    }
    for (key, parts) in &partitions_of {
        assert_eq!(parts.len(), 1, "{key:?} spread over partitions {parts:?}");
    }
    let mut on_topic: Vec<&Publish> = s.published.iter().collect();
    on_topic.sort_by_key(|p| (p.partition, p.offset));
    let on_topic = first_copies_per_key(on_topic.iter().map(|p| p.id), &key_of);
    let into_log = first_copies_per_key(s.arrivals.iter().map(|a| a.0), &key_of);
    for (key, recorded) in &s.recorded {
        assert!(
            on_topic.get(key) == Some(recorded),
            "{key:?}: order on the topic differs from recording order"
        );
        assert!(
            into_log.get(key) == Some(recorded),
            "{key:?}: order into the log differs from recording order"
        );
    }

    // --- the premises: three relays shared the work, the rejoined consumer worked --------------
    let mut per_relay: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &s.published {
        *per_relay.entry(p.relay).or_default() += 1;
    }
    for relay in [RELAY_1, RELAY_1_RESTARTED, "relay-2", "relay-3"] {
        assert!(
            per_relay.get(relay).is_some_and(|&n| n > 0),
            "{relay} published nothing: {per_relay:?}"
        );
    }
    let reads_of = |c: &'static str| s.reads.iter().filter(move |r| r.consumer == c);
    let first_read_after_rejoin = reads_of(CONSUMER_2_REJOINED)
        .map(|r| r.at - rejoined_at)
        .min()
        .expect("the rejoined consumer read messages");

    // --- figures -------------------------------------------------------------------------------
    let last_arrival = s.arrivals.iter().map(|a| a.1).max().expect("arrivals");
    let end_to_end = last_arrival - started;
    let republished = s
        .published
        .iter()
        .filter(|p| orphaned.contains(&p.id) && p.relay != RELAY_1);
    let republished_after = republished
        .clone()
        .map(|p| p.at - relay_killed_at)
        .min()
        .expect("republished");
    let republished_by: BTreeSet<&str> = republished.map(|p| p.relay).collect();
    let mut latencies: Vec<Duration> = s
        .arrivals
        .iter()
        .map(|(id, at)| at.saturating_duration_since(s.recorded_at[id]))
        .collect();
    latencies.sort();
    let percentile = |p: usize| {
        format!(
            "{} ms",
            latencies[(latencies.len() - 1) * p / 100].as_millis()
        )
    };
    // The longest stretch in which no relay published while the writers were recording: a
    // dead claim holds back its own keys only (claims used to count the rows queued behind it
    // against their batch, and once `batch` of them had piled up every relay claimed nothing
    // until the lease ended: 2.3 to 3.4 s of silence in every run).
    // From the first publish on: the relays' start (producer connections) is not a stall.
    let mut publish_times: Vec<Instant> = s.published.iter().map(|p| p.at).collect();
    publish_times.sort();
    let (stall, stall_from) = publish_times
        .windows(2)
        .filter(|w| w[0] < started + recorded_in)
        .map(|w| (w[1] - w[0], w[0] - started))
        .max()
        .expect("publishes");
    let parts_read = |c: &'static str| reads_of(c).map(|r| r.partition).collect::<BTreeSet<_>>();
    println!(
        "many instances: 3 relays, 2 consumers in one group, 1 outbox, 1 topic of {PARTITIONS} \
         partitions, {keys} order keys ({TENANTS} tenants x ({SUBJECTS_PER_TENANT} subjects + \
         subject-less)), {WRITERS} writers over the 3 instances\n\
         events: {EVENTS} recorded in {rec} ({rec_rate:.0}/s, paced); all in the log \
         {e2e} after the first record ({e2e_rate:.0} events/s end to end), the last {tail} \
         after the last record; record to log p50 {p50}, p99 {p99}, max {max}\n\
         relay-1 killed at {killed} after publishing {orphans} events it never acked, restarted \
         at once; those events published again {again} later by {republished_by:?} (lease \
         {lease})\n\
         published per relay: {per_relay:?}; total {published} = {EVENTS} + {orphans}; \
         longest time without any publish while recording: {stall} (from {stall_from})\n\
         duplicates delivered {delivered_twice} (republished by relays {orphans}, read again \
         by consumers {reread}), absorbed {absorbed}; consumer-2 died after writing {unc} \
         events it never committed\n\
         consumer reads {reads}: consumer-1 {r1} (partitions {p1:?}), consumer-2 {r2} \
         ({p2:?}), consumer-2 rejoined {r2b} ({p2b:?}); offset commits refused {refused}; \
         relay pass failures {relay_failures}\n\
         rebalances 4: consumer-1 joined in {join_1}, consumer-2 joined in {join_2}; \
         consumer-2 died at {died} (its client closed, leaving the group, {closed} later), \
         consumer-1 read its partitions {taken} after the death; consumer-2 rejoined at {rejoined}: partitions after {rejoin}, first message after \
         {first}",
        keys = keys.len(),
        rec = secs(recorded_in),
        rec_rate = EVENTS as f64 / recorded_in.as_secs_f64(),
        e2e = secs(end_to_end),
        e2e_rate = EVENTS as f64 / end_to_end.as_secs_f64(),
        tail = secs(end_to_end.saturating_sub(recorded_in)),
        p50 = percentile(50),
        p99 = percentile(99),
        max = percentile(100),
        killed = secs(relay_killed_at - started),
        orphans = orphaned.len(),
        again = secs(republished_after),
        lease = secs(LEASE),
        published = s.published.len(),
        stall = secs(stall),
        stall_from = secs(stall_from),
        reread = reads - read_places.len() as u64,
        absorbed = s.duplicates,
        unc = s.uncommitted.len(),
        r1 = reads_of(CONSUMER_1).count(),
        p1 = parts_read(CONSUMER_1),
        r2 = reads_of(CONSUMER_2).count(),
        p2 = parts_read(CONSUMER_2),
        r2b = reads_of(CONSUMER_2_REJOINED).count(),
        p2b = parts_read(CONSUMER_2_REJOINED),
        refused = sum(|c| c.commit_failures),
        relay_failures = relays.iter().map(|r| r.failures).sum::<u64>(),
        join_1 = secs(consumer_1.joined_in),
        join_2 = secs(consumer_2.joined_in),
        died = secs(died_at - started),
        closed = secs(left_at - died_at),
        taken = secs(taken_over_in),
        rejoined = secs(rejoined_at - started),
        rejoin = secs(consumer_2b.joined_in),
        first = secs(first_read_after_rejoin),
    );
    assert!(
        stall < Duration::from_secs(1),
        "no relay published for {stall:?} (from {stall_from:?} after the start) while events \
         were being recorded: the dead relay's claim stalled the others"
    );
    instances[0].pg.drop_schema().await.unwrap();
    for i in instances {
        i.pg.close().await;
    }
}
