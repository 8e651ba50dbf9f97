//! [`KafkaSource`]: the audit topic as an [`EventSource`] for the audit consumer
//! (`credo_pipeline::AuditConsumer`), with its dead-letter topic and offset commits.

use crate::context::BrokerErrors;
use crate::{Delivered, KafkaConfig, kafka_err};
use async_trait::async_trait;
use credo_ports::{EventSource, PartitionLag, SourceMessage, StoreError, StoreResult, Timestamp};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Reports offset commits the broker refused (commits are asynchronous; their outcome arrives
/// here) as the `CONSUMER_COMMIT_FAILURES` counter and a warning, and broker errors (a refused
/// TLS handshake, say) as [`BrokerErrors`] does.
#[derive(Default)]
pub(crate) struct SourceContext(BrokerErrors);

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.0.note(&error, reason);
    }
}

impl ConsumerContext for SourceContext {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            metrics::counter!(credo_ports::telemetry::CONSUMER_COMMIT_FAILURES).increment(1);
            tracing::warn!(error = %e, "kafka source: offset commit failed");
        }
    }
}

type Reader = StreamConsumer<SourceContext>;

/// Watches a [`KafkaSource`]: its partition assignment, and how far it has committed.
#[derive(Clone)]
pub struct SourceHandle {
    consumer: Arc<Reader>,
    /// Per partition, the offset after the last message committed (written or set aside).
    progress: watch::Receiver<BTreeMap<i32, i64>>,
}

impl SourceHandle {
    /// Whether the group has assigned partitions to this consumer (only while it polls).
    #[must_use]
    pub fn is_assigned(&self) -> bool {
        self.consumer
            .assignment()
            .map(|a| a.count() > 0)
            .unwrap_or(false)
    }

