//! Audit log rebuild drill (DR: "the audit log can be rebuilt from the Kafka topic within its
//! retention"): events recorded through the ports go through the outbox and the topic into
//! the log; the log table is emptied; a consumer in a new group, reading the topic from its
//! earliest offset, materializes it again; the log read back equals what it was (ids and
//! content). Runs on the servers of `cargo xtask services`.

use credo_adapters_kafka::{KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
use credo_adapters_postgres::{PgConfig, PgStores};
use credo_pipeline::{AuditConsumer, ConsumerConfig, OutboxRelay, RelayConfig};
use credo_ports::{
    AuditCategory, AuditEvent, AuditLog, AuditQuery, PageRequest, SystemClock, TenantId, UserId,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every event of `tenants` in the log, in the log's order.
async fn read_log(log: &Arc<dyn AuditLog>, tenants: &[TenantId]) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for &t in tenants {
        let mut page = PageRequest::first(1000);
        loop {
            let p = log.query(t, AuditQuery::default(), page).await.unwrap();
            out.extend(p.items);
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

/// Runs a consumer of `config`'s group into `log` until it holds `n` events of `tenants`;
/// returns how long that took.
async fn materialize(
    config: &KafkaConfig,
    log: Arc<dyn AuditLog>,
    tenants: &[TenantId],
    n: u64,
) -> Duration {
    let started = Instant::now();
    let source = KafkaSource::new(config).unwrap();
    let consumer =
        AuditConsumer::new(Arc::new(source), log.clone(), ConsumerConfig::default()).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(consumer.run(stopped));
    let deadline = Instant::now() + Duration::from_secs(180);
    while count(&log, tenants).await < n {
        assert!(Instant::now() < deadline, "not materialized within 180 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the consumer stops")
        .unwrap();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_rebuilt_from_the_topic_equal_to_what_it_was() {
    let (Some(pg), Some(brokers)) = (
        credo_testkit::required("CREDO_TEST_POSTGRES_URL"),
        credo_testkit::required("CREDO_TEST_KAFKA_BROKERS"),
    ) else {
        return;
    };
    let schema = credo_testkit::unique_name("credo_rebuild");
    let mut pg_config = PgConfig::new(&pg);
    pg_config.schema = Some(schema.clone());
    let stores = PgStores::connect(&pg_config, Arc::new(SystemClock))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    let name = credo_testkit::unique_name("credo.rebuild");
    let mut kafka = KafkaConfig::new(&brokers).single_node_dev();
    kafka.topic = name.clone();
    kafka.dlq_topic = format!("{name}.dlq");
    kafka.group_id = name.clone();
    ensure_topics(&kafka).await.unwrap();

    let n: u64 = 2_000;
    let tenants = [TenantId::new(), TenantId::new()];
    let subjects: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    for i in 0..n as usize {
        let mut e = AuditEvent::new(
            tenants[i % 2],
            credo_ports::Clock::now(&SystemClock),
            AuditCategory::Security,
            "auth.login",
        );
        e.subject_user_id = Some(subjects[i % subjects.len()]);
        e.metadata.insert("n".into(), (i as u64).into());
        stores.audit().record(e).await.unwrap();
    }
    let relay = OutboxRelay::new(
        stores.outbox(),
        Arc::new(KafkaSink::new(&kafka).unwrap()),
        RelayConfig::default(),
    )
    .unwrap();
    assert_eq!(relay.drain().await.unwrap(), n);
    let log = stores.audit_log();
    let first = materialize(&kafka, log.clone(), &tenants, n).await;
    let before = read_log(&log, &tenants).await;
    assert_eq!(before.len() as u64, n);

    // The loss: the table emptied (a bad restore, a mistaken DELETE).
    sqlx::query("DELETE FROM audit_events")
        .execute(stores.pool())
        .await
        .unwrap();
    assert_eq!(count(&log, &tenants).await, 0);

    // The rebuild: a new group starts at the earliest offset the topic still holds.
    let mut replay = kafka.clone();
    replay.group_id = format!("{name}.rebuild");
    let rebuilt_in = materialize(&replay, log.clone(), &tenants, n).await;
    let after = read_log(&log, &tenants).await;
    println!(
        "audit rebuild drill: {n} events through outbox and topic in {first:.2?}; log emptied; \
         rebuilt from the topic's earliest offset by a new group in {rebuilt_in:.2?} \
         ({:.0} events/s, group join included); log equal (ids and content): {}",
        n as f64 / rebuilt_in.as_secs_f64(),
        after == before
    );
    assert_eq!(after.len(), before.len());
    assert!(after == before, "the rebuilt log differs from the one lost");
    stores.drop_schema().await.unwrap();
}
