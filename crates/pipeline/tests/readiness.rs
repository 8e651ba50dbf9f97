//! Readiness sees the pipeline: a relay that stalls or is killed fails its heartbeat check,
//! and the outbox backlog turns `degraded`, then `failed`, at its thresholds.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_pipeline::{
    BacklogCheck, BacklogThresholds, DirectSink, HeartbeatCheck, OutboxRelay, RelayConfig,
};
use credo_ports::{
    AuditCategory, AuditEvent, Delivery, EncodedEvent, EventSink, HealthCheck, HealthStatus,
    ManualClock, StoreResult, TenantId, Timestamp,
};
use std::sync::Arc;
use std::time::Duration;

fn event(tenant: TenantId) -> AuditEvent {
    AuditEvent::new(
        tenant,
        Timestamp::from_secs(1_800_000_000),
        AuditCategory::Security,
        "auth.login_failed",
    )
}

/// A sink whose publish never returns: the relay stalls inside a pass.
struct Hung;

#[async_trait]
impl EventSink for Hung {
    async fn publish(&self, _: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stalled_or_killed_relay_fails_readiness_after_the_limit() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let stores = InMemoryStores::new(clock);
    let stall = Duration::from_secs(60);
    let config = {
        let mut c = RelayConfig::default();
        c.lease = Duration::from_secs(120);
        c
    };

    // A working relay passes (empty passes included) and stays ok.
    let relay = OutboxRelay::new(
        stores.outbox(),
        Arc::new(DirectSink::new(stores.audit_log())),
        config.clone(),
    )
    .unwrap();
    let check = HeartbeatCheck::new("relay", relay.heartbeat(), stall);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move { relay.run(stopped).await });
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(check.check().await, HealthStatus::Ok);
    // Killed: no more passes.
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert!(matches!(check.check().await, HealthStatus::Failed(_)));

    // Stalled inside a pass: the sink never answers.
    let stalled = OutboxRelay::new(stores.outbox(), Arc::new(Hung), config).unwrap();
    let check = HeartbeatCheck::new("relay", stalled.heartbeat(), stall);
    stores.audit().record(event(TenantId::new())).await.unwrap();
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move { stalled.run(stopped).await });
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(check.check().await, HealthStatus::Ok, "within the limit");
    tokio::time::sleep(Duration::from_secs(31)).await;
    let HealthStatus::Failed(why) = check.check().await else {
        panic!("a stalled relay must fail readiness");
    };
    assert!(why.contains("stalled"), "{why}");
}

#[tokio::test]
async fn the_backlog_is_degraded_then_failed_at_its_thresholds() {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let stores = InMemoryStores::new(clock.clone());
    let limits = {
        let mut c = BacklogThresholds::default();
        c.depth_warning = 3;
        c.depth_critical = 6;
        c
    };
    let check = BacklogCheck::new(stores.outbox(), limits);
    let tenant = TenantId::new();
    let mut expected = Vec::new();
    for _ in 0..7 {
        expected.push(check.check().await.as_str());
        stores.audit().record(event(tenant)).await.unwrap();
    }
    expected.push(check.check().await.as_str());
    assert_eq!(
        expected,
        [
            "ok", "ok", "ok", "ok", "degraded", "degraded", "degraded", "failed"
        ]
    );
    // The age of the oldest pending event counts too, and the details carry only figures.
    let stores = InMemoryStores::new(clock.clone());
    let check = BacklogCheck::new(stores.outbox(), BacklogThresholds::default());
    stores.audit().record(event(tenant)).await.unwrap();
    clock.advance(Duration::from_secs(61));
    let HealthStatus::Degraded(why) = check.check().await else {
        panic!("an old pending event degrades readiness");
    };
    assert_eq!(why, "1 events pending, the oldest 61s old (warning)");
    clock.advance(Duration::from_secs(540));
    assert_eq!(check.check().await.as_str(), "failed");
}
