//! [`KafkaSink`]: the [`EventSink`] that publishes to the audit topic.

use crate::{KafkaConfig, envelope, kafka_err};
use async_trait::async_trait;
use credo_ports::{AuditEvent, EventSink, StoreError, StoreResult};
use futures_util::future::join_all;
use parking_lot::RwLock;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Where the broker stored one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delivered {
    /// Partition of the audit topic.
    pub partition: i32,
    /// Offset in that partition.
    pub offset: i64,
}

/// Publishes audit events to the topic (format in [`crate::envelope`]) with `acks=all` and an
/// idempotent producer; `publish` returns only once the broker acknowledged every message.
///
/// A producer that reports a fatal error (an idempotent producer whose broker lost its state,
/// for one) is replaced by a new one, as is a producer that failed
/// [`KafkaSink::REBUILD_AFTER_FAILURES`] publishes in a row, so the sink recovers by itself
/// once the broker does.
pub struct KafkaSink {
    config: KafkaConfig,
    producer: RwLock<Arc<FutureProducer>>,
    failures_in_a_row: AtomicU32,
    rebuilds: AtomicU64,
}

impl KafkaSink {
    /// Failed publishes in a row after which the producer is rebuilt.
    pub const REBUILD_AFTER_FAILURES: u32 = 3;

    /// A sink for `config` (connects lazily; `InvalidInput` names a bad setting).
    pub fn new(config: &KafkaConfig) -> StoreResult<Self> {
        config.check()?;
        Ok(Self {
            producer: RwLock::new(Arc::new(Self::producer(config)?)),
            config: config.clone(),
            failures_in_a_row: AtomicU32::new(0),
            rebuilds: AtomicU64::new(0),
        })
    }

    fn producer(config: &KafkaConfig) -> StoreResult<FutureProducer> {
        config
            .producer_config()
            .create()
            .map_err(|e| StoreError::invalid("kafka.properties", e.to_string()))
    }

    /// How many times the producer was replaced.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(Ordering::Relaxed)
    }

    /// Publishes `batch` in order and returns where each message was stored.
    pub async fn publish_acked(&self, batch: &[AuditEvent]) -> StoreResult<Vec<Delivered>> {
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

    fn rebuild(&self, failed: &Arc<FutureProducer>) {
        let mut slot = self.producer.write();
        // Another publish may have rebuilt it already.
        if Arc::ptr_eq(&slot, failed)
            && let Ok(fresh) = Self::producer(&self.config)
        {
            *slot = Arc::new(fresh);
            self.failures_in_a_row.store(0, Ordering::Relaxed);
            self.rebuilds.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(credo_ports::telemetry::PRODUCER_REBUILDS).increment(1);
        }
    }

    async fn send_all(
        &self,
        producer: &FutureProducer,
        batch: &[AuditEvent],
    ) -> StoreResult<Vec<Delivered>> {
        // Enqueue strictly in batch order (librdkafka keeps the order per partition), then
        // await every acknowledgement.
        let mut pending = Vec::with_capacity(batch.len());
        for event in batch {
            let (key, value) = (envelope::key(event), envelope::encode(event));
            let mut headers = OwnedHeaders::new_with_capacity(4);
            for (name, v) in envelope::headers(event) {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(v.as_str()),
                });
            }
            let mut record = FutureRecord::to(&self.config.topic)
                .key(&key)
                .payload(&value)
                .headers(headers);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(kafka_err("enqueueing an audit event", e)),
                }
            }
        }
        let total = pending.len();
        let mut delivered = Vec::with_capacity(total);
        let mut failed = 0;
        let mut first_error = None;
        for outcome in join_all(pending).await {
            match outcome {
                Ok(Ok(d)) => delivered.push(Delivered {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| e.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| "producer dropped".into());
                }
            }
        }
        match first_error {
            None => Ok(delivered),
            Some(e) => Err(StoreError::Unavailable(format!(
                "kafka: {failed} of {total} audit events not acknowledged by topic {}: {e}",
                self.config.topic
            ))),
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
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()> {
        self.publish_acked(batch).await.map(|_| ())
    }
}
