//! Every client setting of the adapter. Nothing is hard-coded for one broker: the defaults suit
//! Apache Kafka and Redpanda, and test brokers get their short group timeouts from here.

use credo_ports::redact;
use credo_ports::{SecretString, StoreError, StoreResult};
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
#[non_exhaustive]
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
    ///
    /// Every value is held as a [`SecretString`], secret-named or not: whether a name holds a
    /// secret is decided by the redactor, so no value can be printed by `{:?}` of the map
    /// (or of a value) whatever it is filed under. `insert(k.into(), "v".into())` still works;
    /// [`redacted_properties`](Self::redacted_properties) shows the values that are not
    /// secret.
    pub properties: BTreeMap<String, SecretString>,
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
        // Where the property values are handed to the driver.
        for (k, v) in &self.properties {
            c.set(k, v.expose_secret());
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
            .map(|(k, v)| (k.as_str(), redact::redact_property(k, v.expose_secret())))
            .collect()
    }

    /// The values of secret properties, scrubbed from client errors.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .properties
            .iter()
            .filter(|(k, v)| redact::is_secret_name(k) && !v.expose_secret().is_empty())
            .map(|(_, v)| v.expose_secret().to_owned())
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
#[path = "config_tests.rs"]
mod tests;
