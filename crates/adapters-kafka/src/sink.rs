//! [`KafkaSink`]: the [`EventSink`] that publishes to the audit topic.

use crate::context::BrokerErrors;
use crate::{KafkaConfig, kafka_err};
use async_trait::async_trait;
use credo_ports::{Delivery, EncodedEvent, EventSink, StoreError, StoreResult};
use futures_util::future::join_all;
use parking_lot::RwLock;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The sink's producer: its context keeps the brokers' last error.
type SinkProducer = FutureProducer<BrokerErrors>;

/// Where the broker stored one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delivered {
    /// Partition of the audit topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
}

/// The outcome of [`KafkaSink::publish_acked`]: one [`Delivery`] per message, and where the
/// published ones were stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Per message, in batch order.
    pub deliveries: Vec<Delivery>,
    /// Positions of the `Published` messages.
    pub stored: Vec<Delivered>,
}

/// Errors that no retry of the same message can fix: the message itself is refused.
fn refuses_the_message(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::BadMessage
        )
    )
}

/// What to do with a message whose enqueue failed.
#[derive(Debug)]
enum Step {
    /// The producer's queue is full: offer the same message again shortly.
    Retry,
    /// Refused for good (why).
    Refused(String),
    /// The publish fails.
    Fail(StoreError),
}

impl Step {
    fn after_enqueue_error(e: KafkaError) -> Step {
        match e {
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => Step::Retry,
            e if refuses_the_message(&e) => Step::Refused(format!("kafka refused it: {e}")),
            e => Step::Fail(kafka_err("enqueueing an audit event", e)),
        }
    }
}

/// What became of one enqueued message.
#[derive(Debug, PartialEq, Eq)]
enum Ack {
    /// Acknowledged, stored there.
    Stored(Delivered),
    /// Refused for good (why).
    Refused(String),
    /// Not acknowledged (why): the publish fails.
    Failed(String),
}

impl Ack {
    /// From a delivery report (`None`: the producer went away before reporting).
    fn of(report: Option<Result<rdkafka::producer::future_producer::Delivery, KafkaError>>) -> Ack {
        match report {
            Some(Ok(d)) => Ack::Stored(Delivered {
                partition: d.partition,
                offset: d.offset,
            }),
            Some(Err(e)) if refuses_the_message(&e) => {
                Ack::Refused(format!("kafka refused it: {e}"))
            }
            Some(Err(e)) => Ack::Failed(e.to_string()),
            None => Ack::Failed("producer dropped".to_string()),
        }
    }
}

/// Publishes encoded audit events to the topic as they are (format in
/// [`credo_ports::envelope`]: the payload is the message value, key and headers come from the
/// routing fields), with `acks=all` and an idempotent producer; `publish` returns only once the
/// broker acknowledged every message it reports `Published`.
///
/// A message the broker or client refuses for good (too large, invalid) is `Rejected`, and the
/// later messages of its key in the batch are `Held`. A producer that reports a fatal error (an
/// idempotent producer whose broker lost its state, for one) is replaced by a new one, as is a
/// producer that failed [`KafkaSink::REBUILD_AFTER_FAILURES`] publishes in a row, so the sink
/// recovers by itself once the broker does.
pub struct KafkaSink {
    config: KafkaConfig,
    producer: RwLock<Arc<SinkProducer>>,
    /// Shared by every producer the sink builds, so a rebuilt one keeps the last reason.
    errors: BrokerErrors,
    failures_in_a_row: AtomicU32,
    rebuilds: AtomicU64,
}

impl KafkaSink {
    /// Failed publishes in a row after which the producer is rebuilt.
    pub const REBUILD_AFTER_FAILURES: u32 = 3;

    /// A sink for `config` (connects lazily; `InvalidInput` names a bad setting).
    pub fn new(config: &KafkaConfig) -> StoreResult<Self> {
        config.check()?;
        let errors = BrokerErrors::new(config.secrets());
        Ok(Self {
            producer: RwLock::new(Arc::new(Self::producer(config, &errors)?)),
            errors,
            config: config.clone(),
            failures_in_a_row: AtomicU32::new(0),
            rebuilds: AtomicU64::new(0),
        })
    }

    fn producer(config: &KafkaConfig, errors: &BrokerErrors) -> StoreResult<SinkProducer> {
        config
            .producer_config()
            .create_with_context(errors.clone())
            .map_err(|e| config.client_error(e))
    }

    /// How many times the producer was replaced.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// The code of the fatal error the current producer is in, if it is in one (it is
    /// replaced at the next failed publish). The client's message is left out: it can name
    /// brokers.
    pub fn fatal_error(&self) -> Option<RDKafkaErrorCode> {
        self.producer
            .read()
            .client()
            .fatal_error()
            .map(|(code, _)| code)
    }

