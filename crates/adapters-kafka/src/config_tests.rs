//! Unit tests of `KafkaConfig`: client settings, limits, topic settings, redaction.

use super::*;

#[test]
fn producer_is_idempotent_and_acks_all_unless_overridden() {
    let mut c = KafkaConfig::new("b:9092");
    let p = c.producer_config();
    assert_eq!(p.get("acks"), Some("all"));
    assert_eq!(p.get("enable.idempotence"), Some("true"));
    assert_eq!(p.get("message.timeout.ms"), Some("30000"));
    c.properties.insert("linger.ms".into(), "0".into());
    assert_eq!(c.producer_config().get("linger.ms"), Some("0"));
}

#[test]
fn consumer_never_commits_by_itself_and_keeps_client_default_timeouts() {
    let mut c = KafkaConfig::new("b:9092");
    let k = c.consumer_config();
    assert_eq!(k.get("enable.auto.commit"), Some("false"));
    assert_eq!(k.get("enable.auto.offset.store"), Some("false"));
    assert_eq!(k.get("session.timeout.ms"), None);
    c.session_timeout = Some(Duration::from_secs(6));
    assert_eq!(c.consumer_config().get("session.timeout.ms"), Some("6000"));
}

/// Every documented bound is accepted, one millisecond (or one unit) past it refused.
#[test]
fn limits_are_inclusive_at_their_documented_values() {
    let ok = KafkaConfig::new("b:9092");
    let ms = Duration::from_millis;
    type Set = fn(&mut KafkaConfig, Duration);
    let durations: [(&str, Set, Duration, Duration); 9] = [
        (
            "kafka.retention",
            |c, v| c.retention = Some(v),
            ms(1),
            ms(i64::MAX as u64),
        ),
        (
            "kafka.dlq_retention",
            |c, v| c.dlq_retention = Some(v),
            ms(1),
            ms(i64::MAX as u64),
        ),
        (
            "kafka.delivery_timeout",
            |c, v| c.delivery_timeout = v,
            ms(1),
            ms(i32::MAX as u64),
        ),
        (
            "kafka.linger",
            |c, v| c.linger = v,
            Duration::ZERO,
            ms(900_000),
        ),
        (
            "kafka.fetch_wait_max",
            |c, v| c.fetch_wait_max = v,
            ms(1),
            ms(300_000),
        ),
        (
            "kafka.health_timeout",
            |c, v| c.health_timeout = v,
            ms(1),
            ms(86_400_000),
        ),
        (
            "kafka.session_timeout",
            |c, v| c.session_timeout = Some(v),
            ms(1),
            ms(3_600_000),
        ),
        (
            "kafka.heartbeat_interval",
            |c, v| c.heartbeat_interval = Some(v),
            ms(1),
            ms(3_600_000),
        ),
        (
            "kafka.max_poll_interval",
            |c, v| c.max_poll_interval = Some(v),
            ms(1),
            ms(86_400_000),
        ),
    ];
    let refused = |c: &KafkaConfig, field: &str| matches!(c.validate(), Err(StoreError::InvalidInput { field: f, .. }) if f == field);
    for (field, set, min, max) in durations {
        for at in [min, max] {
            let mut c = ok.clone();
            set(&mut c, at);
            assert!(c.validate().is_ok(), "{field} = {at:?} must be accepted");
        }
        let mut c = ok.clone();
        set(&mut c, max + ms(1));
        assert!(refused(&c, field), "{field} past its maximum");
        if let Some(below) = min.checked_sub(Duration::from_micros(1)) {
            let mut c = ok.clone();
            set(&mut c, below);
            assert!(refused(&c, field), "{field} under its minimum");
        }
    }
    type SetN = fn(&mut KafkaConfig, i32);
    let counts: [(&str, SetN, i32); 2] = [
        ("kafka.partitions", |c, v| c.partitions = v, 1_000_000),
        ("kafka.replication", |c, v| c.replication = v, 1_000),
    ];
    for (field, set, max) in counts {
        for at in [1, max] {
            let mut c = ok.clone();
            c.min_insync_replicas = Some(1);
            set(&mut c, at);
            assert!(c.validate().is_ok(), "{field} = {at} must be accepted");
        }
        for past in [0, max + 1] {
            let mut c = ok.clone();
            c.min_insync_replicas = None;
            set(&mut c, past);
            assert!(refused(&c, field), "{field} = {past} must be refused");
        }
    }
    // min.insync.replicas: 1..=replication, or the broker's default.
    let field = "kafka.min_insync_replicas";
    for (replication, n, accepted) in [
        (3, Some(1), true),
        (3, Some(3), true),
        (3, None, true),
        (3, Some(4), false),
        (3, Some(0), false),
        (1, Some(2), false),
        (1, Some(1), true),
    ] {
        let mut c = ok.clone();
        c.replication = replication;
        c.min_insync_replicas = n;
        assert_eq!(c.validate().is_ok(), accepted, "{n:?} of {replication}");
        assert!(accepted || refused(&c, field), "{n:?} of {replication}");
    }
    assert!(KafkaConfig::new("b:1").single_node_dev().validate().is_ok());
}

