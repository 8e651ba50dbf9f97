//! The sink, the source (under the pipeline's audit consumer), the dead-letter topic and the
//! health check against a real broker (`CREDO_TEST_KAFKA_BROKERS`, started by
//! `cargo xtask services up`).

use credo_adapters_inmemory::InMemoryStores;
use credo_adapters_kafka::{
    KafkaConfig, KafkaHealth, KafkaSink, KafkaSource, SourceHandle, ensure_topics,
};
use credo_pipeline::{AuditConsumer, ConsumerConfig, ConsumerStats};
use credo_ports::{
    AuditCategory, AuditEvent, AuditLog, Clock, Delivery, EncodedEvent, EventSink, EventSource,
    HealthCheck, HealthStatus, SystemClock, TenantId, Timestamp, TraceParent, UserId,
};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn brokers() -> Option<String> {
    credo_testkit::required("CREDO_TEST_KAFKA_BROKERS")
}

/// Fresh topics and group per test, with the test broker's settings.
fn config(brokers: &str, name: &str) -> KafkaConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut c = KafkaConfig::new(brokers).single_node_dev();
    c.topic = format!("credo.it.{name}.{id}");
    c.dlq_topic = format!("{}.dlq", c.topic);
    c.group_id = format!("credo-it-{name}-{id}");
    c
}

fn event(tenant: TenantId, subject: Option<UserId>, n: u32) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant,
        Timestamp::from_micros(1_800_000_000_000_000 + i64::from(n)),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.subject_user_id = subject;
    e.metadata.insert("n".into(), n.into());
    e
}

fn encode(events: &[AuditEvent]) -> Vec<EncodedEvent> {
    events.iter().map(EncodedEvent::encode).collect()
}

struct Running {
    handle: SourceHandle,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<ConsumerStats>,
}

async fn start_consumer(config: &KafkaConfig, log: Arc<dyn AuditLog>) -> Running {
    let source = KafkaSource::new(config).unwrap();
    let handle = source.handle();
    // Partitions are assigned only while the consumer polls: not before it runs.
    assert!(!handle.is_assigned());
    assert!(!handle.wait_assigned(Duration::from_millis(100)).await);
    let consumer = AuditConsumer::new(Arc::new(source), log, ConsumerConfig::default()).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(consumer.run(stopped));
    assert!(
        handle.wait_assigned(Duration::from_secs(30)).await,
        "no partition assignment within 30 s"
    );
    Running { handle, stop, task }
}

impl Running {
    async fn stop(self) -> ConsumerStats {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("consumer stops within 15 s")
            .unwrap()
    }
}

