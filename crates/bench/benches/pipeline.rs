//! The audit pipeline beside a raw loop doing the same work with the same drivers, broker,
//! database and client settings, in the same run:
//! - `pipeline.relay.drain_2000`: our `OutboxRelay` + `KafkaSink` drain 2,000 pending outbox
//!   rows, beside a raw loop that claims 500 rows with `FOR UPDATE SKIP LOCKED` (no order keys,
//!   no tokens), sends the same records (key, envelope, the four headers) with an rdkafka
//!   `FutureProducer`, awaits every acknowledgement and marks them published;
//! - `pipeline.end_to_end_2000`: the same drain, timed until the consumer side has written all
//!   2,000 events into the audit log: our `AuditConsumer` over a `KafkaSource` (batch, decode,
//!   `append_batch`, synchronous offset commit) beside a raw `StreamConsumer` loop (batch,
//!   decode, one array insert with `ON CONFLICT DO NOTHING`, asynchronous commit).
//!
//! One operation is one event, so the table reads as time per event (its inverse is events/s).
//! Needs `CREDO_TEST_POSTGRES_URL` and `CREDO_TEST_KAFKA_BROKERS` (`cargo xtask bench`). A smoke
//! run moves 200 events per round in batches of 100 (the group names say the size).

use credo_adapters_kafka::{KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
use credo_adapters_postgres::{PgConfig, PgStores};
use credo_bench::{BASELINE, OURS, insert_events_raw, sized};
use credo_pipeline::{AuditConsumer, ConsumerConfig, OutboxRelay, RelayConfig};
use credo_ports::{AuditCategory, AuditEvent, EncodedEvent, SystemClock, TenantId, UserId};
use credo_testkit::required as server;
use criterion::{Criterion, criterion_group, criterion_main};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use sqlx::{PgPool, Row};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Events per round: 2,000, or 200 in a smoke run (`credo_bench::smoke`).
static EVENTS: LazyLock<usize> = LazyLock::new(|| sized(2_000, 200));
/// Claim and consumer batch: 500, or 100 in a smoke run, so a round still takes two batches.
static BATCH: LazyLock<usize> = LazyLock::new(|| sized(500, 100));

struct Setup {
    rt: tokio::runtime::Runtime,
    pg: PgStores,
    ours: KafkaConfig,
    raw: KafkaConfig,
    relay: OutboxRelay,
    producer: FutureProducer,
}

/// The test broker's settings (`single_node_dev`), per side; the raw side gets the very same
/// `ClientConfig`s through `KafkaConfig`.
fn kafka_config(brokers: &str, name: &str) -> KafkaConfig {
    let mut c = KafkaConfig::new(brokers).single_node_dev();
    let unique = format!("{name}.{}", std::process::id());
    c.topic = format!("credo.bench.{unique}");
    c.dlq_topic = format!("{}.dlq", c.topic);
    c.group_id = format!("credo-bench-{unique}");
    c
}

/// `name` keeps each group's topics and consumer groups apart from the other group's.
fn setup(name: &str) -> Option<Setup> {
    let url = server("CREDO_TEST_POSTGRES_URL")?;
    let brokers = server("CREDO_TEST_KAFKA_BROKERS")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let setup = rt.block_on(async {
        let mut c = PgConfig::new(url);
        c.schema = Some(format!("credo_bench_pipe_{}", std::process::id()));
        let pg = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
        pg.drop_schema().await.unwrap();
        pg.migrate().await.unwrap();
        let (ours, raw) = (
            kafka_config(&brokers, &format!("{name}.ours")),
            kafka_config(&brokers, &format!("{name}.raw")),
        );
        // A broker that does not answer fails here in seconds, not after rdkafka's 60 s.
        for c in [&ours, &raw] {
            tokio::time::timeout(Duration::from_secs(15), ensure_topics(c))
                .await
                .unwrap_or_else(|_| panic!("no Kafka broker answered at {brokers} within 15 s"))
                .unwrap();
        }
        let relay = OutboxRelay::new(pg.outbox(), Arc::new(KafkaSink::new(&ours).unwrap()), {
            let mut c = RelayConfig::default();
            c.batch = *BATCH;
            c
        })
        .unwrap();
        let producer: FutureProducer = raw.producer_config().create().unwrap();
        (pg, ours, raw, relay, producer)
    });
    let (pg, ours, raw, relay, producer) = setup;
    Some(Setup {
        rt,
        pg,
        ours,
        raw,
        relay,
        producer,
    })
}

/// Puts `EVENTS` pending rows into the outbox in one statement (untimed), as `record` would
/// have one by one.
async fn fill(pool: &PgPool, tenant: TenantId) {
    let now = credo_ports::Clock::now(&SystemClock);
    let subjects: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    let events: Vec<AuditEvent> = (0..*EVENTS)
        .map(|i| {
            let mut e = AuditEvent::new(tenant, now, AuditCategory::Security, "auth.login_failed");
            e.subject_user_id = Some(subjects[i % subjects.len()]);
            e.actor = Some("client:web".into());
            e.metadata.insert("n".into(), i.into());
            e
        })
        .collect();
    let encoded: Vec<EncodedEvent> = events.iter().map(EncodedEvent::encode).collect();
    let ids: Vec<uuid::Uuid> = encoded.iter().map(|m| m.id.0).collect();
    let subjects: Vec<uuid::Uuid> = encoded.iter().map(|m| m.subject.unwrap().0).collect();
    let envelopes: Vec<&str> = encoded.iter().map(|m| m.payload.as_str()).collect();
    sqlx::query(
        "INSERT INTO outbox (event_id, tenant_id, subject_user_id, event_type, schema_version,
                             envelope, enqueued_at)
         SELECT id, $2, subject, 'auth.login_failed', 1, envelope, now()
         FROM UNNEST($1::uuid[], $3::uuid[], $4::text[]) AS b(id, subject, envelope)",
    )
    .bind(ids)
    .bind(tenant.0)
    .bind(subjects)
    .bind(envelopes)
    .execute(pool)
    .await
    .unwrap();
}

