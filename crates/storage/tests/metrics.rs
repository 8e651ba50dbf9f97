//! Store calls made through the facade are timed and their errors and rate-limit decisions
//! counted, with no user data in labels.

use credo_storage::{NewUser, RateLimitPolicy, Storage, StorageConfig, TenantId, telemetry};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use std::time::Duration;

#[test]
fn store_calls_are_timed_and_errors_and_denials_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let storage = Storage::connect(&StorageConfig::default()).await.unwrap();
                let tenant = TenantId::new();
                let user = NewUser::new(tenant, "ada@example.com", "Ada", "L");
                storage.users.create(user.clone()).await.unwrap();
                assert!(storage.users.create(user).await.is_err());
                let policy = RateLimitPolicy {
                    limit: 1,
                    period: Duration::from_secs(60),
                    burst: 1,
                };
                for _ in 0..3 {
                    storage
                        .rate_limits
                        .check(tenant, "login:ada@example.com", policy, 1)
                        .await
                        .unwrap();
                }
                storage.shutdown().await;
            });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                let k = key.key();
                k.name() == name
                    && labels
                        .iter()
                        .all(|(l, v)| k.labels().any(|x| x.key() == *l && x.value() == *v))
            })
            .map(|(_, _, _, v)| v)
    };
    match find(
        telemetry::STORE_OPERATION_SECONDS,
        &[
            ("port", "users"),
            ("operation", "create"),
            ("backend", "inmemory"),
        ],
    ) {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 2),
        other => panic!("users.create latency: {other:?}"),
    }
    assert_eq!(
        find(
            telemetry::STORE_ERRORS,
            &[
                ("port", "users"),
                ("operation", "create"),
                ("kind", "Conflict")
            ]
        ),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(telemetry::RATE_LIMIT_CHECKS, &[("decision", "allowed")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        find(telemetry::RATE_LIMIT_CHECKS, &[("decision", "denied")]),
        Some(&DebugValue::Counter(2))
    );
    for (key, _, _, _) in &snapshot {
        for label in key.key().labels() {
            assert!(!label.value().contains('@'), "PII in a label: {key:?}");
        }
    }
}
