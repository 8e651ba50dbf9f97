//! `OutboxRelay::run` against the in-memory outbox: it backs off while the sink fails,
//! resumes, publishes everything exactly once, reports its metrics, refuses a lease shorter
//! than the sink's delivery timeout, and stops promptly on shutdown or when its owner is gone.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_pipeline::{DirectSink, OutboxRelay, RelayConfig};
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, Claim, ClaimToken, Clock, DeadLetter, Delivery,
    Disposition, EncodedEvent, EventId, EventSink, ManualClock, Outbox, StoreError, StoreResult,
    TenantId, Timestamp,
};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct Flaky {
    inner: Arc<dyn EventSink>,
    failures_left: AtomicU32,
    calls: AtomicU32,
    /// Always rejected.
    refused: Option<EventId>,
}

impl Flaky {
    fn new(stores: &InMemoryStores, failures: u32) -> Self {
        Self {
            inner: Arc::new(DirectSink::new(stores.audit_log())),
            failures_left: AtomicU32::new(failures),
            calls: AtomicU32::new(0),
            refused: None,
        }
    }
}

#[async_trait]
impl EventSink for Flaky {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("broker down".into()));
        }
        let rest: Vec<EncodedEvent> = batch
            .iter()
            .filter(|m| Some(m.id) != self.refused)
            .cloned()
            .collect();
        // The refused event has no subject: nothing of its key follows it.
        let mut published = self.inner.publish(&rest).await?.into_iter();
        let out = batch
            .iter()
            .map(|m| match Some(m.id) == self.refused {
                true => Delivery::Rejected("refused".into()),
                false => published.next().expect("one outcome per message"),
            })
            .collect();
        Ok(out)
    }
}

/// Records `n` failed-login events of one new tenant at `at`; returns the tenant.
async fn record_logins(stores: &InMemoryStores, at: Timestamp, n: usize) -> TenantId {
    let tenant = TenantId::new();
    for _ in 0..n {
        let e = AuditEvent::new(tenant, at, AuditCategory::Security, "auth.login_failed");
        stores.audit().record(e).await.unwrap();
    }
    tenant
}

#[tokio::test(start_paused = true)]
async fn run_backs_off_while_the_sink_fails_then_publishes_everything_once() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let stores = InMemoryStores::new(clock.clone());
    let tenant = record_logins(&stores, clock.now(), 250).await;
    let sink = Arc::new(Flaky::new(&stores, 5));
    let config = {
        let mut c = RelayConfig::default();
        c.batch = 100;
        c
    };
    let relay = OutboxRelay::new(stores.outbox(), sink.clone(), config).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = tokio::time::Instant::now();
    let task = tokio::spawn(async move { relay.run(stopped).await });
    // 5 failures back off 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s (each 50-150 %): done well within 10 s.
    while stores.outbox().depth().await.unwrap() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "relay did not drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1550),
        "no backoff between failures: {waited:?}"
    );
    stop.send(true).unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("relay ignored shutdown")
        .unwrap();
    assert_eq!(stats.failures, 5);
    assert_eq!(stats.published, 250);
    assert_eq!(sink.calls.load(Ordering::SeqCst), 5 + 3);
    assert_eq!(
        stores
            .audit_log()
            .count(tenant, AuditQuery::default())
            .await
            .unwrap(),
        250
    );
}

