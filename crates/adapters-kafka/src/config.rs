//! Every client setting of the adapter. Nothing is hard-coded for one broker: the defaults suit
//! Apache Kafka and Redpanda, and test brokers get their short group timeouts from here.

use credo_ports::redact;
use credo_ports::{StoreError, StoreResult};
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The audit topic of DESIGN §6.
pub const AUDIT_TOPIC: &str = "credo.audit.events";
/// Where the consumer sends messages it cannot materialize.
pub const AUDIT_DLQ_TOPIC: &str = "credo.audit.events.dlq";

/// Settings of the sink, the source, the health check and topic creation.
///
/// ```
/// use credo_adapters_kafka::KafkaConfig;
/// use std::time::Duration;
/// let mut config = KafkaConfig::new("broker-1:9092,broker-2:9092");
/// config.group_id = "audit-materializer".into();
/// // Any librdkafka property, e.g. security:
/// config.properties.insert("security.protocol".into(), "SASL_SSL".into());
/// config.properties.insert("sasl.password".into(), "s3cret".into());
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Topic events are published to and consumed from (default `credo.audit.events`).
    pub topic: String,
    /// Dead-letter topic for messages that cannot be materialized (default
    /// `credo.audit.events.dlq`).
    pub dlq_topic: String,
    /// `client.id` (default `credo-storage`).
    pub client_id: String,
    /// `message.timeout.ms`: how long a publish may take before it fails (default 30 s). The
    /// relay then releases the batch and retries it later; its lease must be longer.
    pub delivery_timeout: Duration,
    /// `linger.ms`: how long the producer waits to fill a batch (default 5 ms).
    pub linger: Duration,
    /// `group.id` of the audit consumer (default `credo-audit-materializer`).
    pub group_id: String,
    /// `session.timeout.ms`; `None` keeps the client default (45 s). Test brokers that join
    /// groups slowly want 6 s.
    pub session_timeout: Option<Duration>,
    /// `heartbeat.interval.ms`; `None` keeps the client default (3 s).
    pub heartbeat_interval: Option<Duration>,
    /// `max.poll.interval.ms`; `None` keeps the client default (300 s).
    pub max_poll_interval: Option<Duration>,
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch open (default 100 ms); bounds
    /// the consumer's latency when traffic is low.
    pub fetch_wait_max: Duration,
    /// Bound of one health check's metadata request (default 2 s).
    pub health_timeout: Duration,
    /// Partitions of topics created by [`crate::ensure_topics`] (default 6).
    pub partitions: i32,
    /// Replication factor of topics created by [`crate::ensure_topics`] (default 3; 1 for a
    /// single-broker development setup).
    pub replication: i32,
    /// `retention.ms` of the audit topic created by [`crate::ensure_topics`] (default 7 days,
    /// the seed's; `None` keeps the broker's default). It is also how far back the audit log
    /// can be rebuilt from the topic.
    pub retention: Option<Duration>,
    /// `retention.ms` of the dead-letter topic created by [`crate::ensure_topics`] (default 30
    /// days, time for an operator to look; `None` keeps the broker's default).
    pub dlq_retention: Option<Duration>,
    /// `min.insync.replicas` of the topics created by [`crate::ensure_topics`] (default 2, with
    /// the producer's `acks=all` a write survives one broker's loss; at most `replication`;
    /// `None` keeps the broker's default).
    pub min_insync_replicas: Option<i32>,
    /// Any further librdkafka property (`security.protocol`, `ssl.*`, `sasl.*`, ...), set on
    /// every client after the settings above, so it can override them. Values of properties
    /// whose names hold a secret (`sasl.password`, `ssl.key.password`, `ssl.key.pem`,
    /// `sasl.oauthbearer.client.secret`, `sasl.oauthbearer.config`, `sasl.jaas.config`, ...:
    /// [`credo_ports::redact::is_secret_name`]) are redacted in `Debug` and scrubbed from
    /// client errors.
    pub properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults for `brokers`.
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: AUDIT_TOPIC.into(),
            dlq_topic: AUDIT_DLQ_TOPIC.into(),
            client_id: "credo-storage".into(),
            delivery_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(5),
            group_id: "credo-audit-materializer".into(),
            session_timeout: None,
            heartbeat_interval: None,
            max_poll_interval: None,
            fetch_wait_max: Duration::from_millis(100),
            health_timeout: Duration::from_secs(2),
            partitions: 6,
            replication: 3,
            retention: Some(Duration::from_secs(7 * 86_400)),
            dlq_retention: Some(Duration::from_secs(30 * 86_400)),
            min_insync_replicas: Some(2),
            properties: BTreeMap::new(),
        }
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        c
    }

    fn finish(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// Settings for a single-node development or test broker that is slow to join consumer
    /// groups, such as tansu: group session 6 s (the least Apache Kafka accepts by default),
    /// heartbeat 1 s, max poll interval 7 s, fetch wait 10 ms (tansu holds every fetch for the
    /// whole wait even when data arrives), new topics with 3 partitions and replication 1.
    /// Production brokers need none of this; the defaults of [`KafkaConfig::new`] are theirs.
    ///
    /// ```
    /// let c = credo_adapters_kafka::KafkaConfig::new("127.0.0.1:9092").single_node_dev();
    /// assert_eq!(c.replication, 1);
    /// ```
    #[must_use = "returns a new value and leaves this one unchanged"]
    pub fn single_node_dev(mut self) -> Self {
        self.session_timeout = Some(Duration::from_secs(6));
        self.heartbeat_interval = Some(Duration::from_secs(1));
        self.max_poll_interval = Some(Duration::from_secs(7));
        self.fetch_wait_max = Duration::from_millis(10);
        self.partitions = 3;
        self.replication = 1;
        self.min_insync_replicas = Some(1);
        self
    }

    /// The topic-level settings [`crate::ensure_topics`] gives `topic` (the audit or the
    /// dead-letter topic), for operators who create topics themselves to copy.
    ///
    /// ```
    /// let c = credo_adapters_kafka::KafkaConfig::new("b:9092");
    /// assert_eq!(
    ///     c.topic_settings(&c.topic),
    ///     [("retention.ms", "604800000".to_string()), ("min.insync.replicas", "2".to_string())]
    /// );
    /// ```
    pub fn topic_settings(&self, topic: &str) -> Vec<(&'static str, String)> {
        let retention = if topic == self.dlq_topic {
            self.dlq_retention
        } else {
            self.retention
        };
        let mut settings = Vec::new();
        if let Some(r) = retention {
            settings.push(("retention.ms", ms(r)));
        }
        if let Some(n) = self.min_insync_replicas {
            settings.push(("min.insync.replicas", n.to_string()));
        }
        settings
    }

    /// The producer's settings: `acks=all`, idempotence on.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", ms(self.delivery_timeout))
            .set("linger.ms", ms(self.linger));
        self.finish(c)
    }

    /// The consumer's settings: offsets are stored and committed by the consumer itself, only
    /// after the write, never automatically.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .set("fetch.wait.max.ms", ms(self.fetch_wait_max));
        for (key, value) in [
            ("session.timeout.ms", self.session_timeout),
            ("heartbeat.interval.ms", self.heartbeat_interval),
            ("max.poll.interval.ms", self.max_poll_interval),
        ] {
            if let Some(v) = value {
                c.set(key, ms(v));
            }
        }
        self.finish(c)
    }

    /// Settings of the metadata-only client of the health check and of topic creation.
    pub fn admin_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("allow.auto.create.topics", "false");
        self.finish(c)
    }

    /// The properties as they may be shown: secret values replaced by `***`.
    #[must_use]
    pub fn redacted_properties(&self) -> BTreeMap<&str, &str> {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), redact::redact_property(k, v)))
            .collect()
    }

    /// The values of secret properties, scrubbed from client errors.
    fn secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .properties
            .iter()
            .filter(|(k, v)| redact::is_secret_name(k) && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse(s.len()));
        found
    }

    /// A client the properties could not create: `InvalidInput` on `kafka.properties`, its
    /// text scrubbed of every secret property value (librdkafka echoes values it rejects).
    pub(crate) fn client_error(&self, e: rdkafka::error::KafkaError) -> StoreError {
        StoreError::invalid(
            "kafka.properties",
            redact::scrub(&e.to_string(), &self.secrets()),
        )
    }

    /// Checks every setting before a client is built; the error names the setting
    /// (`kafka.brokers`, `kafka.topic`, `kafka.dlq_topic`, `kafka.delivery_timeout`,
    /// `kafka.linger`, `kafka.session_timeout`, `kafka.heartbeat_interval`,
    /// `kafka.max_poll_interval`, `kafka.fetch_wait_max`, `kafka.health_timeout`,
    /// `kafka.partitions`, `kafka.replication`). Each duration must lie in the range
    /// librdkafka accepts for its property, and timeouts are at least 1 ms (librdkafka reads
    /// `message.timeout.ms = 0` as "no timeout", and a sub-millisecond value rounds to 0).
    pub fn validate(&self) -> StoreResult<()> {
        self.check()
    }

    pub(crate) fn check(&self) -> StoreResult<()> {
        if self.brokers.trim().is_empty() {
            return Err(StoreError::invalid(
                "kafka.brokers",
                "must name at least one broker",
            ));
        }
        if self.topic.is_empty() || self.dlq_topic.is_empty() {
            return Err(StoreError::invalid(
                "kafka.topic",
                "topic names must not be empty",
            ));
        }
        if self.topic == self.dlq_topic {
            return Err(StoreError::invalid(
                "kafka.dlq_topic",
                "must differ from kafka.topic",
            ));
        }
        let ms = Duration::from_millis;
        let mut durations = vec![
            // message.timeout.ms: 0 is infinite
            (
                "kafka.delivery_timeout",
                self.delivery_timeout,
                ms(1),
                ms(i32::MAX as u64),
            ),
            // linger.ms: 0 is a valid "send at once"
            ("kafka.linger", self.linger, Duration::ZERO, ms(900_000)),
            (
                "kafka.fetch_wait_max",
                self.fetch_wait_max,
                ms(1),
                ms(300_000),
            ),
            (
                "kafka.health_timeout",
                self.health_timeout,
                ms(1),
                ms(86_400_000),
            ),
        ];
        for (name, value, max) in [
            ("kafka.session_timeout", self.session_timeout, ms(3_600_000)),
            (
                "kafka.heartbeat_interval",
                self.heartbeat_interval,
                ms(3_600_000),
            ),
            (
                "kafka.max_poll_interval",
                self.max_poll_interval,
                ms(86_400_000),
            ),
        ] {
            if let Some(v) = value {
                durations.push((name, v, ms(1), max));
            }
        }
        for (name, value) in [
            ("kafka.retention", self.retention),
            ("kafka.dlq_retention", self.dlq_retention),
        ] {
            if let Some(v) = value {
                durations.push((name, v, ms(1), ms(i64::MAX as u64)));
            }
        }
        for (name, value, min, max) in durations {
            if value < min || value > max {
                return Err(StoreError::invalid(
                    name,
                    format!(
                        "{value:?}: must be {}..={} ms{}",
                        min.as_millis(),
                        max.as_millis(),
                        if min.is_zero() {
                            ""
                        } else {
                            " (0 would mean no timeout)"
                        }
                    ),
                ));
            }
        }
        for (name, value, max) in [
            ("kafka.partitions", self.partitions, 1_000_000),
            ("kafka.replication", self.replication, 1_000),
        ] {
            if !(1..=max).contains(&value) {
                return Err(StoreError::invalid(
                    name,
                    format!("{value}: must be 1..={max}"),
                ));
            }
        }
        // More in-sync replicas than replicas: no `acks=all` write could ever succeed.
        if let Some(n) = self.min_insync_replicas
            && !(1..=self.replication).contains(&n)
        {
            return Err(StoreError::invalid(
                "kafka.min_insync_replicas",
                format!("{n}: must be 1..={} (kafka.replication)", self.replication),
            ));
        }
        Ok(())
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties = self.redacted_properties();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dlq_topic", &self.dlq_topic)
            .field("client_id", &self.client_id)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("linger", &self.linger)
            .field("group_id", &self.group_id)
            .field("session_timeout", &self.session_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("max_poll_interval", &self.max_poll_interval)
            .field("fetch_wait_max", &self.fetch_wait_max)
            .field("health_timeout", &self.health_timeout)
            .field("partitions", &self.partitions)
            .field("replication", &self.replication)
            .field("retention", &self.retention)
            .field("dlq_retention", &self.dlq_retention)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .field("properties", &properties)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
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
            "Invalid value \"S3cr-six\" for configuration property \"sasl.oauthbearer.config\""
                .into(),
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
}
