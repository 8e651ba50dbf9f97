//! Every client setting of the adapter. Nothing is hard-coded for one broker: the defaults suit
//! Apache Kafka and Redpanda, and test brokers get their short group timeouts from here.

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
    /// Any further librdkafka property (`security.protocol`, `ssl.*`, `sasl.*`, ...), set on
    /// every client after the settings above, so it can override them. Values of keys holding
    /// `password` or `secret` are redacted in `Debug`.
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
    pub fn single_node_dev(mut self) -> Self {
        self.session_timeout = Some(Duration::from_secs(6));
        self.heartbeat_interval = Some(Duration::from_secs(1));
        self.max_poll_interval = Some(Duration::from_secs(7));
        self.fetch_wait_max = Duration::from_millis(10);
        self.partitions = 3;
        self.replication = 1;
        self
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

    pub(crate) fn check(&self) -> credo_ports::StoreResult<()> {
        use credo_ports::StoreError;
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
        Ok(())
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let secret = ["password", "secret", "token"]
                    .iter()
                    .any(|s| k.to_ascii_lowercase().contains(s));
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
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