#[test]
fn relay_reports_published_failures_latency_and_outbox_gauges() {
    use credo_ports::telemetry;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(async {
                let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
                let stores = InMemoryStores::new(clock.clone());
                // The one refused event comes first (it has no subject: a key of its own).
                let refused = AuditEvent::new(
                    TenantId::new(),
                    clock.now(),
                    AuditCategory::Security,
                    "auth.login_failed",
                );
                stores.audit().record(refused.clone()).await.unwrap();
                record_logins(&stores, clock.now(), 30).await;
                clock.advance(Duration::from_secs(42));
                let sink = Arc::new(Flaky {
                    refused: Some(refused.id),
                    ..Flaky::new(&stores, 2)
                });
                let config = {
                    let mut c = RelayConfig::default();
                    c.batch = 10;
                    c.max_failures = 1;
                    c
                };
                let relay = Arc::new(OutboxRelay::new(stores.outbox(), sink, config).unwrap());
                // The gauges are sampled before the first pass: 31 pending, oldest 42 s.
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let running = relay.clone();
                let task = tokio::spawn(async move { running.run(stopped).await });
                while stores.outbox().depth().await.unwrap() > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                stop.send(true).unwrap();
                let stats = task.await.unwrap();
                assert_eq!(stats.dead_lettered, 1);
                relay.sample_gauges().await;
            });
    });
    let values: std::collections::HashMap<String, DebugValue> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key.key().name().to_string(), value))
        .collect();
    assert_eq!(
        values.get(telemetry::RELAY_PUBLISHED),
        Some(&DebugValue::Counter(30))
    );
    assert_eq!(
        values.get(telemetry::RELAY_FAILURES),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        values.get(telemetry::RELAY_REJECTED),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        values.get(telemetry::OUTBOX_DEAD_LETTERED),
        Some(&DebugValue::Counter(1))
    );
    // Last sampled after the drain: nothing pending, one dead letter.
    assert_eq!(
        values.get(telemetry::OUTBOX_DEPTH),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert_eq!(
        values.get(telemetry::OUTBOX_OLDEST_PENDING_SECONDS),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert_eq!(
        values.get(telemetry::OUTBOX_DEAD_LETTERS),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    match values.get(telemetry::RELAY_PUBLISH_SECONDS) {
        // 2 failed and 4 successful publishes (31 rows, batches of 10) were timed.
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 6),
        other => panic!("publish latency histogram: {other:?}"),
    }
}

/// Counts claims; otherwise the in-memory outbox.
struct CountingOutbox {
    inner: Arc<dyn Outbox>,
    claims: AtomicU64,
}

#[async_trait]
impl Outbox for CountingOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.claim(batch, lease).await
    }
    async fn ack(&self, claim: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        self.inner.ack(claim, ids).await
    }
    async fn release(&self, claim: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        self.inner.release(claim, ids).await
    }
    async fn reject(
        &self,
        claim: ClaimToken,
        id: EventId,
        reason: &str,
        then: Disposition,
    ) -> StoreResult<bool> {
        self.inner.reject(claim, id, reason, then).await
    }
    async fn depth(&self) -> StoreResult<u64> {
        self.inner.depth().await
    }
    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        self.inner.oldest_pending_age().await
    }
    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>> {
        self.inner.dead_letters(page).await
    }
    async fn dead_letter_count(&self) -> StoreResult<u64> {
        self.inner.dead_letter_count().await
    }
    async fn requeue(&self, ids: &[EventId]) -> StoreResult<u64> {
        self.inner.requeue(ids).await
    }
    async fn purge_dead_letters(&self, ids: &[EventId]) -> StoreResult<u64> {
        self.inner.purge_dead_letters(ids).await
    }
    async fn purge_published(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64> {
        self.inner.purge_published(before, limit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_owner_is_dropped_stops_promptly_without_spinning() {
    let stores = InMemoryStores::new(Arc::new(credo_ports::SystemClock));
    let outbox = Arc::new(CountingOutbox {
        inner: stores.outbox(),
        claims: AtomicU64::new(0),
    });
    let config = {
        let mut c = RelayConfig::default();
        c.idle_poll = Duration::from_millis(20);
        c
    };
    let sink = Arc::new(DirectSink::new(stores.audit_log()));
    let relay = OutboxRelay::new(outbox.clone(), sink, config).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { relay.run(stopped).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let while_running = outbox.claims.load(Ordering::SeqCst);
    assert!(while_running > 0, "the relay never claimed");
    // The owner goes away without saying stop.
    drop(stop);
    tokio::time::timeout(Duration::from_millis(500), task)
        .await
        .expect("the relay outlived its owner")
        .unwrap();
    let at_stop = outbox.claims.load(Ordering::SeqCst);
    // At most the pass in hand when the owner left; a relay spinning on the closed channel
    // would have claimed thousands of times.
    assert!(
        at_stop <= while_running + 2,
        "claims while running {while_running}, at stop {at_stop}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(outbox.claims.load(Ordering::SeqCst), at_stop);
}

struct SlowSink(Duration);

#[async_trait]
impl EventSink for SlowSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        tokio::time::sleep(self.0).await;
        Ok(vec![Delivery::Published; batch.len()])
    }
    fn delivery_timeout(&self) -> Option<Duration> {
        Some(self.0)
    }
}

#[test]
fn a_lease_not_longer_than_the_delivery_timeout_is_refused() {
    let stores = InMemoryStores::new(Arc::new(credo_ports::SystemClock));
    let sink = Arc::new(SlowSink(Duration::from_secs(30)));
    let config = |lease| {
        let mut c = RelayConfig::default();
        c.lease = lease;
        c
    };
    let refused = OutboxRelay::new(
        stores.outbox(),
        sink.clone(),
        config(Duration::from_secs(30)),
    );
    match refused {
        Err(StoreError::InvalidInput { field, reason }) => {
            assert_eq!(field, "lease");
            assert!(reason.contains("delivery timeout (30s)"), "{reason}");
        }
        other => panic!("expected the lease refused, got {:?}", other.err()),
    }
    assert!(OutboxRelay::new(stores.outbox(), sink, config(Duration::from_secs(31))).is_ok());
    let zero = {
        let mut c = RelayConfig::default();
        c.max_failures = 0;
        c
    };
    let sink = Arc::new(DirectSink::new(stores.audit_log()));
    assert!(matches!(
        OutboxRelay::new(stores.outbox(), sink, zero),
        Err(StoreError::InvalidInput {
            field: "max_failures",
            ..
        })
    ));
}