/// The topic settings: the seed's retention for events, longer for dead letters, and
/// nothing for what is left to the broker.
#[test]
fn topic_settings_follow_the_config() {
    let mut c = KafkaConfig::new("b:9092");
    assert_eq!(
        c.topic_settings(&c.dlq_topic.clone()),
        [
            ("retention.ms", "2592000000".to_string()),
            ("min.insync.replicas", "2".to_string())
        ]
    );
    c.retention = None;
    c.min_insync_replicas = None;
    assert!(c.topic_settings(&c.topic.clone()).is_empty());
}

/// Logs show every setting.
#[test]
fn debug_shows_every_setting() {
    let dbg = format!("{:?}", KafkaConfig::new("b1:9092,b2:9092"));
    for part in [
        "brokers: \"b1:9092,b2:9092\"",
        "topic: \"credo.audit.events\"",
        "dlq_topic:",
        "client_id:",
        "delivery_timeout:",
        "linger:",
        "group_id:",
        "session_timeout:",
        "heartbeat_interval:",
        "max_poll_interval:",
        "fetch_wait_max:",
        "health_timeout:",
        "partitions:",
        "replication:",
        "retention:",
        "dlq_retention:",
        "min_insync_replicas:",
        "properties:",
    ] {
        assert!(dbg.contains(part), "{part} missing from {dbg}");
    }
}

