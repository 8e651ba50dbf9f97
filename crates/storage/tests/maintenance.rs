//! Maintenance on every backend: a service's traffic grows the stores (sessions, token
//! revocations, rate-limit state, published outbox rows, audit events); once all of it has
//! expired or passed its retention, one maintenance run brings every table, key space and
//! in-memory map back to its baseline. Users and consents are never purged.

mod support;

use credo_storage::pipeline::maintenance::JobOutcome;
use credo_storage::{
    AuditCategory, AuditEvent, Clock, Device, GrantConsent, ManualClock, NewSession, NewUser,
    RateLimitPolicy, SessionId, SessionStatus, Storage, StorageConfig, TenantId, Timestamp,
};
use credo_testkit::{required, unique_name as unique};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const START: Timestamp = Timestamp::from_micros(1_800_000_000_123_457);

/// Retentions short enough to pass in the test; intervals long enough that the background
/// runner only runs at start. With one-day audit partitions, the audit purges of a
/// partitioned log run two days behind their retention.
const MAINTENANCE: &str = r#"
    [maintenance]
    outbox_keep_ms = 1000
    audit_keep_compliance_days = 1
    audit_keep_security_days = 1
    audit_keep_operations_days = 1
    audit_partition_days = 1
    sessions_interval_ms = 86400000
    rate_limits_interval_ms = 86400000
    outbox_interval_ms = 86400000
    audit_interval_ms = 86400000
    batch = 7
    pause_ms = 0
    [relay]
    idle_poll_ms = 10
"#;

