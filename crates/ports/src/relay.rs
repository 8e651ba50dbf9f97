//! The outbox relay: claims pending rows, publishes them to an [`EventSink`], acks them. Generic
//! over any [`Outbox`] and sink, so the same relay drives the direct sinks of in-memory and
//! PostgreSQL-only deployments and the Kafka sink.

use crate::{EventId, EventSink, Outbox, StoreError, StoreResult, telemetry};
use std::sync::Arc;
use std::time::Duration;

/// Relay settings.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Rows claimed per pass (default 100).
    pub batch: usize,
    /// How long a claim holds its rows (default 30 s): a relay that dies mid-batch leaves them
    /// to another relay once the lease ends.
    pub lease: Duration,
    /// Pause after a pass that found nothing (default 100 ms).
    pub idle_poll: Duration,
    /// First pause after a failed pass (default 100 ms); doubles per failure...
    pub backoff_min: Duration,
    /// ...up to this (default 30 s), each pause jittered to 50-150 %.
    pub backoff_max: Duration,
    /// How often `run` samples the outbox depth and oldest pending age into the
    /// [`telemetry`](crate::telemetry) gauges (default 5 s; each sample is two outbox queries).
    pub metrics_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch: 100,
            lease: Duration::from_secs(30),
            idle_poll: Duration::from_millis(100),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
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
}

/// Totals of a [`OutboxRelay::run`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Events published and acked.
    pub published: u64,
    /// Passes that failed (each followed by a backoff).
    pub failures: u64,
}

/// Moves events from an outbox to a sink.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use credo_ports::relay::{OutboxRelay, RelayConfig};
/// # use credo_ports::*;
/// # struct Empty;
/// # #[async_trait::async_trait]
/// # impl Outbox for Empty {
/// #   async fn claim(&self, _: usize, _: std::time::Duration) -> StoreResult<Vec<OutboxRecord>> { Ok(vec![]) }
/// #   async fn ack(&self, _: &[EventId]) -> StoreResult<u64> { Ok(0) }
/// #   async fn release(&self, _: &[EventId]) -> StoreResult<u64> { Ok(0) }
/// #   async fn depth(&self) -> StoreResult<u64> { Ok(0) }
/// #   async fn oldest_pending_age(&self) -> StoreResult<Option<std::time::Duration>> { Ok(None) }
/// #   async fn purge_published(&self, _: Timestamp) -> StoreResult<u64> { Ok(0) }
/// # }
/// # struct Nowhere;
/// # #[async_trait::async_trait]
/// # impl EventSink for Nowhere { async fn publish(&self, _: &[AuditEvent]) -> StoreResult<()> { Ok(()) } }
/// # let (outbox, sink): (Arc<dyn Outbox>, Arc<dyn EventSink>) = (Arc::new(Empty), Arc::new(Nowhere));
/// let relay = OutboxRelay::new(outbox, sink, RelayConfig::default()).unwrap();
/// assert_eq!(relay.drain().await.unwrap(), 0);
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let task = tokio::spawn(async move { relay.run(stopped).await });
/// stop.send(true).unwrap();
/// task.await.unwrap();
/// # });
/// ```
pub struct OutboxRelay {
    outbox: Arc<dyn Outbox>,
    sink: Arc<dyn EventSink>,
    config: RelayConfig,
}

impl OutboxRelay {
    /// A relay from `outbox` to `sink`; `InvalidInput` for a zero batch or lease.
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
        Ok(Self {
            outbox,
            sink,
            config,
        })
    }

    /// One claim, publish, ack. When publishing fails the claimed rows are released at once
    /// (not left to their lease) and the error is returned.
    pub async fn pass(&self) -> StoreResult<RelayPass> {
        let result = self.try_pass().await;
        match &result {
            Ok(pass) => metrics::counter!(telemetry::RELAY_PUBLISHED).increment(pass.published),
            Err(_) => metrics::counter!(telemetry::RELAY_FAILURES).increment(1),
        }
        result
    }

    async fn try_pass(&self) -> StoreResult<RelayPass> {
        let rows = self
            .outbox
            .claim(self.config.batch, self.config.lease)
            .await?;
        if rows.is_empty() {
            return Ok(RelayPass::default());
        }
        let claimed = rows.len() as u64;
        let events: Vec<_> = rows.into_iter().map(|r| r.event).collect();
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let started = tokio::time::Instant::now();
        let published = self.sink.publish(&events).await;
        metrics::histogram!(telemetry::RELAY_PUBLISH_SECONDS).record(started.elapsed());
        if let Err(e) = published {
            // Best effort: if this fails too, the lease hands the rows out again later.
            let _ = self.outbox.release(&ids).await;
            return Err(e);
        }
        // Published but not acked (crash, lost connection) means published again after the
        // lease: consumers deduplicate by event id.
        self.outbox.ack(&ids).await?;
        Ok(RelayPass {
            claimed,
            published: claimed,
        })
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
    }

    /// Passes until a claim finds nothing; returns the events published.
    pub async fn drain(&self) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let pass = self.pass().await?;
            if pass.claimed == 0 {
                return Ok(total);
            }
            total += pass.published;
        }
    }

    /// Relays until `shutdown` turns true. A batch in hand is always finished (published and
    /// acked, or released) before stopping; failed passes back off exponentially with jitter.
    pub async fn run(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) -> RelayStats {
        let mut stats = RelayStats::default();
        let mut failures_in_a_row = 0u32;
        let mut next_sample = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
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
                    if pass.claimed > 0 {
                        Duration::ZERO
                    } else {
                        self.config.idle_poll
                    }
                }
                Err(_) => {
                    stats.failures += 1;
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    backoff(&self.config, failures_in_a_row)
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// The pause after the `n`th failure in a row: `min * 2^(n-1)` capped at `max`, times a random
/// factor in 50-150 % so that relays do not retry in lockstep.
pub fn backoff(config: &RelayConfig, n: u32) -> Duration {
    let base = config
        .backoff_min
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(config.backoff_max);
    let unit = (uuid::Uuid::new_v4().as_u128() % 1001) as f64 / 1000.0; // 0.0..=1.0
    base.mul_f64(0.5 + unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let c = RelayConfig::default();
        for n in 1..40 {
            let d = backoff(&c, n);
            let base = Duration::from_millis(100)
                .saturating_mul(1 << (n - 1).min(20))
                .min(c.backoff_max);
            assert!(
                d >= base / 2 && d <= base.mul_f64(1.5),
                "n={n}: {d:?} vs {base:?}"
            );
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(&c, 3)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
