//! The audit consumer: read a batch, decode each message once, write the log, set aside what
//! cannot be materialized, commit.

use crate::{Backoff, is_stopped, pause_unless_stopped, stopped};
use credo_ports::{
    AuditEvent, AuditLog, EventSource, SourceMessage, StoreError, envelope, telemetry,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Consumer settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Messages materialized per `append_batch` at most (default 500).
    pub batch: usize,
    /// How long to wait to fill a batch once it holds one message (default 20 ms).
    pub batch_wait: Duration,
    /// How long a read waits for a first message before the consumer counts an idle pass
    /// (default 1 s): it beats its heartbeat and samples the lag then, so a consumer of a
    /// quiet topic stays ready. Must be shorter than the readiness stall limit.
    pub idle_wait: Duration,
    /// Pauses between retries of a failed read, write or dead-letter publish (default 100 ms
    /// doubling to 10 s, jittered).
    pub backoff: Backoff,
    /// How often the lag per partition is sampled from the source (default 15 s).
    pub metrics_interval: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            batch_wait: Duration::from_millis(20),
            idle_wait: Duration::from_secs(1),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            metrics_interval: Duration::from_secs(15),
        }
    }
}

/// Counters of a consumer since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Messages read from the source.
    pub consumed: u64,
    /// Events written to the audit log now.
    pub materialized: u64,
    /// Events skipped because the log already held their id (redeliveries).
    pub duplicates: u64,
    /// Messages set aside (dead-letter topic).
    pub dead_lettered: u64,
    /// Writes (to the log or the dead-letter topic) that failed and were retried.
    pub write_retries: u64,
    /// Commits that failed (the next commit covers them; redeliveries are absorbed).
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

    fn add(&self, counter: &AtomicU64, metric: &'static str, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!(metric).increment(n);
    }
}

/// Watches a running [`AuditConsumer`].
#[derive(Clone)]
pub struct ConsumerHandle {
    counters: Arc<Counters>,
}

impl ConsumerHandle {
    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> ConsumerStats {
        self.counters.snapshot()
    }
}

/// Materializes an [`EventSource`] into an [`AuditLog`].
///
/// Each batch is decoded message by message (the one decode of the pipeline), written with one
/// `append_batch`, which skips event ids already present, and only then committed. A crash
/// between the write and the commit means a redelivery, which the write absorbs. A message that
/// cannot be materialized (not an envelope, a newer `schema_version`, an event the log refuses)
/// is set aside through [`EventSource::dead_letter`] and does not stop the stream. A write that
/// fails with a retryable error is retried with backoff, never skipped.
pub struct AuditConsumer {
    source: Arc<dyn EventSource>,
    log: Arc<dyn AuditLog>,
    config: ConsumerConfig,
    counters: Arc<Counters>,
    heartbeat: crate::Heartbeat,
}

/// `None`: stopped while retrying.
type Retried<T> = Option<Result<T, StoreError>>;

impl AuditConsumer {
    /// A consumer of `source` writing into `log`; `InvalidInput` for a zero batch or idle wait.
    pub fn new(
        source: Arc<dyn EventSource>,
        log: Arc<dyn AuditLog>,
        config: ConsumerConfig,
    ) -> credo_ports::StoreResult<Self> {
        if config.batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if config.idle_wait.is_zero() {
            return Err(StoreError::invalid("idle_wait", "must be longer than zero"));
        }
        Ok(Self {
            source,
            log,
            config,
            counters: Arc::default(),
            heartbeat: crate::Heartbeat::reporting(telemetry::CONSUMER_LAST_PASS),
        })
    }

    /// Beats after every completed read (empty or handled): for a readiness check
    /// ([`crate::HeartbeatCheck`]) that fails when the consumer died or stalled.
    pub fn heartbeat(&self) -> crate::Heartbeat {
        self.heartbeat.clone()
    }

    /// A handle to watch this consumer while it runs.
    pub fn handle(&self) -> ConsumerHandle {
        ConsumerHandle {
            counters: self.counters.clone(),
        }
    }