fn raw_consumer(config: &KafkaConfig, topic: &str) -> BaseConsumer {
    let mut c = config.consumer_config();
    c.set("group.id", format!("{}-raw", config.group_id));
    let consumer: BaseConsumer = c.create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Reads `n` messages (blocking; call from spawn_blocking).
fn read(consumer: &BaseConsumer, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

fn header_map(m: &rdkafka::message::OwnedMessage) -> HashMap<String, String> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_carry_key_headers_and_materialize_once() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "roundtrip");
    ensure_topics(&config).await.unwrap();
    let sink = KafkaSink::new(&config).unwrap();
    let (tenant, user) = (TenantId::new(), UserId::new());
    let events: Vec<_> = (0..30)
        .map(|n| event(tenant, (n % 3 != 0).then_some(user), n))
        .collect();
    // Event 1 was recorded inside a trace and relayed with its enqueue time.
    let tp = TraceParent::new_root();
    let enqueued = Timestamp::from_micros(1_700_000_000_123_456);
    let mut encoded = encode(&events);
    encoded[1].traceparent = Some(tp);
    encoded[1].enqueued_at = Some(enqueued);
    let published = sink.publish_acked(&encoded).await.unwrap();
    assert!(
        published
            .deliveries
            .iter()
            .all(|d| *d == Delivery::Published),
        "{published:?}"
    );
    let delivered = published.stored;
    assert_eq!(delivered.len(), events.len());
    // One subject, one partition: its events keep their order.
    let subject_partitions: std::collections::BTreeSet<i32> = delivered
        .iter()
        .zip(&events)
        .filter(|(_, e)| e.subject_user_id.is_some())
        .map(|(d, _)| d.partition)
        .collect();
    assert_eq!(subject_partitions.len(), 1, "{delivered:?}");

    let raw = raw_consumer(&config, &config.topic);
    let messages = tokio::task::spawn_blocking(move || read(&raw, 30))
        .await
        .unwrap();
    assert_eq!(messages.len(), 30);
    let first = messages
        .iter()
        .find(|m| header_map(m)["event_id"] == events[1].id.to_string())
        .expect("event 1 on the topic");
    let h = header_map(first);
    assert_eq!(h["event_type"], "auth.login_failed");
    assert_eq!(h["tenant_id"], tenant.to_string());
    assert_eq!(h["schema_version"], "1");
    assert_eq!(h["traceparent"], tp.to_string());
    assert_eq!(h["trace_id"], tp.trace_id());
    assert_eq!(h["enqueued_at_us"], "1700000000123456");
    let untraced = messages
        .iter()
        .find(|m| header_map(m)["event_id"] == events[2].id.to_string())
        .expect("event 2 on the topic");
    assert!(
        !header_map(untraced).contains_key("traceparent"),
        "an event recorded outside a trace carries no trace header"
    );
    assert_eq!(first.key(), Some(format!("{tenant}:{user}").as_bytes()));
    // The value is the envelope exactly as encoded (and as the outbox holds it).
    assert_eq!(
        first.payload(),
        Some(EncodedEvent::encode(&events[1]).payload.as_bytes())
    );

    // Materialize, then publish the same batch again: the log holds each event once.
    let audit = InMemoryStores::new(Arc::new(SystemClock)).audit_log();
    let running = start_consumer(&config, audit.clone()).await;
    assert!(
        running
            .handle
            .wait_for(&delivered, Duration::from_secs(30))
            .await
    );
    let again = sink.publish_acked(&encode(&events)).await.unwrap();
    assert!(
        running
            .handle
            .wait_for(&again.stored, Duration::from_secs(30))
            .await
    );
    let stats = running.stop().await;
    assert_eq!(stats.materialized, 30, "{stats:?}");
    assert_eq!(stats.duplicates, 30, "{stats:?}");
    for e in &events {
        assert_eq!(audit.get(tenant, e.id).await.unwrap().as_ref(), Some(e));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "dlq");
    ensure_topics(&config).await.unwrap();
    let raw: FutureProducer = config.producer_config().create().unwrap();
    let send = |payload: &'static [u8]| {
        raw.send(
            FutureRecord::<str, [u8]>::to(&config.topic)
                .key("k")
                .payload(payload),
            Duration::from_secs(5),
        )
    };
    send(b"not json").await.unwrap();
    send(br#"{"schema_version":7,"event":{}}"#).await.unwrap();
    let tenant = TenantId::new();
    let good = event(tenant, None, 1);
    let sink = KafkaSink::new(&config).unwrap();
    let delivered = sink
        .publish_acked(&encode(std::slice::from_ref(&good)))
        .await
        .unwrap()
        .stored;

    let audit = InMemoryStores::new(Arc::new(SystemClock)).audit_log();
    let running = start_consumer(&config, audit.clone()).await;
    assert!(
        running
            .handle
            .wait_for(&delivered, Duration::from_secs(30))
            .await
    );
    let stats = running.stop().await;
    assert_eq!(
        (stats.dead_lettered, stats.materialized),
        (2, 1),
        "{stats:?}"
    );
    assert_eq!(audit.get(tenant, good.id).await.unwrap(), Some(good));

    let dlq = raw_consumer(&config, &config.dlq_topic);
    let dead = tokio::task::spawn_blocking(move || read(&dlq, 2))
        .await
        .unwrap();
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| header_map(m)["dlq_reason"].clone())
        .collect();
    reasons.sort();
    assert!(
        reasons[0].starts_with("not an audit envelope"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("unsupported schema_version 7"),
        "{reasons:?}"
    );
    assert!(
        dead.iter()
            .all(|m| header_map(m)["dlq_source_topic"] == config.topic)
    );
    assert!(
        dead.iter()
            .any(|m| m.payload() == Some(b"not json".as_slice()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_ok_degraded_or_failed() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "health");
    let health = KafkaHealth::new(&config).unwrap();
    assert_eq!(health.name(), "kafka");
    match health.check().await {
        HealthStatus::Degraded(why) => {
            assert!(why.contains(&config.topic), "{why}");
        }
        other => panic!("topics missing must be degraded, got {other:?}"),
    }
    ensure_topics(&config).await.unwrap();
    assert_eq!(health.check().await, HealthStatus::Ok);

    // Nothing listens on this port: failed, within the configured bound.
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut down = config.clone();
    down.brokers = format!("127.0.0.1:{dead_port}");
    down.health_timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let status = KafkaHealth::new(&down).unwrap().check().await;
    assert!(matches!(status, HealthStatus::Failed(_)), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_the_publish_within_the_delivery_timeout() {
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = KafkaConfig::new(format!("127.0.0.1:{dead_port}"));
    config.delivery_timeout = Duration::from_millis(400);
    let sink = KafkaSink::new(&config).unwrap();
    let tenant = TenantId::new();
    let batch = encode(&[event(tenant, None, 0), event(tenant, None, 1)]);
    // The producer is rebuilt after REBUILD_AFTER_FAILURES failed publishes in a row, once.
    for attempt in 1..=KafkaSink::REBUILD_AFTER_FAILURES + 2 {
        let started = std::time::Instant::now();
        let err = sink.publish(&batch).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            err.to_string()
                .contains(": 2 of 2 audit events not acknowledged"),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let rebuilt = u64::from(attempt >= KafkaSink::REBUILD_AFTER_FAILURES);
        assert_eq!(sink.rebuilds(), rebuilt, "after {attempt} failures");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_too_large_is_rejected_and_holds_back_only_its_key() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "toolarge");
    ensure_topics(&config).await.unwrap();
    let sink = KafkaSink::new(&config).unwrap();
    assert_eq!(sink.delivery_timeout(), Some(config.delivery_timeout));
    let (tenant, a, b) = (TenantId::new(), UserId::new(), UserId::new());
    let events: Vec<_> = [a, a, b, a]
        .into_iter()
        .enumerate()
        .map(|(n, s)| event(tenant, Some(s), n as u32))
        .collect();
    let mut batch = encode(&events);
    // Over librdkafka's default message.max.bytes (1,000,000).
    batch[1].payload = "x".repeat(1_200_000);
    let published = sink.publish_acked(&batch).await.unwrap();
    assert!(
        matches!(&published.deliveries[1], Delivery::Rejected(why) if why.contains("kafka refused")),
        "{published:?}"
    );
    assert_eq!(
        (
            &published.deliveries[0],
            &published.deliveries[2],
            &published.deliveries[3]
        ),
        (&Delivery::Published, &Delivery::Published, &Delivery::Held),
        "before it and other keys go out; its key's later events wait"
    );
    assert_eq!(published.stored.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holds_at_most_max_messages_and_waits_no_longer_for_more() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "batch");
    ensure_topics(&config).await.unwrap();
    let tenant = TenantId::new();
    let events: Vec<AuditEvent> = (0..5).map(|n| event(tenant, None, n)).collect();
    let sink = KafkaSink::new(&config).unwrap();
    // One publish each: tansu's high watermark counts record batches' base offsets, so five
    // messages in one batch would read as a lag of 1 (Apache Kafka counts messages).
    for e in &events {
        sink.publish(&encode(std::slice::from_ref(e)))
            .await
            .unwrap();
    }
    let source = KafkaSource::new(&config).unwrap();
    let wait = Duration::from_secs(3);
    let first = source
        .next_batch(3, Duration::from_secs(30), wait)
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    // Each message says when it was produced; the lag counts the 2 not read yet.
    let now = SystemClock.now();
    for m in &first {
        let at = m.timestamp.expect("a broker timestamp");
        assert!(
            at <= now && at > now.saturating_sub(Duration::from_secs(120)),
            "{at:?}"
        );
    }
    let lag = |lags: Vec<credo_ports::PartitionLag>| lags.iter().map(|l| l.messages).sum::<u64>();
    assert_eq!(lag(source.lag().await.unwrap()), 2);
    let started = std::time::Instant::now();
    assert_eq!(
        source
            .next_batch(3, Duration::from_secs(30), wait)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(started.elapsed() < wait * 2, "{:?}", started.elapsed());
    assert_eq!(lag(source.lag().await.unwrap()), 0);
    // Read to the end: the next read comes back empty after its idle wait, not never (a
    // consumer of a quiet topic must still report that it is alive).
    let idle = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let empty = source.next_batch(3, idle, wait).await.unwrap();
    assert!(empty.is_empty(), "{empty:?}");
    let took = started.elapsed();
    assert!(
        took >= idle && took < idle + Duration::from_secs(2),
        "an empty read took {took:?}"
    );
}

/// A source that read nothing has nothing to commit: closing it succeeds without a commit
/// (librdkafka refuses an empty one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_source_that_read_nothing_commits_nothing() {
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "closeidle");
    KafkaSource::new(&config).unwrap().close().await.unwrap();
}

/// `ensure_topics` creates both topics with the seed's settings (`retention.ms` 7 days for
/// the audit topic, 30 days for dead letters, `min.insync.replicas`), as the broker reports
/// them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensured_topics_carry_their_retention_and_min_insync_replicas() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let Some(brokers) = brokers() else { return };
    let config = config(&brokers, "topicsettings");
    ensure_topics(&config).await.unwrap();
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (topic, retention) in [
        (&config.topic, "604800000"),
        (&config.dlq_topic, "2592000000"),
    ] {
        let described = admin
            .describe_configs(
                &[ResourceSpecifier::Topic(topic)],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .unwrap();
        let resource = described.into_iter().next().unwrap().unwrap();
        let value = |name: &str| {
            resource
                .get(name)
                .and_then(|entry| entry.value.clone())
                .unwrap_or_else(|| panic!("{topic}: no {name} in {:?}", resource.entries))
        };
        assert_eq!(value("retention.ms"), retention, "{topic}");
        assert_eq!(value("min.insync.replicas"), "1", "{topic}");
    }
}