#[test]
fn every_duration_and_size_is_validated_by_name() {
    let ok = KafkaConfig::new("b:9092");
    ok.validate().unwrap();
    let ms = Duration::from_millis;
    type Change = Box<dyn Fn(&mut KafkaConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "kafka.delivery_timeout",
            Box::new(|c| c.delivery_timeout = Duration::ZERO),
        ),
        (
            "kafka.delivery_timeout",
            Box::new(|c| c.delivery_timeout = Duration::from_micros(10)),
        ),
        (
            "kafka.delivery_timeout",
            Box::new(|c| c.delivery_timeout = Duration::MAX),
        ),
        ("kafka.linger", Box::new(move |c| c.linger = ms(900_001))),
        (
            "kafka.fetch_wait_max",
            Box::new(|c| c.fetch_wait_max = Duration::ZERO),
        ),
        (
            "kafka.health_timeout",
            Box::new(|c| c.health_timeout = Duration::ZERO),
        ),
        (
            "kafka.session_timeout",
            Box::new(|c| c.session_timeout = Some(Duration::ZERO)),
        ),
        (
            "kafka.heartbeat_interval",
            Box::new(|c| c.heartbeat_interval = Some(Duration::MAX)),
        ),
        (
            "kafka.max_poll_interval",
            Box::new(|c| c.max_poll_interval = Some(Duration::ZERO)),
        ),
        ("kafka.partitions", Box::new(|c| c.partitions = 0)),
        ("kafka.replication", Box::new(|c| c.replication = -1)),
    ];
    for (field, change) in cases {
        let mut c = ok.clone();
        change(&mut c);
        match c.validate() {
            Err(StoreError::InvalidInput { field: f, reason }) => {
                assert_eq!(f, field, "{reason}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut c = ok.clone();
    c.linger = Duration::ZERO;
    c.validate().unwrap();
}

#[test]
fn secret_properties_never_show_in_debug_nor_client_errors() {
    let mut c = KafkaConfig::new("b:9092");
    for (k, v) in [
        ("sasl.password", "S3cr-one"),
        ("ssl.key.password", "S3cr-two"),
        ("ssl.keystore.password", "S3cr-three"),
        ("sasl.oauthbearer.client.secret", "S3cr-four"),
        ("ssl.key.pem", "S3cr-five"),
        ("sasl.oauthbearer.config", "S3cr-six"),
        ("sasl.jaas.config", "S3cr-seven"),
    ] {
        c.properties.insert(k.into(), v.into());
    }
    c.properties
        .insert("security.protocol".into(), "SASL_SSL".into());
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("S3cr"), "{dbg}");
    assert!(dbg.contains("SASL_SSL"), "{dbg}");
    // librdkafka echoes the value it rejects.
    let e = rdkafka::error::KafkaError::ClientCreation(
        "Invalid value \"S3cr-six\" for configuration property \"sasl.oauthbearer.config\"".into(),
    );
    let shown = c.client_error(e).to_string();
    assert!(!shown.contains("S3cr"), "{shown}");
    // Only secrets are scrubbed: a value the operator must see to fix it stays.
    let e = rdkafka::error::KafkaError::ClientCreation(
        "Invalid value \"SASL_SSL\" for configuration property \"security.protocol\"".into(),
    );
    let shown = c.client_error(e).to_string();
    assert!(shown.contains("\"SASL_SSL\""), "{shown}");
}

#[test]
fn bad_settings_are_named() {
    let mut c = KafkaConfig::new(" ");
    assert!(matches!(
        c.check(),
        Err(credo_ports::StoreError::InvalidInput {
            field: "kafka.brokers",
            ..
        })
    ));
    c.brokers = "b:1".into();
    for (topic, dlq) in [("", "dlq"), ("t", "")] {
        c.topic = topic.into();
        c.dlq_topic = dlq.into();
        assert!(matches!(
            c.check(),
            Err(credo_ports::StoreError::InvalidInput {
                field: "kafka.topic",
                ..
            })
        ));
    }
    c.topic = "t".into();
    c.dlq_topic = c.topic.clone();
    assert!(matches!(
        c.check(),
        Err(credo_ports::StoreError::InvalidInput {
            field: "kafka.dlq_topic",
            ..
        })
    ));
}

/// The build has OpenSSL: TLS and SCRAM properties are taken (before the `ssl` feature,
/// librdkafka refused them: "OpenSSL not available at build time"); clients connect lazily,
/// so nothing needs a broker here.
#[tokio::test]
async fn tls_and_scram_properties_are_accepted_by_every_client() {
    for (protocol, mechanism) in [
        ("SSL", None),
        ("SASL_SSL", Some("SCRAM-SHA-512")),
        ("SASL_SSL", Some("SCRAM-SHA-256")),
        ("SASL_SSL", Some("PLAIN")),
    ] {
        let mut c = KafkaConfig::new("b:9093");
        c.properties
            .insert("security.protocol".into(), protocol.into());
        if let Some(m) = mechanism {
            c.properties.insert("sasl.mechanism".into(), m.into());
            c.properties.insert("sasl.username".into(), "credo".into());
            c.properties.insert("sasl.password".into(), "pw".into());
        }
        let what = format!("{protocol} {mechanism:?}");
        crate::KafkaSink::new(&c).unwrap_or_else(|e| panic!("{what}: sink: {e}"));
        crate::KafkaSource::new(&c).unwrap_or_else(|e| panic!("{what}: source: {e}"));
        crate::KafkaHealth::new(&c).unwrap_or_else(|e| panic!("{what}: health: {e}"));
    }
}