/// The raw relay: claim with SKIP LOCKED, send, await every ack, mark published. Returns how
/// many rows it published.
async fn raw_drain(pool: &PgPool, producer: &FutureProducer, topic: &str) -> usize {
    let mut total = 0;
    loop {
        let rows = sqlx::query(
            "WITH picked AS (
                 SELECT seq FROM outbox
                 WHERE published_at IS NULL AND dead_at IS NULL
                   AND (claimed_until IS NULL OR claimed_until <= now())
                 ORDER BY seq LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE outbox o SET claimed_until = now() + interval '60 seconds', attempts = o.attempts + 1
             FROM picked WHERE o.seq = picked.seq
             RETURNING o.seq, o.event_id, o.tenant_id, o.subject_user_id, o.event_type,
                       o.schema_version, o.envelope",
        )
        .bind(*BATCH as i64)
        .fetch_all(pool)
        .await
        .unwrap();
        if rows.is_empty() {
            return total;
        }
        let mut seqs = Vec::with_capacity(rows.len());
        let mut acks = Vec::with_capacity(rows.len());
        for row in &rows {
            seqs.push(row.get::<i64, _>("seq"));
            let tenant = row.get::<uuid::Uuid, _>("tenant_id").to_string();
            let key = format!("{tenant}:{}", row.get::<uuid::Uuid, _>("subject_user_id"));
            let value: &str = row.get("envelope");
            let event_id = row.get::<uuid::Uuid, _>("event_id").to_string();
            let version = row.get::<i32, _>("schema_version").to_string();
            let headers = OwnedHeaders::new_with_capacity(4)
                .insert(Header {
                    key: "event_id",
                    value: Some(event_id.as_str()),
                })
                .insert(Header {
                    key: "event_type",
                    value: Some(row.get::<&str, _>("event_type")),
                })
                .insert(Header {
                    key: "tenant_id",
                    value: Some(tenant.as_str()),
                })
                .insert(Header {
                    key: "schema_version",
                    value: Some(version.as_str()),
                });
            let record = FutureRecord::to(topic)
                .key(&key)
                .payload(value)
                .headers(headers);
            acks.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
        for ack in acks {
            ack.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
        sqlx::query(
            "UPDATE outbox SET published_at = now(), claimed_until = NULL WHERE seq = ANY($1)",
        )
        .bind(&seqs)
        .execute(pool)
        .await
        .unwrap();
        total += rows.len();
    }
}

/// Our relay and the raw loop, each draining `EVENTS` fresh rows per iteration.
fn relay_drain(c: &mut Criterion) {
    let Some(s) = setup("relay") else { return };
    let pool = s.pg.pool().clone();
    let mut g = c.benchmark_group(format!("pipeline.relay.drain_{}", *EVENTS));
    g.sample_size(10);
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(rounds(&pool, iters, || async {
                assert_eq!(s.relay.drain().await.unwrap(), *EVENTS as u64);
            }))
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(rounds(&pool, iters, || async {
                assert_eq!(raw_drain(&pool, &s.producer, &s.raw.topic).await, *EVENTS);
            }))
        })
    });
    g.finish();
    s.rt.block_on(s.pg.drop_schema()).unwrap();
}

