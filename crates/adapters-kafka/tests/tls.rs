//! Kafka over TLS, exercised: the adapter's clients (topic set-up, health, sink) and a raw
//! consumer reach a broker only through a TLS listener (`credo_testkit::TlsTansu`, a TLS front
//! before tansu that is also the address the broker advertises) with the librdkafka properties
//! an operator sets for Apache Kafka or Redpanda (`security.protocol=SSL`, `ssl.ca.location`,
//! `ssl.certificate.location`, `ssl.key.location`), and a wrong host name, an untrusted CA or a
//! missing client certificate is refused with an `Unavailable` error that names the TLS failure.

use credo_adapters_kafka::{KafkaConfig, KafkaHealth, KafkaSink, KafkaSource, ensure_topics};
use credo_ports::{
    AuditCategory, AuditEvent, EncodedEvent, EventSource, HealthCheck, HealthStatus, SourceMessage,
    StoreError, TenantId, Timestamp,
};
use credo_testkit::{ClientAuth, TempPki, TestPki, TlsTansu, tls::SERVER_NAME};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::path::Path;
use std::time::Duration;

/// The properties of a TLS listener: what an operator sets for Apache Kafka or Redpanda.
fn config(brokers: &str, ca: &Path) -> KafkaConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut c = KafkaConfig::new(brokers).single_node_dev();
    c.topic = format!("credo.tls.{id}");
    c.dlq_topic = format!("{}.dlq", c.topic);
    c.group_id = format!("credo-tls-{id}");
    c.delivery_timeout = Duration::from_millis(1500);
    c.health_timeout = Duration::from_secs(3);
    for (k, v) in [
        ("security.protocol", "ssl"),
        ("ssl.ca.location", ca.to_str().unwrap()),
        // `localhost` resolves to ::1 first; the front listens on 127.0.0.1 only.
        ("broker.address.family", "v4"),
    ] {
        c.properties.insert(k.into(), v.into());
    }
    c
}

fn with_client_cert(mut c: KafkaConfig, pki: &TestPki) -> KafkaConfig {
    c.properties.insert(
        "ssl.certificate.location".into(),
        pki.client_cert.to_str().unwrap().into(),
    );
    c.properties.insert(
        "ssl.key.location".into(),
        pki.client_key.to_str().unwrap().into(),
    );
    c
}

fn event(n: u32) -> EncodedEvent {
    let mut e = AuditEvent::new(
        TenantId::new(),
        Timestamp::from_micros(1_800_000_000_000_000 + i64::from(n)),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.metadata.insert("n".into(), n.into());
    EncodedEvent::encode(&e)
}

/// Topics, health, a publish acknowledged by the broker and the same bytes read back.
async fn round_trip(config: &KafkaConfig) {
    ensure_topics(config).await.unwrap();
    let health = KafkaHealth::new(config).unwrap();
    assert_eq!(health.check().await, HealthStatus::Ok);
    let sink = KafkaSink::new(config).unwrap();
    let encoded = event(1);
    let published = sink
        .publish_acked(std::slice::from_ref(&encoded))
        .await
        .unwrap();
    let stored = published.stored[0];
    let consumer: BaseConsumer = config.consumer_config().create().unwrap();
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(
        &config.topic,
        stored.partition,
        Offset::Offset(stored.offset),
    )
    .unwrap();
    consumer.assign(&at).unwrap();
    let payload = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                return m.unwrap().payload().map(<[u8]>::to_vec);
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(payload.as_deref(), Some(encoded.payload.as_bytes()));
}

/// A failure that must be a refusal: `Unavailable`, and its text names the TLS failure.
fn assert_refused(err: StoreError, expect: &[&str]) -> String {
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(text.contains("the last broker error (TLS)"), "{text}");
    for e in expect {
        assert!(text.contains(e), "{e:?} not in: {text}");
    }
    text
}

/// A publish, a dead letter of the audit consumer's source and the health check that must be
/// refused; returns the publish's error text.
async fn refused(config: &KafkaConfig, expect: &[&str]) -> String {
    let sink = KafkaSink::new(config).unwrap();
    let text = assert_refused(sink.publish_acked(&[event(2)]).await.unwrap_err(), expect);
    let source = KafkaSource::new(config).unwrap();
    let undecodable = SourceMessage {
        partition: 0,
        offset: 7,
        key: None,
        headers: Vec::new(),
        payload: Some(b"not an envelope".to_vec()),
        timestamp: None,
    };
    let dead = source.dead_letter(&undecodable, "undecodable").await;
    assert_refused(dead.unwrap_err(), expect);
    let health = KafkaHealth::new(config).unwrap();
    assert!(
        matches!(health.check().await, HealthStatus::Failed(_)),
        "health"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_ca_by_configuration_carries_the_pipeline_and_refuses_what_it_must() {
    let pki = TempPki::new("credo-kafka-tls", "credo-kafka-client");
    let pki = &pki.pki;
    let Some(broker) = TlsTansu::start(pki, ClientAuth::No).await else {
        return;
    };
    round_trip(&config(&broker.brokers(SERVER_NAME), &pki.ca_cert)).await;

    let wrong_host = refused(
        &config(&broker.brokers("127.0.0.1"), &pki.ca_cert),
        &[
            "SSL routines::certificate verify failed",
            "state SSL_HANDSHAKE",
        ],
    )
    .await;
    println!("wrong host name -> {wrong_host}");
    let untrusted = refused(
        &config(&broker.brokers(SERVER_NAME), &pki.other_ca_cert),
        &[
            "SSL routines::certificate verify failed",
            "state SSL_HANDSHAKE",
        ],
    )
    .await;
    println!("untrusted CA -> {untrusted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TempPki::new("credo-kafka-mtls", "credo-kafka-client");
    let pki = &pki.pki;
    let Some(broker) = TlsTansu::start(pki, ClientAuth::Required).await else {
        return;
    };
    let plain = config(&broker.brokers(SERVER_NAME), &pki.ca_cert);
    round_trip(&with_client_cert(plain.clone(), pki)).await;
    let without = refused(&plain, &["SSL routines", "alert certificate required"]).await;
    println!("no client certificate -> {without}");
}