    /// Consumes until `stop` turns true or its sender is dropped. A batch in hand is written,
    /// set aside where needed and committed before stopping, unless a retry is still failing
    /// at that moment: then it is left uncommitted and will be read again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> ConsumerStats {
        let mut errors_in_a_row = 0;
        let mut next_sample = tokio::time::Instant::now();
        while !is_stopped(&stop) {
            if tokio::time::Instant::now() >= next_sample {
                self.sample_lag().await;
                next_sample = tokio::time::Instant::now() + self.config.metrics_interval;
            }
            let read = tokio::select! {
                _ = stopped(&mut stop) => break,
                r = self.source.next_batch(
                    self.config.batch,
                    self.config.idle_wait,
                    self.config.batch_wait,
                ) => r,
            };
            match read {
                Ok(batch) if batch.is_empty() => self.heartbeat.beat(),
                Ok(batch) => {
                    errors_in_a_row = 0;
                    let span = tracing::info_span!("credo.audit.consume", messages = batch.len());
                    if !self.handle_batch(batch, &mut stop).instrument(span).await {
                        break;
                    }
                    self.heartbeat.beat();
                }
                Err(e) => {
                    // Transport errors surface here while the client reconnects by itself.
                    errors_in_a_row += 1;
                    tracing::warn!(error = %e, "audit consumer: read failed");
                    let pause = self.config.backoff.delay(errors_in_a_row);
                    if !pause_unless_stopped(pause, &mut stop).await {
                        break;
                    }
                }
            }
        }
        if let Err(e) = self.source.close().await {
            let c = &self.counters;
            c.add(&c.commit_failures, telemetry::CONSUMER_COMMIT_FAILURES, 1);
            tracing::warn!(error = %e, "audit consumer: final commit failed");
        }
        self.counters.snapshot()
    }

    /// Samples the lag per partition; a failed sample leaves the gauges as they were. A
    /// partition read to its end has no age.
    pub async fn sample_lag(&self) {
        let Ok(lags) = self.source.lag().await else {
            return;
        };
        for lag in lags {
            let partition = lag.partition.to_string();
            metrics::gauge!(telemetry::CONSUMER_LAG_MESSAGES, "partition" => partition.clone())
                .set(lag.messages as f64);
            if lag.messages == 0 {
                metrics::gauge!(telemetry::CONSUMER_LAG_SECONDS, "partition" => partition).set(0.0);
            }
        }
    }

    /// Writes, sets aside and commits one batch; `false` when stopped in the middle.
    async fn handle_batch(
        &self,
        batch: Vec<SourceMessage>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let c = &self.counters;
        c.add(
            &c.consumed,
            telemetry::CONSUMER_CONSUMED,
            batch.len() as u64,
        );
        let mut at: Vec<usize> = Vec::with_capacity(batch.len());
        let mut events: Vec<AuditEvent> = Vec::with_capacity(batch.len());
        let mut dead: Vec<(usize, String)> = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            match envelope::decode(m.payload.as_deref()) {
                Ok(e) => {
                    at.push(i);
                    events.push(e);
                }
                Err(reason) => dead.push((i, reason)),
            }
        }
        // One span per event, open while it is written: each carries the trace id of the call
        // that recorded the event, so a trace follows the event from that call to the log.
        let spans: Vec<tracing::Span> = at
            .iter()
            .zip(&events)
            .map(|(&i, e)| materialize_span(&batch[i], e))
            .collect();
        match self.append(&events, stop).await {
            None => return false,
            Some(Ok(())) => {}
            Some(Err(_)) => {
                // Refused as a batch: write event by event so that only the refused ones are
                // set aside.
                for (&i, e) in at.iter().zip(&events) {
                    match self.append(std::slice::from_ref(e), stop).await {
                        None => return false,
                        Some(Ok(())) => {}
                        Some(Err(why)) => {
                            dead.push((i, format!("rejected by the audit log: {why}")))
                        }
                    }
                }
            }
        }
        let set_aside: std::collections::HashSet<usize> = dead.iter().map(|(i, _)| *i).collect();
        for (i, reason) in dead {
            tracing::warn!(
                partition = batch[i].partition,
                offset = batch[i].offset,
                reason,
                "audit consumer: setting a message aside"
            );
            let set_aside = self
                .retry(stop, || self.source.dead_letter(&batch[i], &reason))
                .await;
            match set_aside {
                Some(Ok(())) => c.add(&c.dead_lettered, telemetry::CONSUMER_DEAD_LETTERED, 1),
                // Only retryable errors come back retried; anything else would repeat forever.
                Some(Err(e)) => {
                    tracing::error!(error = %e, "audit consumer: cannot set a message aside");
                    return false;
                }
                None => return false,
            }
        }
        if let Err(e) = self.source.commit(&batch).await {
            c.add(&c.commit_failures, telemetry::CONSUMER_COMMIT_FAILURES, 1);
            tracing::warn!(error = %e, "audit consumer: commit failed");
        }
        let now = credo_ports::Clock::now(&credo_ports::SystemClock).as_micros();
        for (&i, span) in at.iter().zip(&spans) {
            if set_aside.contains(&i) {
                span.record("outcome", "set_aside");
                continue;
            }
            span.record("outcome", "materialized");
            if let Some(at) = batch[i].enqueued_at() {
                let age = now.saturating_sub(at.as_micros()).max(0) as u64;
                metrics::histogram!(telemetry::AUDIT_TIME_TO_PERSIST_SECONDS)
                    .record(Duration::from_micros(age));
            }
        }
        record_age(&batch);
        true
    }

    /// Appends `events`, retrying retryable errors.
    async fn append(&self, events: &[AuditEvent], stop: &mut watch::Receiver<bool>) -> Retried<()> {
        if events.is_empty() {
            return Some(Ok(()));
        }
        let c = &self.counters;
        let outcome = self.retry(stop, || self.log.append_batch(events)).await?;
        Some(outcome.map(|o| {
            c.add(
                &c.materialized,
                telemetry::CONSUMER_MATERIALIZED,
                o.inserted,
            );
            c.add(&c.duplicates, telemetry::CONSUMER_DUPLICATES, o.duplicates);
        }))
    }

    /// Calls `op` until it succeeds or fails for good, backing off after retryable errors.
    async fn retry<T, F, Fut>(&self, stop: &mut watch::Receiver<bool>, op: F) -> Retried<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut failures = 0;
        loop {
            match op().await {
                Err(e) if e.is_retryable() => {
                    failures += 1;
                    let c = &self.counters;
                    c.add(&c.write_retries, telemetry::CONSUMER_WRITE_RETRIES, 1);
                    tracing::warn!(error = %e, failures, "audit consumer: retrying");
                    if !pause_unless_stopped(self.config.backoff.delay(failures), stop).await {
                        return None;
                    }
                }
                other => return Some(other),
            }
        }
    }
}