    /// Waits up to `timeout` for a partition assignment. Closing a consumer before its first
    /// assignment confuses some brokers' group state, and messages published before the
    /// assignment are still read (offsets start at the earliest).
    #[must_use = "false means no partition was assigned in time"]
    pub async fn wait_assigned(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_assigned() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits up to `timeout` until every message in `delivered` has been handled and committed
    /// (written to the log or set aside); returns whether it was.
    #[must_use = "false means the messages were not all committed in time"]
    pub async fn wait_for(&self, delivered: &[Delivered], timeout: Duration) -> bool {
        let mut need: BTreeMap<i32, i64> = BTreeMap::new();
        for d in delivered {
            let next = need.entry(d.partition).or_insert(0);
            *next = (*next).max(d.offset + 1);
        }
        let mut progress = self.progress.clone();
        let done = |p: &BTreeMap<i32, i64>| {
            need.iter()
                .all(|(part, off)| p.get(part).is_some_and(|have| have >= off))
        };
        tokio::time::timeout(timeout, progress.wait_for(|p| done(p)))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Reads `config.topic` in group `config.group_id`; offsets are committed (asynchronously, and
/// synchronously once more on close) only when the audit consumer says a batch is handled. Messages set aside go to `config.dlq_topic` with their key,
/// their headers and `dlq_reason`, `dlq_source_topic`, `dlq_source_partition`,
/// `dlq_source_offset`. It joins the group when first polled.
pub struct KafkaSource {
    config: KafkaConfig,
    consumer: Arc<Reader>,
    dlq: FutureProducer<BrokerErrors>,
    /// The last broker error of the consumer and the dead-letter producer (one slot: the same
    /// brokers, the same settings), added to this source's failures.
    errors: BrokerErrors,
    progress: watch::Sender<BTreeMap<i32, i64>>,
}

/// A message read by any rdkafka client as a [`SourceMessage`], detached from the client:
/// key, headers, payload and the broker's timestamp, copied. For operator tools that read the
/// audit or dead-letter topic with clients of their own.
pub fn source_message<M: Message>(m: &M) -> SourceMessage {
    SourceMessage {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
        payload: m.payload().map(<[u8]>::to_vec),
        timestamp: m
            .timestamp()
            .to_millis()
            .map(|ms| Timestamp::from_micros(ms.saturating_mul(1000))),
    }
}

impl KafkaSource {
    /// A source for `config` (`InvalidInput` names a bad setting).
    pub fn new(config: &KafkaConfig) -> StoreResult<Self> {
        config.check()?;
        let errors = BrokerErrors::new(config.secrets());
        let consumer: Reader = config
            .consumer_config()
            .create_with_context(SourceContext(errors.clone()))
            .map_err(|e| config.client_error(e))?;
        consumer
            .subscribe(&[config.topic.as_str()])
            .map_err(|e| kafka_err("subscribing to the audit topic", e))?;
        let dlq: FutureProducer<BrokerErrors> = config
            .producer_config()
            .create_with_context(errors.clone())
            .map_err(|e| config.client_error(e))?;
        Ok(Self {
            config: config.clone(),
            consumer: Arc::new(consumer),
            dlq,
            errors,
            progress: watch::Sender::new(BTreeMap::new()),
        })
    }

    /// A handle to watch this source while a consumer runs it.
    pub fn handle(&self) -> SourceHandle {
        SourceHandle {
            consumer: self.consumer.clone(),
            progress: self.progress.subscribe(),
        }
    }
}

#[async_trait]
impl EventSource for KafkaSource {
    async fn next_batch(
        &self,
        max: usize,
        idle: Duration,
        wait: Duration,
    ) -> StoreResult<Vec<SourceMessage>> {
        // `recv` is cancel-safe: a message not handed out stays queued.
        let Ok(first) = tokio::time::timeout(idle, self.consumer.recv()).await else {
            return Ok(Vec::new());
        };
        let first = first.map_err(|e| self.errors.unavailable("reading the audit topic", e))?;
        let mut batch = vec![source_message(&first)];
        drop(first);
        let deadline = Instant::now() + wait;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(source_message(&m)),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(batch)
    }

    async fn dead_letter(&self, m: &SourceMessage, reason: &str) -> StoreResult<()> {
        let (partition, offset) = (m.partition.to_string(), m.offset.to_string());
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len() + 4);
        for (key, value) in &m.headers {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        for (key, value) in [
            ("dlq_reason", reason),
            ("dlq_source_topic", self.config.topic.as_str()),
            ("dlq_source_partition", partition.as_str()),
            ("dlq_source_offset", offset.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.config.dlq_topic).headers(headers);
        if let Some(k) = &m.key {
            record = record.key(k);
        }
        if let Some(p) = &m.payload {
            record = record.payload(p);
        }
        self.dlq
            .send(record, self.config.delivery_timeout)
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                self.errors
                    .unavailable("publishing to the dead-letter topic", e)
            })
    }

    async fn commit(&self, batch: &[SourceMessage]) -> StoreResult<()> {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in batch {
            let n = next.entry(m.partition).or_insert(0);
            *n = (*n).max(m.offset + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &next {
            // Valid partition and offset by construction.
            let _ = tpl.add_partition_offset(&self.config.topic, p, Offset::Offset(o));
        }
        // Queued, not awaited: the loop goes on while the broker records it (librdkafka keeps
        // commits in order); a refusal arrives in `SourceContext`.
        let queued = self.consumer.commit(&tpl, CommitMode::Async);
        self.progress.send_modify(|p| {
            for (part, off) in next {
                let have = p.entry(part).or_insert(0);
                *have = (*have).max(off);
            }
        });
        queued.map_err(|e| self.errors.unavailable("committing offsets", e))
    }

    /// Per assigned partition, the high watermark minus the consumer's position (the next
    /// message it will read; what it has handled when it has no position yet).
    async fn lag(&self) -> StoreResult<Vec<PartitionLag>> {
        let consumer = self.consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.health_timeout;
        let handled = self.progress.borrow().clone();
        let read = tokio::task::spawn_blocking(move || -> KafkaResult<Vec<PartitionLag>> {
            let assigned = consumer.assignment()?;
            let positions = consumer.position()?;
            let mut out = Vec::new();
            for e in assigned.elements_for_topic(&topic) {
                let p = e.partition();
                let (low, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
                let at = positions
                    .find_partition(&topic, p)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .or_else(|| handled.get(&p).copied())
                    .unwrap_or(low);
                out.push(PartitionLag {
                    partition: p,
                    messages: high.saturating_sub(at).max(0) as u64,
                });
            }
            Ok(out)
        })
        .await;
        match read {
            Ok(r) => r.map_err(|e| self.errors.unavailable("reading the consumer lag", e)),
            Err(e) => Err(StoreError::Unavailable(credo_ports::Cause::with_source(
                format!("kafka: reading the consumer lag: {e}"),
                e,
            ))),
        }
    }

    async fn close(&self) -> StoreResult<()> {
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in self.progress.borrow().iter() {
            let _ = tpl.add_partition_offset(&self.config.topic, p, Offset::Offset(o));
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let consumer = self.consumer.clone();
        match tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.errors.unavailable("committing offsets on close", e)),
            Err(e) => Err(StoreError::Unavailable(credo_ports::Cause::with_source(
                format!("kafka: committing offsets on close: {e}"),
                e,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    /// Only refused commits are counted.
    #[test]
    fn refused_commits_are_counted() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let c = SourceContext::default();
            let none = TopicPartitionList::new();
            c.commit_callback(Ok(()), &none);
            let refused = KafkaError::ConsumerCommit(RDKafkaErrorCode::RebalanceInProgress);
            c.commit_callback(Err(refused.clone()), &none);
            c.commit_callback(Err(refused), &none);
        });
        let counted: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| {
                key.key().name() == credo_ports::telemetry::CONSUMER_COMMIT_FAILURES
            })
            .map(|(.., value)| value)
            .collect();
        assert_eq!(counted, vec![DebugValue::Counter(2)]);
    }
}