    /// Publishes `batch` in order and says what became of each message and where the
    /// published ones were stored.
    pub async fn publish_acked(&self, batch: &[EncodedEvent]) -> StoreResult<Published> {
        let producer = self.producer.read().clone();
        let result = self.send_all(&producer, batch).await;
        match &result {
            Ok(_) => self.failures_in_a_row.store(0, Ordering::Relaxed),
            Err(_) => {
                let n = self.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
                let fatal = producer.client().fatal_error();
                if fatal.is_some() || n >= Self::REBUILD_AFTER_FAILURES {
                    tracing::warn!(?fatal, failures = n, "kafka sink: rebuilding the producer");
                    self.rebuild(&producer);
                }
            }
        }
        result
    }

    fn rebuild(&self, failed: &Arc<SinkProducer>) {
        let mut slot = self.producer.write();
        // Another publish may have rebuilt it already.
        if Arc::ptr_eq(&slot, failed)
            && let Ok(fresh) = Self::producer(&self.config, &self.errors)
        {
            *slot = Arc::new(fresh);
            self.failures_in_a_row.store(0, Ordering::Relaxed);
            self.rebuilds.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(credo_ports::telemetry::PRODUCER_REBUILDS).increment(1);
        }
    }

    async fn send_all(
        &self,
        producer: &SinkProducer,
        batch: &[EncodedEvent],
    ) -> StoreResult<Published> {
        // Enqueue strictly in batch order (librdkafka keeps the order per partition), then
        // await every acknowledgement.
        let mut deliveries = vec![Delivery::Published; batch.len()];
        let mut stopped = HashSet::new();
        let mut pending = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            if stopped.contains(&m.order_key()) {
                deliveries[i] = Delivery::Held;
                continue;
            }
            let key = m.key();
            let mut headers = OwnedHeaders::new_with_capacity(4);
            for (name, v) in m.headers() {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(v.as_str()),
                });
            }
            let mut record = FutureRecord::to(&self.config.topic)
                .key(&key)
                .payload(m.payload.as_bytes())
                .headers(headers);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((i, delivery));
                        break;
                    }
                    Err((e, back)) => match Step::after_enqueue_error(e) {
                        Step::Retry => {
                            record = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Step::Refused(why) => {
                            deliveries[i] = Delivery::Rejected(why);
                            stopped.insert(m.order_key());
                            break;
                        }
                        Step::Fail(e) => {
                            metrics::counter!(credo_ports::telemetry::KAFKA_PRODUCE_ERRORS)
                                .increment(1);
                            return Err(e);
                        }
                    },
                }
            }
        }
        let total = pending.len();
        let (indices, futures): (Vec<usize>, Vec<_>) = pending.into_iter().unzip();
        let mut stored = Vec::with_capacity(total);
        let mut failed = 0usize;
        let mut first_error = None;
        for (i, outcome) in indices.into_iter().zip(join_all(futures).await) {
            let outcome = outcome.ok().map(|r| r.map_err(|(e, _)| e));
            match Ack::of(outcome) {
                Ack::Stored(at) => stored.push(at),
                Ack::Refused(why) => deliveries[i] = Delivery::Rejected(why),
                Ack::Failed(why) => {
                    failed += 1;
                    first_error.get_or_insert(why);
                }
            }
        }
        if failed > 0 {
            metrics::counter!(credo_ports::telemetry::KAFKA_PRODUCE_ERRORS)
                .increment(failed as u64);
        }
        match first_error {
            None => Ok(Published { deliveries, stored }),
            Some(e) => Err(StoreError::Unavailable(
                self.errors
                    .explain(format!(
                        "kafka: {failed} of {total} audit events not acknowledged by topic {}: {e}",
                        self.config.topic
                    ))
                    .into(),
            )),
        }
    }

    /// Waits up to `timeout` for messages still queued in the producer.
    pub fn flush(&self, timeout: Duration) -> StoreResult<()> {
        self.producer
            .read()
            .flush(timeout)
            .map_err(|e| kafka_err("flushing the producer", e))
    }
}

#[async_trait]
impl EventSink for KafkaSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        self.publish_acked(batch).await.map(|p| p.deliveries)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        Some(self.config.delivery_timeout)
    }
}

/// Readiness of a [`KafkaSink`]'s producer (check `kafka_producer`): failed while the producer
/// is in a fatal state, which no retry of it can leave (an idempotent producer whose broker
/// lost its state, for one); ok again once a publish has replaced it.
pub struct ProducerHealth(Arc<KafkaSink>);

