//! The outbox relay: claim, publish unchanged, then ack, release or reject each row.

use crate::{Backoff, is_stopped, pause_unless_stopped};
use credo_ports::outbox::{Claim, ClaimToken, Delivery, Disposition};
use credo_ports::{
    Clock, EncodedEvent, EventId, EventSink, Outbox, OutboxRecord, StoreError, StoreResult,
    SystemClock, Timestamp, telemetry,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Relay settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Rows claimed per pass (default 100).
    pub batch: usize,
    /// How long a claim holds its rows (default 60 s, measured on the outbox's clock: the
    /// database's for PostgreSQL). A relay that dies mid-batch leaves them to another relay
    /// once it ends. Must be longer than the sink's delivery timeout (checked by
    /// [`OutboxRelay::new`]), so a publish still running never loses its rows to another relay.
    pub lease: Duration,
    /// Pause after a pass that found nothing (default 100 ms).
    pub idle_poll: Duration,
    /// Pauses after failed passes, and before a rejected row is retried (default 100 ms
    /// doubling to 30 s, jittered).
    pub backoff: Backoff,
    /// Rejections after which a row is set aside as a dead letter (default 5). A rejection
    /// that would otherwise let a later event of the same subject overtake it sets the row
    /// aside at once.
    pub max_failures: u32,
    /// How often `run` samples the outbox depth, oldest pending age and dead-letter count into
    /// the [`telemetry`] gauges (default 5 s; each sample is three outbox queries).
    pub metrics_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_millis(100),
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
            max_failures: 5,
            metrics_interval: Duration::from_secs(5),
        }
    }
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayPass {
    /// Rows claimed.
    pub claimed: u64,
    /// Rows published and acked.
    pub published: u64,
    /// Rows the sink rejected.
    pub rejected: u64,
    /// Rejected rows set aside as dead letters.
    pub dead_lettered: u64,
}

/// Totals of a [`OutboxRelay::run`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events published and acked.
    pub published: u64,
    /// Passes that failed (each followed by a backoff).
    pub failures: u64,
    /// Rows set aside as dead letters.
    pub dead_lettered: u64,
}

/// Moves encoded events from an outbox to a sink, unchanged.
///
/// One pass: claim up to `batch` rows under a token and a lease; publish them; then ack the
/// published rows, release the rows the sink held back, and reject the rows it refused (retried
/// after a backoff, set aside after `max_failures`). If the publish fails as a whole (broker
/// down), every row is released and the relay backs off: order is kept, nothing is set aside.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use credo_adapters_inmemory::InMemoryStores;
/// use credo_pipeline::{DirectSink, OutboxRelay, RelayConfig};
/// # use credo_ports::SystemClock;
/// let stores = InMemoryStores::new(Arc::new(SystemClock));
/// let sink = Arc::new(DirectSink::new(stores.audit_log()));
/// let relay = OutboxRelay::new(stores.outbox(), sink, RelayConfig::default()).unwrap();
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let task = tokio::spawn(async move { relay.run(stopped).await });
/// stop.send(true).unwrap(); // dropping `stop` would end it too
/// task.await.unwrap();
/// # });
/// ```
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    sink: Arc<dyn EventSink>,
    config: RelayConfig,
    heartbeat: crate::Heartbeat,
}

