//! Kafka backend of credo-storage (rdkafka): the audit pipeline's transport.
//!
//! - [`KafkaSink`]: an [`EventSink`](credo_ports::EventSink) publishing encoded events
//!   unchanged to `credo.audit.events` (`acks=all`, idempotent producer; format in
//!   [`credo_ports::envelope`]); `credo_pipeline::OutboxRelay` drives it from any outbox.
//! - [`KafkaSource`]: the topic as an [`EventSource`](credo_ports::EventSource) for
//!   `credo_pipeline::AuditConsumer`, which materializes it into any
//!   [`AuditLog`](credo_ports::AuditLog) and commits offsets only after the write; messages
//!   that cannot be materialized go to `credo.audit.events.dlq`.
//! - [`KafkaHealth`]: the `kafka` readiness check.
//!
//! Every client setting is in [`KafkaConfig`]; the defaults suit Apache Kafka and Redpanda.
//!
//! ```no_run
//! # async fn wire(outbox: std::sync::Arc<dyn credo_ports::Outbox>, log: std::sync::Arc<dyn credo_ports::AuditLog>) -> credo_ports::StoreResult<()> {
//! use credo_adapters_kafka::{KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
//! use credo_pipeline::{AuditConsumer, ConsumerConfig, OutboxRelay, RelayConfig};
//! use std::sync::Arc;
//! let config = KafkaConfig::new("127.0.0.1:9092");
//! ensure_topics(&config).await?;
//! let relay = OutboxRelay::new(outbox, Arc::new(KafkaSink::new(&config)?), RelayConfig::default())?;
//! let consumer = AuditConsumer::new(Arc::new(KafkaSource::new(&config)?), log, ConsumerConfig::default())?;
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let relay_task = tokio::spawn({ let s = stopped.clone(); async move { relay.run(s).await } });
//! let consumer_task = tokio::spawn(consumer.run(stopped));
//! // ... on shutdown (dropping `stop` stops them too):
//! stop.send(true).ok();
//! let _ = (relay_task.await, consumer_task.await);
//! # Ok(()) }
//! ```

mod capabilities;
pub use capabilities::CAPABILITIES;
mod config;
mod context;
mod health;
mod sink;
mod source;

pub use config::{AUDIT_DLQ_TOPIC, AUDIT_TOPIC, KafkaConfig};
pub use credo_ports as ports;
pub use health::{KafkaHealth, ensure_topics};
pub use sink::{Delivered, KafkaSink, ProducerHealth, Published};
pub use source::{KafkaSource, SourceHandle, source_message};

use credo_ports::{Cause, StoreError};
use rdkafka::error::KafkaError;

/// Broker and transport errors are retryable; the text says what was being done.
pub(crate) fn kafka_err(doing: &str, e: KafkaError) -> StoreError {
    StoreError::Unavailable(Cause::with_source(format!("kafka: {doing}: {e}"), e))
}
