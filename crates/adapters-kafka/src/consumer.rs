//! [`AuditConsumer`]: reads the audit topic and materializes it with `append_batch`,
//! committing offsets only after the write.

use crate::{Delivered, KafkaConfig, envelope, kafka_err};
use credo_ports::telemetry;
use credo_ports::{AuditEvent, AuditStore, StoreError, StoreResult};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Counters of a consumer since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages read from the topic.
    pub consumed: u64,
    /// Events written to the audit log now.
    pub materialized: u64,
    /// Events skipped because the log already held their id (redeliveries).
    pub duplicates: u64,
    /// Messages sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Writes that failed and were retried.
    pub write_retries: u64,
    /// Offset commits that failed (the next commit covers them; redeliveries are absorbed).
    pub commit_failures: u64,
}

#[derive(Default)]
struct Counters {
    consumed: AtomicU64,
    materialized: AtomicU64,
    duplicates: AtomicU64,
    dead_lettered: AtomicU64,
    write_retries: AtomicU64,
    commit_failures: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ConsumerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConsumerStats {
            consumed: get(&self.consumed),
            materialized: get(&self.materialized),
            duplicates: get(&self.duplicates),
            dead_lettered: get(&self.dead_lettered),
            write_retries: get(&self.write_retries),
            commit_failures: get(&self.commit_failures),
        }
    }
}

/// Watches a running [`AuditConsumer`]: counters, assignment, and how far it has materialized.
#[derive(Clone)]
pub struct ConsumerHandle {
    consumer: Arc<StreamConsumer>,
    counters: Arc<Counters>,
    /// Per partition, the offset after the last message handled (written or dead-lettered).
    progress: watch::Receiver<BTreeMap<i32, i64>>,
}

impl ConsumerHandle {
    /// Counters so far.
    pub fn stats(&self) -> ConsumerStats {
        self.counters.snapshot()
    }

    /// Whether the group has assigned partitions to this consumer (only while it runs).
    pub fn is_assigned(&self) -> bool {
        self.consumer
            .assignment()
            .map(|a| a.count() > 0)
            .unwrap_or(false)
    }

    /// Waits up to `timeout` for a partition assignment. Closing a consumer before its first
    /// assignment confuses some brokers' group state, and messages published before the
    /// assignment are still read (offsets start at the earliest).
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

    /// Waits up to `timeout` until every message in `delivered` has been handled (written to
    /// the log or dead-lettered); returns whether it was.
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

/// Consumes the audit topic into an [`AuditStore`].
///
/// Each batch (up to `consumer_batch` messages, or what arrived within `consumer_batch_wait`)
/// is written with one `append_batch`, which skips event ids already present; only then are
/// the batch's offsets committed. A crash between the two means a redelivery, which the write
/// absorbs. A message that cannot be materialized (not JSON, unknown schema version, invalid
/// event) goes to the dead-letter topic with a `dlq_reason` header and does not stop the
/// stream. A failing write is retried with backoff, never skipped.
pub struct AuditConsumer {
    config: KafkaConfig,
    consumer: Arc<StreamConsumer>,
    dlq: FutureProducer,
    audit: Arc<dyn AuditStore>,
    counters: Arc<Counters>,
    progress: watch::Sender<BTreeMap<i32, i64>>,
}

impl AuditConsumer {
    /// A consumer of `config.topic` in group `config.group_id`, writing into `audit`. It joins
    /// the group when [`run`](Self::run) starts polling.
    pub fn new(config: &KafkaConfig, audit: Arc<dyn AuditStore>) -> StoreResult<Self> {
        config.check()?;
        let consumer: StreamConsumer = config
            .consumer_config()
            .create()
            .map_err(|e| StoreError::invalid("kafka.properties", e.to_string()))?;
        consumer
            .subscribe(&[config.topic.as_str()])
            .map_err(|e| kafka_err("subscribing to the audit topic", e))?;
        let dlq: FutureProducer = config
            .producer_config()
            .create()
            .map_err(|e| StoreError::invalid("kafka.properties", e.to_string()))?;
        Ok(Self {
            config: config.clone(),
            consumer: Arc::new(consumer),
            dlq,
            audit,
            counters: Arc::default(),
            progress: watch::Sender::new(BTreeMap::new()),
        })
    }

    /// A handle to watch this consumer while it runs.
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle {
            consumer: self.consumer.clone(),
            counters: self.counters.clone(),
            progress: self.progress.subscribe(),
        }
    }

