//! `OutboxRelay::run` against the in-memory outbox: it backs off while the sink fails,
//! resumes, publishes everything exactly once, and stops promptly on shutdown.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_ports::relay::{OutboxRelay, RelayConfig};
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, Clock, EventSink, ManualClock, StoreError, StoreResult,
    TenantId, Timestamp,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

struct Flaky {
    inner: Arc<dyn EventSink>,
    failures_left: AtomicU32,
    calls: AtomicU32,
}

#[async_trait]
impl EventSink for Flaky {
    async fn publish(&self, batch: &[AuditEvent]) -> StoreResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Unavailable("broker down".into()));
        }
        self.inner.publish(batch).await
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
    let sink = Arc::new(Flaky {
        inner: stores.sink(),
        failures_left: AtomicU32::new(5),
        calls: AtomicU32::new(0),
    });
    let config = RelayConfig {
        batch: 100,
        ..RelayConfig::default()
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
            .audit()
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
                record_logins(&stores, clock.now(), 30).await;
                clock.advance(Duration::from_secs(42));
                let sink = Arc::new(Flaky {
                    inner: stores.sink(),
                    failures_left: AtomicU32::new(2),
                    calls: AtomicU32::new(0),
                });
                let config = RelayConfig {
                    batch: 10,
                    ..RelayConfig::default()
                };
                let relay = OutboxRelay::new(stores.outbox(), sink, config).unwrap();
                // The gauges are sampled before the first pass: 30 pending, oldest 42 s.
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(async move { relay.run(stopped).await });
                while stores.outbox().depth().await.unwrap() > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                stop.send(true).unwrap();
                task.await.unwrap();
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
        values.get(telemetry::OUTBOX_DEPTH),
        Some(&DebugValue::Gauge(30.0.into()))
    );
    assert_eq!(
        values.get(telemetry::OUTBOX_OLDEST_PENDING_SECONDS),
        Some(&DebugValue::Gauge(42.0.into()))
    );
    match values.get(telemetry::RELAY_PUBLISH_SECONDS) {
        // 2 failed and 3 successful publishes were timed.
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 5),
        other => panic!("publish latency histogram: {other:?}"),
    }
}
