//! The facade's readiness sees the pipeline (relay heartbeat, outbox backlog) beside the
//! backends, and serves a cached report to a flood of probes.

use credo_storage::{ManualClock, Storage, StorageConfig, Timestamp};
use std::sync::Arc;
use std::time::Duration;

async fn connect(toml: &str) -> (Storage, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = StorageConfig::from_toml_str(toml).unwrap();
    let storage = Storage::connect_with_clock(&config, clock.clone())
        .await
        .unwrap();
    (storage, clock)
}

#[tokio::test]
async fn readiness_checks_the_relay_and_the_backlog() {
    let (storage, _) = connect("").await;
    let report = storage.readiness().report().await;
    let names: Vec<&str> = report.checks.keys().map(String::as_str).collect();
    assert_eq!(names, ["maintenance", "memory", "outbox", "relay"]);
    assert_eq!(report.http_status(), 200, "{:?}", report.details);
    storage.shutdown().await;
}

#[tokio::test]
async fn reports_are_cached_for_the_configured_time() {
    let (storage, clock) = connect("").await;
    let first = storage.readiness().report().await;
    clock.advance(Duration::from_secs(5));
    let second = storage.readiness().report().await;
    assert_eq!(
        first.timestamp, second.timestamp,
        "served from the cache (1 s)"
    );
    storage.shutdown().await;

    let (storage, clock) = connect("[readiness]\ncache_ms = 0\n").await;
    let first = storage.readiness().report().await;
    clock.advance(Duration::from_secs(5));
    let second = storage.readiness().report().await;
    assert_ne!(
        first.timestamp, second.timestamp,
        "every probe runs the checks"
    );
    storage.shutdown().await;
}

#[tokio::test]
async fn backlog_thresholds_in_the_wrong_order_are_refused_by_name() {
    let e =
        StorageConfig::from_toml_str("[readiness]\nbacklog_warning = 11\nbacklog_critical = 10\n")
            .unwrap_err();
    assert_eq!(e.setting, "readiness.backlog_warning");
    let e =
        StorageConfig::from_toml_str("[readiness]\nbacklog_age_critical_ms = 1000\n").unwrap_err();
    assert_eq!(e.setting, "readiness.backlog_age_warning_ms");
}
