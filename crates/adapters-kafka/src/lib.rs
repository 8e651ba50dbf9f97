//! Kafka backend of credo-storage (rdkafka): the audit pipeline's transport.
//!
//! - [`KafkaSink`]: an [`EventSink`](credo_ports::EventSink) publishing to
//!   `credo.audit.events` (`acks=all`, idempotent producer; format in [`envelope`]); the
//!   generic [`OutboxRelay`](credo_ports::relay::OutboxRelay) drives it from any outbox.
//! - [`AuditConsumer`]: materializes the topic into any
//!   [`AuditStore`](credo_ports::AuditStore) with `append_batch`, committing offsets only after
//!   the write; bad messages go to `credo.audit.events.dlq`.
//! - [`KafkaHealth`]: the `kafka` readiness check.
//!
//! Every client setting is in [`KafkaConfig`]; the defaults suit Apache Kafka and Redpanda.
//!
//! ```no_run
//! # async fn wire(outbox: std::sync::Arc<dyn credo_ports::Outbox>, audit: std::sync::Arc<dyn credo_ports::AuditStore>) -> credo_ports::StoreResult<()> {
//! use credo_adapters_kafka::{AuditConsumer, KafkaConfig, KafkaSink, ensure_topics};
//! use credo_ports::relay::{OutboxRelay, RelayConfig};
//! use std::sync::Arc;
//! let config = KafkaConfig::new("127.0.0.1:9092");
//! ensure_topics(&config).await?;
//! let relay = OutboxRelay::new(outbox, Arc::new(KafkaSink::new(&config)?), RelayConfig::default())?;
//! let consumer = AuditConsumer::new(&config, audit)?;
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let relay_task = tokio::spawn({ let s = stopped.clone(); async move { relay.run(s).await } });
//! let consumer_task = tokio::spawn(consumer.run(stopped));
//! // ... on shutdown:
//! stop.send(true).ok();
//! let _ = (relay_task.await, consumer_task.await);
//! # Ok(()) }
//! ```

mod config;
mod consumer;
pub mod envelope;
mod health;
mod sink;

pub use config::{AUDIT_DLQ_TOPIC, AUDIT_TOPIC, KafkaConfig};
pub use consumer::{AuditConsumer, ConsumerHandle, ConsumerStats};
pub use credo_ports as ports;
pub use health::{KafkaHealth, ensure_topics};
pub use sink::{Delivered, KafkaSink};

use credo_ports::StoreError;
use rdkafka::error::KafkaError;

/// Broker and transport errors are retryable; the text says what was being done.
pub(crate) fn kafka_err(doing: &str, e: KafkaError) -> StoreError {
    StoreError::Unavailable(format!("kafka: {doing}: {e}"))
}