/// Traffic of a small service: users and a consent (with their audit events), sessions,
/// token revocations, rate-limit checks and recorded events, all relayed into the log.
async fn traffic(storage: &Storage, clock: &ManualClock) {
    let tenant = TenantId::new();
    let mut users = Vec::new();
    for i in 0..3 {
        let user = storage
            .users
            .create(NewUser::new(
                tenant,
                &format!("u{i}@example.com"),
                "U",
                "Ser",
            ))
            .await
            .unwrap();
        users.push(user.id);
    }
    storage
        .consents
        .grant(GrantConsent {
            id: credo_storage::ConsentId::new(),
            tenant_id: tenant,
            user_id: users[0],
            purpose: "marketing".into(),
            expires_at: None,
        })
        .await
        .unwrap();
    for i in 0..20 {
        storage
            .sessions
            .create(NewSession {
                id: SessionId::new(),
                tenant_id: tenant,
                user_id: users[i % 3],
                client_id: "web".into(),
                scopes: vec!["openid".into()],
                status: SessionStatus::Active,
                device: Device::default(),
                expires_at: clock.now().saturating_add(Duration::from_secs(3600)),
            })
            .await
            .unwrap();
    }
    let soon = clock.now().saturating_add(Duration::from_secs(3600));
    for i in 0..9 {
        storage
            .sessions
            .revoke_token(tenant, &format!("jti-{i}"), soon)
            .await
            .unwrap();
    }
    let policy = RateLimitPolicy::per(10, Duration::from_secs(60));
    for i in 0..15 {
        storage
            .rate_limits
            .check(tenant, &format!("ip:10.0.0.{i}"), policy, 1)
            .await
            .unwrap();
    }
    for (i, category) in [
        AuditCategory::Compliance,
        AuditCategory::Security,
        AuditCategory::Operations,
    ]
    .into_iter()
    .cycle()
    .take(12)
    .enumerate()
    {
        let mut e = AuditEvent::new(tenant, clock.now(), category, "auth.checked");
        e.subject_user_id = Some(users[i % 3]);
        storage.audit.record(e).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while storage.outbox.depth().await.unwrap() > 0 {
        assert!(std::time::Instant::now() < deadline, "relay did not drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs maintenance until no job is busy (the start-up run may still hold a lease).
async fn maintain(storage: &Storage) -> BTreeMap<String, u64> {
    for _ in 0..50 {
        let reports = storage.run_maintenance().await;
        assert!(!reports.is_empty());
        if reports
            .iter()
            .any(|r| matches!(r.outcome, Ok(JobOutcome::Busy)))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return reports
            .into_iter()
            .map(|r| match r.outcome {
                Ok(JobOutcome::Done { removed, .. }) => (r.job, removed),
                other => panic!("{}: {other:?}", r.job),
            })
            .collect();
    }
    panic!("a job stayed busy");
}

/// Traffic, then time past every expiry and retention, then one maintenance run: every count
/// is back at its baseline but users' and consents'. Returns the counts after traffic.
async fn back_to_baseline(toml: &str) -> BTreeMap<String, u64> {
    let config = StorageConfig::from_toml_str(toml).unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let storage = Storage::connect_with_clock(&config, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let baseline = storage.stored_counts().await.unwrap();
    traffic(&storage, &clock).await;
    let grown = storage.stored_counts().await.unwrap();
    clock.advance(Duration::from_secs(4 * 86_400));
    let removed = maintain(&storage).await;
    let after = storage.stored_counts().await.unwrap();
    let kept = |key: &str| key.ends_with(".users") || key.ends_with(".consents");
    for (key, n) in &after {
        if kept(key) {
            assert_eq!(Some(n), grown.get(key), "{key} changed: {after:?}");
        } else if key.ends_with(".maintenance_leases") || key.ends_with(".lease") {
            // The start-up run may hold leases at the baseline; every run releases its own.
            assert_eq!(*n, 0, "{key}: a lease was not released: {after:?}");
        } else {
            assert_eq!(
                *n,
                baseline.get(key).copied().unwrap_or(0),
                "{key} not back to its baseline {baseline:?}: {after:?}"
            );
        }
    }
    assert_eq!(removed["sessions"], 29, "{removed:?}");
    assert_eq!(removed["rate-limits"], 15, "{removed:?}");
    assert_eq!(removed["outbox"], 16, "{removed:?}");
    for category in ["compliance", "security", "operations"] {
        // 4 recorded, plus the users' and the consent's own events.
        assert!(removed[&format!("audit-{category}")] >= 4, "{removed:?}");
    }
    // A partitioned log (PostgreSQL) has its partitions job; the others have none.
    assert_eq!(
        removed.contains_key("audit-partitions"),
        grown.contains_key("postgres.audit_events"),
        "{removed:?}"
    );
    let ready = storage.readiness().report().await;
    assert_eq!(ready.checks["maintenance"], "ok", "{ready:?}");
    storage.shutdown().await;
    grown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_maps_return_to_their_baseline() {
    let grown = back_to_baseline(MAINTENANCE).await;
    assert_eq!(grown["memory.sessions"], 20, "{grown:?}");
    assert_eq!(grown["memory.revoked_tokens"], 9);
    assert_eq!(grown["memory.rate_limits"], 15);
    assert_eq!(grown["memory.outbox"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tables_and_redis_keys_return_to_their_baseline() {
    let (Some(pg), Some(redis)) = (
        required("CREDO_TEST_POSTGRES_URL"),
        required("CREDO_TEST_REDIS_URL"),
    ) else {
        return;
    };
    let schema = unique("credo_m");
    let postgres_only = back_to_baseline(&format!(
        "[backends]\nusers = \"postgres\"\nsessions = \"postgres\"\nconsents = \"postgres\"\n\
         audit = \"postgres\"\nrate_limits = \"postgres\"\n{}{MAINTENANCE}",
        support::postgres(&pg, &schema),
    ))
    .await;
    assert_eq!(postgres_only["postgres.sessions"], 20, "{postgres_only:?}");
    assert_eq!(postgres_only["postgres.revoked_tokens"], 9);
    assert_eq!(postgres_only["postgres.rate_limits"], 15);
    assert_eq!(postgres_only["postgres.outbox"], 16);

    let schema2 = unique("credo_m");
    let with_redis = back_to_baseline(&format!(
        "[backends]\nusers = \"postgres\"\nconsents = \"postgres\"\naudit = \"postgres\"\n\
         sessions = \"redis\"\nrate_limits = \"redis\"\n{}{}rate_limit_time = \"clock\"\n{MAINTENANCE}",
        support::postgres(&pg, &schema2),
        support::redis(&redis, &unique("credo_m")),
    ))
    .await;
    assert_eq!(with_redis["redis.s"], 20, "{with_redis:?}");
    assert_eq!(with_redis["redis.jti"], 9);
    assert_eq!(with_redis["redis.rl"], 15);
    support::drop_schemas(&pg, &[&schema, &schema2]).await;
}