/// The span of one event's write into the log, with its trace context when the message has one.
fn materialize_span(m: &SourceMessage, e: &AuditEvent) -> tracing::Span {
    let span = tracing::info_span!(
        "credo.audit.materialize",
        event_id = %e.id,
        tenant = %e.tenant_id,
        partition = m.partition,
        offset = m.offset,
        trace_id = tracing::field::Empty,
        remote_parent_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    // Parsing the header is per event: only when a subscriber wants the span.
    if !span.is_disabled()
        && let Some(tp) = m.traceparent()
    {
        span.record("trace_id", tp.trace_id().as_str());
        span.record("remote_parent_id", tp.parent_id().as_str());
    }
    span
}

/// Sets each partition's lag in seconds from the newest message of the batch read from it.
fn record_age(batch: &[SourceMessage]) {
    let now = credo_ports::Clock::now(&credo_ports::SystemClock).as_micros();
    let mut newest: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
    for m in batch {
        if let Some(at) = m.timestamp {
            let e = newest.entry(m.partition).or_insert(i64::MIN);
            *e = (*e).max(at.as_micros());
        }
    }
    for (partition, at) in newest {
        let age = now.saturating_sub(at).max(0) as f64 / 1e6;
        metrics::gauge!(telemetry::CONSUMER_LAG_SECONDS, "partition" => partition.to_string())
            .set(age);
    }
}