    /// Consumes until `shutdown` turns true. A batch in hand is written, dead-lettered and
    /// committed before stopping, unless its write is still failing at that moment: then it is
    /// left uncommitted and will be redelivered.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> ConsumerStats {
        let mut errors_in_a_row = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let first = tokio::select! {
                // A dropped sender counts as shutdown.
                r = shutdown.changed() => if r.is_err() { break } else { continue },
                m = self.consumer.recv() => m.map(|m| m.detach()),
            };
            let first = match first {
                Ok(m) => {
                    errors_in_a_row = 0;
                    m
                }
                Err(e) => {
                    // Transport errors are reported here while librdkafka reconnects by itself.
                    errors_in_a_row += 1;
                    tracing::warn!(error = %e, "audit consumer: receive failed");
                    self.pause(errors_in_a_row, &mut shutdown).await;
                    continue;
                }
            };
            let batch = self.fill(first).await;
            if !self.handle_batch(batch, &mut shutdown).await {
                break;
            }
        }
        self.counters.snapshot()
    }

    async fn fill(&self, first: OwnedMessage) -> Vec<OwnedMessage> {
        let mut batch = vec![first];
        let deadline = Instant::now() + self.config.consumer_batch_wait;
        while batch.len() < self.config.consumer_batch {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(m)) => batch.push(m.detach()),
                Ok(Err(_)) | Err(_) => break,
            }
        }
        batch
    }

    /// Writes, dead-letters and commits one batch; `false` when shutdown interrupted it.
    async fn handle_batch(
        &self,
        batch: Vec<OwnedMessage>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        self.counters
            .consumed
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        metrics::counter!(telemetry::CONSUMER_CONSUMED).increment(batch.len() as u64);
        let mut good: Vec<(usize, AuditEvent)> = Vec::with_capacity(batch.len());
        let mut dead: Vec<(usize, String)> = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match envelope::decode(m.payload()) {
                Ok(e) => good.push((i, e)),
                Err(reason) => dead.push((i, reason)),
            }
        }
        let events: Vec<AuditEvent> = good.iter().map(|(_, e)| e.clone()).collect();
        match self.append(events, shutdown).await {
            None => return false,
            Some(Ok(())) => {}
            Some(Err(_)) => {
                // Not retryable as a batch: write event by event so only the bad ones go to
                // the dead-letter topic.
                for (i, e) in good {
                    match self.append(vec![e], shutdown).await {
                        None => return false,
                        Some(Ok(())) => {}
                        Some(Err(why)) => {
                            dead.push((i, format!("rejected by the audit store: {why}")))
                        }
                    }
                }
            }
        }
        for (i, reason) in dead {
            if !self.dead_letter(&batch[i], &reason, shutdown).await {
                return false;
            }
        }
        self.commit(&batch).await;
        true
    }

    /// `None`: shutdown while retrying. `Some(Err)`: a non-retryable error.
    async fn append(
        &self,
        events: Vec<AuditEvent>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Result<(), StoreError>> {
        if events.is_empty() {
            return Some(Ok(()));
        }
        let mut failures = 0;
        loop {
            match self.audit.append_batch(events.clone()).await {
                Ok(outcome) => {
                    self.counters
                        .materialized
                        .fetch_add(outcome.inserted, Ordering::Relaxed);
                    self.counters
                        .duplicates
                        .fetch_add(outcome.duplicates, Ordering::Relaxed);
                    metrics::counter!(telemetry::CONSUMER_MATERIALIZED).increment(outcome.inserted);
                    metrics::counter!(telemetry::CONSUMER_DUPLICATES).increment(outcome.duplicates);
                    return Some(Ok(()));
                }
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    self.counters.write_retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(telemetry::CONSUMER_WRITE_RETRIES).increment(1);
                    tracing::warn!(error = %e, failures, "audit consumer: write failed, retrying");
                    if !self.pause(failures, shutdown).await {
                        return None;
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Publishes `m` to the dead-letter topic with the reason, retrying until acknowledged;
    /// `false` when shutdown came first.
    async fn dead_letter(
        &self,
        m: &OwnedMessage,
        reason: &str,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tracing::warn!(
            partition = m.partition(),
            offset = m.offset(),
            reason,
            "audit consumer: dead-lettering a message"
        );
        let (partition, offset) = (m.partition().to_string(), m.offset().to_string());
        let mut failures = 0;
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(h) = m.headers() {
                for h in h.iter() {
                    headers = headers.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
            for (key, value) in [
                ("dlq_reason", reason),
                ("dlq_source_topic", m.topic()),
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
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            if let Some(p) = m.payload() {
                record = record.payload(p);
            }
            match self.dlq.send(record, self.config.delivery_timeout).await {
                Ok(_) => {
                    self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!(telemetry::CONSUMER_DEAD_LETTERED).increment(1);
                    return true;
                }
                Err((e, _)) => {
                    failures += 1;
                    tracing::warn!(error = %e, "audit consumer: dead-letter publish failed");
                    if !self.pause(failures, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    async fn commit(&self, batch: &[OwnedMessage]) {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for m in batch {
            let n = next.entry(m.partition()).or_insert(0);
            *n = (*n).max(m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for (&p, &o) in &next {
            // Valid partition and offset by construction.
            let _ = tpl.add_partition_offset(&self.config.topic, p, Offset::Offset(o));
        }
        let consumer = self.consumer.clone();
        let committed =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await;
        if !matches!(committed, Ok(Ok(()))) {
            self.counters
                .commit_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(?committed, "audit consumer: offset commit failed");
        }
        self.progress.send_modify(|p| {
            for (part, off) in next {
                let have = p.entry(part).or_insert(0);
                *have = (*have).max(off);
            }
        });
    }

    /// Backs off before retry `n`; `false` when shutdown came first.
    async fn pause(&self, n: u32, shutdown: &mut watch::Receiver<bool>) -> bool {
        let base = self
            .config
            .retry_backoff_min
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.config.retry_backoff_max);
        tokio::select! {
            _ = tokio::time::sleep(base) => !*shutdown.borrow(),
            _ = shutdown.changed() => false,
        }
    }
}
