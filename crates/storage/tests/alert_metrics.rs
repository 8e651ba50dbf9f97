//! Every metric an alert rule of `deploy/prometheus/` names is exported by the example
//! service (its `/metrics`) after a short scenario on PostgreSQL + Redis + Kafka: a rule over
//! a metric nobody exports would never fire.

#[path = "../examples/service/http.rs"]
mod http;

use credo_storage::{
    AuditCategory, AuditEvent, AuditQuery, Clock, NewUser, RateLimitPolicy, Storage, StorageConfig,
    SystemClock, TenantId,
};
use credo_testkit::{required, unique_name as unique};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `credo_*` metric names in the `expr` of every rule of every file in
/// `deploy/prometheus/` (`*.yml`, tests excluded).
fn names_in_rules() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let dir = root().join("deploy/prometheus");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        files += 1;
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                let expr = rule["expr"].as_str().unwrap();
                names.extend(metric_names(expr));
            }
        }
    }
    assert!(files > 0, "no rule file in {}", dir.display());
    names
}

/// `credo_*` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("credo_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Metric family names in a Prometheus text exposition (histogram series folded into their
/// family).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let name = l.split(['{', ' ']).next().unwrap_or("");
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_string()
        })
        .collect()
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_an_alert_names_is_exported_after_a_scenario() {
    let rules = names_in_rules();
    assert!(rules.len() >= 10, "{rules:?}");
    let (Some(pg), Some(redis), Some(kafka)) = (
        required("CREDO_TEST_POSTGRES_URL"),
        required("CREDO_TEST_REDIS_URL"),
        required("CREDO_TEST_KAFKA_BROKERS"),
    ) else {
        return;
    };
    let schema = unique("credo_alerts");
    let topic = unique("credo.alerts");
    let config = StorageConfig::from_toml_str(&format!(
        r#"
        [backends]
        users = "postgres"
        consents = "postgres"
        audit = "postgres"
        sessions = "redis"
        rate_limits = "redis"
        audit_sink = "kafka"
        [postgres]
        url = "{pg}"
        schema = "{schema}"
        migrate = true
        [redis]
        url = "{redis}"
        key_prefix = "{prefix}"
        [kafka]
        brokers = "{kafka}"
        topic = "{topic}"
        dlq_topic = "{topic}.dlq"
        group_id = "{topic}"
        ensure_topics = true
        partitions = 1
        replication = 1
        min_insync_replicas = 1
        session_timeout_ms = 6000
        heartbeat_interval_ms = 1000
        max_poll_interval_ms = 7000
        fetch_wait_max_ms = 10
        [relay]
        idle_poll_ms = 10
        [readiness]
        report_every_ms = 100
        "#,
        prefix = unique("credo_alerts"),
    ))
    .unwrap();
    let metrics = http::exporter().install_recorder().unwrap();
    let storage = Storage::connect(&config).await.unwrap();
    let app = Arc::new(http::App {
        readiness: storage.readiness(),
        started: Instant::now(),
        metrics: Some(metrics),
        clock: Arc::new(SystemClock),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, http::router(app)).await.unwrap();
    });

    // The scenario: a user (and a refused one), a session and its token revoked and checked,
    // rate-limit checks past the limit, an audit event through Kafka into the log.
    let tenant = TenantId::new();
    let user = storage
        .users
        .create(NewUser::new(tenant, "ada@example.com", "Ada", "L"))
        .await
        .unwrap();
    let refused = storage
        .users
        .create(NewUser::new(tenant, "not an email", "Ada", "L"))
        .await;
    assert!(refused.is_err());
    let soon = SystemClock.now().saturating_add(Duration::from_secs(60));
    storage
        .sessions
        .revoke_token(tenant, "jti-1", soon)
        .await
        .unwrap();
    assert!(
        storage
            .sessions
            .is_token_revoked(tenant, "jti-1")
            .await
            .unwrap()
    );
    let policy = RateLimitPolicy::per(1, Duration::from_secs(60));
    for _ in 0..2 {
        storage
            .rate_limits
            .check(tenant, "login:ada", policy, 1)
            .await
            .unwrap();
    }
    let mut e = AuditEvent::new(
        tenant,
        SystemClock.now(),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.subject_user_id = Some(user.id);
    storage.audit.record(e).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while storage
        .audit_log
        .count(tenant, AuditQuery::default())
        .await
        .unwrap()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "events not materialized through Kafka"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in storage.run_maintenance().await {
        assert!(r.outcome.is_ok(), "{}: {:?}", r.job, r.outcome);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = get(addr, "/metrics").await;
    let have = exported(&text);
    let missing: Vec<_> = rules.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named by alert rules but not exported: {missing:?}\nexported: {have:?}"
    );
    // Histograms are Prometheus histograms (buckets), not summaries.
    assert!(
        text.contains("credo_store_operation_seconds_bucket{"),
        "{text}"
    );
    // Rate-limit checks carry the key's class, never the key.
    assert!(text.contains(r#"class="login""#), "{text}");
    assert!(
        !text.contains("ada@example.com"),
        "a raw value in a label: {text}"
    );
    storage.shutdown().await;
    let mut c = credo_storage::postgres::PgConfig::new(pg);
    c.schema = Some(schema);
    credo_storage::postgres::PgStores::connect(&c, Arc::new(SystemClock))
        .await
        .unwrap()
        .drop_schema()
        .await
        .unwrap();
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(r#"sum by (job) (increase(credo_maintenance_failures_total[30m])) >= 3"#),
        ["credo_maintenance_failures_total"]
    );
    assert_eq!(
        metric_names(
            r#"credo_pool_connections{state="in_use"} / ignoring(state) credo_pool_connections{state="max"}"#
        ),
        ["credo_pool_connections", "credo_pool_connections"]
    );
    let text = "# TYPE credo_a_seconds histogram\ncredo_a_seconds_bucket{le=\"1\"} 1\ncredo_a_seconds_sum 1\ncredo_b_total 0\n";
    assert_eq!(
        exported(text).into_iter().collect::<Vec<_>>(),
        ["credo_a_seconds", "credo_b_total"]
    );
}