/// `iters` rounds of `EVENTS` fresh outbox rows (untimed) and `round` (timed). Criterion counts
/// iterations and one moves `EVENTS` events, so this returns the time per event.
async fn rounds<F, Fut>(pool: &PgPool, iters: u64, mut round: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        fill(pool, TenantId::new()).await;
        let started = Instant::now();
        round().await;
        timed += started.elapsed();
    }
    timed / *EVENTS as u32
}

/// The raw consumer: batches of up to `BATCH` (or what arrives within 20 ms), one array insert,
/// an asynchronous commit. Counts the rows it inserted into `written`.
async fn raw_consume(
    config: ClientConfig,
    topic: String,
    pool: PgPool,
    written: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let consumer: StreamConsumer = config.create().unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    loop {
        let first = tokio::select! {
            m = consumer.recv() => m.unwrap().detach(),
            _ = stop.changed() => return,
        };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        while batch.len() < *BATCH {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(m) => batch.push(m.unwrap().detach()),
                Err(_) => break,
            }
        }
        #[derive(serde::Deserialize)]
        struct Envelope {
            event: AuditEvent,
        }
        let events: Vec<AuditEvent> = batch
            .iter()
            .map(|m| {
                serde_json::from_slice::<Envelope>(m.payload().unwrap())
                    .unwrap()
                    .event
            })
            .collect();
        let inserted = insert_events_raw(&pool, &events, true).await;
        for m in &batch {
            consumer
                .store_offset(m.topic(), m.partition(), m.offset())
                .unwrap();
        }
        consumer.commit_consumer_state(CommitMode::Async).unwrap();
        written.fetch_add(inserted, Ordering::SeqCst);
    }
}

/// Waits until `counter` reaches `target`. Fails at once when `consumer`, the task that counts,
/// has ended (a panic in it), rather than at the deadline.
async fn wait_until<T>(consumer: &JoinHandle<T>, counter: impl Fn() -> u64, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter() < target {
        assert!(
            !consumer.is_finished(),
            "the consumer task ended (see its panic above)"
        );
        assert!(
            Instant::now() < deadline,
            "events not materialized within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Outbox to audit log, ours and raw, with both consumers running throughout.
fn end_to_end(c: &mut Criterion) {
    let Some(s) = setup("e2e") else { return };
    let pool = s.pg.pool().clone();
    let (stop, stopped) = watch::channel(false);
    let (handle, written, ours_task, raw_task) = s.rt.block_on(async {
        let source = KafkaSource::new(&s.ours).unwrap();
        let source_handle = source.handle();
        let consumer = AuditConsumer::new(
            Arc::new(source),
            s.pg.audit_log(),
            ConsumerConfig::default(),
        )
        .unwrap();
        let handle = consumer.handle();
        let ours_task = tokio::spawn(consumer.run(stopped.clone()));
        assert!(source_handle.wait_assigned(Duration::from_secs(60)).await);
        let written = Arc::new(AtomicU64::new(0));
        let raw_task = tokio::spawn(raw_consume(
            s.raw.consumer_config(),
            s.raw.topic.clone(),
            pool.clone(),
            written.clone(),
            stopped,
        ));
        (handle, written, ours_task, raw_task)
    });
    // One untimed round each: the raw consumer's first batch also tells its group joined.
    s.rt.block_on(async {
        fill(&pool, TenantId::new()).await;
        s.relay.drain().await.unwrap();
        wait_until(&ours_task, || handle.stats().materialized, *EVENTS as u64).await;
        fill(&pool, TenantId::new()).await;
        raw_drain(&pool, &s.producer, &s.raw.topic).await;
        wait_until(&raw_task, || written.load(Ordering::SeqCst), *EVENTS as u64).await;
    });
    let mut g = c.benchmark_group(format!("pipeline.end_to_end_{}", *EVENTS));
    g.sample_size(10);
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(rounds(&pool, iters, || async {
                let target = handle.stats().materialized + *EVENTS as u64;
                s.relay.drain().await.unwrap();
                wait_until(&ours_task, || handle.stats().materialized, target).await;
            }))
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(rounds(&pool, iters, || async {
                let target = written.load(Ordering::SeqCst) + *EVENTS as u64;
                raw_drain(&pool, &s.producer, &s.raw.topic).await;
                wait_until(&raw_task, || written.load(Ordering::SeqCst), target).await;
            }))
        })
    });
    g.finish();
    let _ = stop.send(true);
    s.rt.block_on(s.pg.drop_schema()).unwrap();
}

criterion_group!(benches, relay_drain, end_to_end);
criterion_main!(benches);