impl ProducerHealth {
    /// The check of `sink`'s producer.
    pub fn new(sink: Arc<KafkaSink>) -> Self {
        Self(sink)
    }
}

#[async_trait]
impl credo_ports::HealthCheck for ProducerHealth {
    fn name(&self) -> &str {
        "kafka_producer"
    }

    async fn check(&self) -> credo_ports::HealthStatus {
        match self.0.fatal_error() {
            None => credo_ports::HealthStatus::Ok,
            Some(code) => credo_ports::HealthStatus::Failed(format!(
                "the producer is in a fatal state ({code:?}); the next publish replaces it"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::producer::future_producer::Delivery as Report;

    const REFUSALS: [RDKafkaErrorCode; 4] = [
        RDKafkaErrorCode::MessageSizeTooLarge,
        RDKafkaErrorCode::InvalidMessageSize,
        RDKafkaErrorCode::InvalidRecord,
        RDKafkaErrorCode::BadMessage,
    ];
    /// Errors a later attempt may overcome: the publish fails and the relay retries.
    const PASSING: [RDKafkaErrorCode; 4] = [
        RDKafkaErrorCode::MessageTimedOut,
        RDKafkaErrorCode::UnknownTopicOrPartition,
        RDKafkaErrorCode::NotEnoughReplicas,
        RDKafkaErrorCode::Fatal,
    ];

    /// librdkafka's own hook for this: fatal errors cannot be provoked from outside.
    #[allow(unsafe_code)]
    fn inject_fatal(producer: &SinkProducer) {
        use rdkafka::bindings::{rd_kafka_resp_err_t as Code, rd_kafka_test_fatal_error};
        // SAFETY: a live client handle and a NUL-terminated reason that outlives the call.
        let code = unsafe {
            rd_kafka_test_fatal_error(
                producer.client().native_ptr(),
                Code::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"injected by a test".as_ptr(),
            )
        };
        assert_eq!(code, Code::RD_KAFKA_RESP_ERR_NO_ERROR);
    }

    #[tokio::test]
    async fn a_fatal_producer_fails_readiness_until_it_is_replaced() {
        use credo_ports::{HealthCheck, HealthStatus};
        let sink = Arc::new(KafkaSink::new(&KafkaConfig::new("127.0.0.1:9")).unwrap());
        let check = ProducerHealth::new(sink.clone());
        assert_eq!(check.check().await, HealthStatus::Ok);
        let producer = sink.producer.read().clone();
        inject_fatal(&producer);
        let HealthStatus::Failed(why) = check.check().await else {
            panic!("a fatal producer must fail readiness")
        };
        assert!(why.contains("fatal"), "{why}");
        assert!(
            !why.contains("injected"),
            "the client's message stays out: {why}"
        );
        sink.rebuild(&producer);
        assert_eq!(sink.rebuilds(), 1);
        assert_eq!(check.check().await, HealthStatus::Ok);
    }

    #[test]
    fn a_full_queue_is_retried_a_refusal_is_rejected_anything_else_fails_the_publish() {
        let step = |code| Step::after_enqueue_error(KafkaError::MessageProduction(code));
        assert!(matches!(step(RDKafkaErrorCode::QueueFull), Step::Retry));
        for code in REFUSALS {
            match step(code) {
                Step::Refused(why) => assert!(why.starts_with("kafka refused it: "), "{why}"),
                other => panic!("{code:?}: {other:?}"),
            }
        }
        for code in PASSING {
            match step(code) {
                Step::Fail(StoreError::Unavailable(why)) => {
                    assert!(why.contains("enqueueing an audit event"), "{why}")
                }
                other => panic!("{code:?}: {other:?}"),
            }
        }
        // Not a production error at all (a closed client, say): fails too.
        assert!(matches!(
            Step::after_enqueue_error(KafkaError::Canceled),
            Step::Fail(_)
        ));
    }

    #[test]
    fn a_report_is_stored_refused_or_failed() {
        let stored = Report {
            partition: 2,
            offset: 41,
            timestamp: Timestamp::NotAvailable,
        };
        assert_eq!(
            Ack::of(Some(Ok(stored))),
            Ack::Stored(Delivered {
                partition: 2,
                offset: 41
            })
        );
        let ack = |code| Ack::of(Some(Err(KafkaError::MessageProduction(code))));
        for code in REFUSALS {
            assert!(matches!(ack(code), Ack::Refused(_)), "{code:?}");
        }
        for code in PASSING {
            assert!(matches!(ack(code), Ack::Failed(_)), "{code:?}");
        }
        assert_eq!(Ack::of(None), Ack::Failed("producer dropped".into()));
    }
}