impl OutboxRelay {
    /// A relay from `outbox` to `sink`. `InvalidInput` names the setting for a zero batch,
    /// lease or `max_failures`, and for a lease not longer than the sink's delivery timeout.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        sink: Arc<dyn EventSink>,
        config: RelayConfig,
    ) -> StoreResult<Self> {
        if config.batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if config.lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        if config.max_failures == 0 {
            return Err(StoreError::invalid("max_failures", "must be at least 1"));
        }
        if let Some(delivery) = sink.delivery_timeout()
            && config.lease <= delivery
        {
            return Err(StoreError::invalid(
                "lease",
                format!(
                    "{:?} is not longer than the sink's delivery timeout ({delivery:?}): a publish \
                     still running could outlive its lease and another relay would publish the \
                     same rows; make the lease longer or the delivery timeout shorter",
                    config.lease
                ),
            ));
        }
        Ok(Self {
            outbox,
            sink,
            config,
            heartbeat: crate::Heartbeat::reporting(telemetry::RELAY_LAST_PASS),
        })
    }

    /// Beats after every completed pass, empty or not: for a readiness check
    /// ([`crate::HeartbeatCheck`]) that fails when the relay died or stalled.
    pub fn heartbeat(&self) -> crate::Heartbeat {
        self.heartbeat.clone()
    }

    /// One claim, publish, and disposal of every claimed row. When the publish fails as a
    /// whole the rows are released at once (not left to their lease) and the error returned.
    pub async fn pass(&self) -> StoreResult<RelayPass> {
        let result = self.try_pass().await;
        match &result {
            Ok(pass) => {
                self.heartbeat.beat();
                metrics::counter!(telemetry::RELAY_PUBLISHED).increment(pass.published);
                if pass.rejected > 0 {
                    metrics::counter!(telemetry::RELAY_REJECTED).increment(pass.rejected);
                }
                if pass.dead_lettered > 0 {
                    metrics::counter!(telemetry::OUTBOX_DEAD_LETTERED)
                        .increment(pass.dead_lettered);
                }
            }
            Err(_) => metrics::counter!(telemetry::RELAY_FAILURES).increment(1),
        }
        result
    }

    async fn try_pass(&self) -> StoreResult<RelayPass> {
        let Claim { token, records } = self
            .outbox
            .claim(self.config.batch, self.config.lease)
            .await?;
        if records.is_empty() {
            return Ok(RelayPass::default());
        }
        // Only passes that carry events get a span: an idle relay polls several times a second.
        let span = tracing::info_span!(
            "credo.relay.pass",
            claimed = records.len(),
            published = tracing::field::Empty,
            rejected = tracing::field::Empty,
            set_aside = tracing::field::Empty,
        );
        let pass = self
            .publish_claimed(token, records)
            .instrument(span.clone())
            .await;
        if let Ok(p) = &pass {
            span.record("published", p.published);
            span.record("rejected", p.rejected);
            span.record("set_aside", p.dead_lettered);
        }
        pass
    }

    async fn publish_claimed(
        &self,
        token: ClaimToken,
        records: Vec<OutboxRecord>,
    ) -> StoreResult<RelayPass> {
        let ids: Vec<EventId> = records.iter().map(|r| r.message.id).collect();
        let failures: Vec<u32> = records.iter().map(|r| r.failures).collect();
        let enqueued: Vec<Timestamp> = records.iter().map(|r| r.enqueued_at).collect();
        let messages: Vec<EncodedEvent> = records
            .into_iter()
            .map(|r| EncodedEvent {
                enqueued_at: Some(r.enqueued_at),
                ..r.message
            })
            .collect();
        let started = tokio::time::Instant::now();
        let published = self.sink.publish(&messages).await;
        metrics::histogram!(telemetry::RELAY_PUBLISH_SECONDS).record(started.elapsed());
        let deliveries = match published {
            Ok(d) if d.len() == messages.len() => d,
            other => {
                // Best effort: if this fails too, the lease hands the rows out again later.
                let _ = self.outbox.release(token, &ids).await;
                return Err(match other {
                    Err(e) => e,
                    Ok(d) => StoreError::Corrupt(
                        format!(
                            "the sink answered for {} of {} events",
                            d.len(),
                            messages.len()
                        )
                        .into(),
                    ),
                });
            }
        };
        // A key with a published event after a rejected one: retrying the rejected one would
        // let it overtake, so it is set aside at once.
        let mut published_later = HashSet::new();
        let mut overtaken = vec![false; messages.len()];
        for (i, (m, d)) in messages.iter().zip(&deliveries).enumerate().rev() {
            match d {
                Delivery::Published => {
                    published_later.insert(m.order_key());
                }
                Delivery::Rejected(_) => overtaken[i] = published_later.contains(&m.order_key()),
                Delivery::Held => {}
            }
        }
        let mut pass = RelayPass {
            claimed: messages.len() as u64,
            ..RelayPass::default()
        };
        let mut acked = Vec::new();
        let mut acked_enqueued = Vec::new();
        let mut held = Vec::new();
        for (i, d) in deliveries.into_iter().enumerate() {
            match d {
                Delivery::Published => {
                    acked.push(ids[i]);
                    acked_enqueued.push(enqueued[i]);
                }
                Delivery::Held => held.push(ids[i]),
                Delivery::Rejected(reason) => {
                    pass.rejected += 1;
                    let n = failures[i].saturating_add(1);
                    let then = if overtaken[i] || n >= self.config.max_failures {
                        Disposition::SetAside
                    } else {
                        Disposition::RetryAfter(self.config.backoff.delay(n))
                    };
                    let held = self.outbox.reject(token, ids[i], &reason, then).await?;
                    match (held, then) {
                        (true, Disposition::SetAside) => {
                            pass.dead_lettered += 1;
                            tracing::warn!(
                                event_id = %ids[i],
                                event_type = %messages[i].event_type,
                                failures = n,
                                reason = %reason,
                                "outbox relay: event set aside as a dead letter"
                            );
                        }
                        (true, Disposition::RetryAfter(_)) => tracing::warn!(
                            event_id = %ids[i], failures = n, reason = %reason,
                            "outbox relay: event rejected, will retry"
                        ),
                        // The lease ran out and another claim holds it now.
                        (false, _) => tracing::debug!(
                            event_id = %ids[i], reason = %reason,
                            "outbox relay: rejected event no longer held by this claim"
                        ),
                    }
                }
            }
        }
        // Published but not acked (crash, lost connection) means published again after the
        // lease: consumers deduplicate by event id.
        pass.published = self.outbox.ack(token, &acked).await?;
        // Wall clock against the stores' enqueue time: with a test clock this is meaningless,
        // and a negative age counts as 0.
        let now = SystemClock.now().as_micros();
        for at in acked_enqueued {
            let age = now.saturating_sub(at.as_micros()).max(0) as u64;
            metrics::histogram!(telemetry::RELAY_TIME_TO_ACK_SECONDS)
                .record(Duration::from_micros(age));
        }
        if !held.is_empty() {
            self.outbox.release(token, &held).await?;
        }
        Ok(pass)
    }

    /// Samples the outbox gauges; a failed sample leaves them as they were.
    pub async fn sample_gauges(&self) {
        if let Ok(depth) = self.outbox.depth().await {
            metrics::gauge!(telemetry::OUTBOX_DEPTH).set(depth as f64);
        }
        if let Ok(age) = self.outbox.oldest_pending_age().await {
            metrics::gauge!(telemetry::OUTBOX_OLDEST_PENDING_SECONDS)
                .set(age.unwrap_or_default().as_secs_f64());
        }
        if let Ok(dead) = self.outbox.dead_letter_count().await {
            metrics::gauge!(telemetry::OUTBOX_DEAD_LETTERS).set(dead as f64);
        }
    }

    /// Passes until one claims nothing or makes no progress; returns the events published.
    /// Rows waiting for a retry after a rejection stay pending.
    pub async fn drain(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let pass = self.pass().await?;
            total += pass.published;
            if pass.published + pass.rejected == 0 {
                return Ok(total);
            }
        }
    }

    /// Relays until `stop` turns true or its sender is dropped. A batch in hand is always
    /// finished (published and disposed of, or released) before stopping; failed passes back
    /// off with the configured [`Backoff`].
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> RelayStats {
        let mut stats = RelayStats::default();
        let mut failures_in_a_row = 0u32;
        let mut next_sample = tokio::time::Instant::now();
        loop {
            if is_stopped(&stop) {
                return stats;
            }
            if tokio::time::Instant::now() >= next_sample {
                self.sample_gauges().await;
                next_sample = tokio::time::Instant::now() + self.config.metrics_interval;
            }
            let pause = match self.pass().await {
                Ok(pass) => {
                    failures_in_a_row = 0;
                    stats.published += pass.published;
                    stats.dead_lettered += pass.dead_lettered;
                    if pass.published + pass.rejected > 0 {
                        Duration::ZERO
                    } else {
                        self.config.idle_poll
                    }
                }
                Err(e) => {
                    stats.failures += 1;
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    tracing::warn!(error = %e, failures_in_a_row, "outbox relay: pass failed");
                    self.config.backoff.delay(failures_in_a_row)
                }
            };
            if !pause.is_zero() && !pause_unless_stopped(pause, &mut stop).await {
                return stats;
            }
        }
    }
}
