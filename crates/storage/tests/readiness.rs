//! The example service's health endpoints against real servers of the test's own:
//! `/health/ready` turns 503 (naming the failed check) when PostgreSQL is stopped and when the
//! broker or Redis is unreachable, and back to 200 after recovery; `/health/live` stays 200.

#[path = "../examples/service/http.rs"]
mod http;
mod support;

use credo_storage::{ManualClock, Storage, StorageConfig, Timestamp};
use credo_testkit::{PrivatePostgres, PrivateTansu};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET: status and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The report's reason for `check` says what failed, but names no host, port or user of
/// `address` and holds none of the driver's words: anyone who can probe reads it.
fn assert_no_host_or_driver_text(body: &serde_json::Value, check: &str, address: &str) {
    let why = body["details"][check]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(!why.is_empty(), "{check}: no reason in {body}");
    let parts = address
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '.')
        .filter(|p| p.len() >= 4 && *p != "postgres" && *p != "postgresql");
    for leak in parts.chain(["refused", "os error", "127.0.0.1", "localhost"]) {
        assert!(
            !why.contains(&leak.to_lowercase()),
            "{check}'s reason holds {leak:?}: {why}"
        );
    }
}

/// Polls `/health/ready` until it answers `status`; returns the body and how long it took.
async fn ready_becomes(
    addr: std::net::SocketAddr,
    status: u16,
    within: Duration,
) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    loop {
        let (s, body) = get(addr, "/health/ready").await;
        if s == status {
            return (serde_json::from_str(&body).unwrap(), started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "/health/ready still {s} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_when_postgres_or_the_broker_is_down_and_back_after_recovery() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let Some(broker) = PrivateTansu::start().await else {
        return;
    };
    let config = StorageConfig::from_toml_str(&format!(
        r#"
        health_timeout_ms = 1000
        [backends]
        users = "postgres"
        consents = "postgres"
        audit = "postgres"
        audit_sink = "kafka"
        [postgres]
        url = "{url}"
        migrate = true
        acquire_timeout_ms = 1000
        [kafka]
        brokers = "{brokers}"
        ensure_topics = true
        partitions = 1
        replication = 1
        min_insync_replicas = 1
        session_timeout_ms = 6000
        heartbeat_interval_ms = 1000
        max_poll_interval_ms = 7000
        "#,
        url = pg.url(),
        brokers = broker.brokers(),
    ))
    .unwrap();
    let metrics = http::exporter().install_recorder().unwrap();
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let storage = Storage::connect_with_clock(&config, clock.clone())
        .await
        .unwrap();
    let app = Arc::new(http::App {
        readiness: storage.readiness(),
        started: Instant::now(),
        metrics: Some(metrics),
        clock,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, http::router(app)).await.unwrap();
    });

    let (body, _) = ready_becomes(addr, 200, Duration::from_secs(10)).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["kafka"], "ok");
    let (s, live) = get(addr, "/health/live").await;
    assert_eq!(s, 200);
    assert!(live.contains(r#""status":"ok""#), "{live}");
    let (s, health) = get(addr, "/health").await;
    assert_eq!(s, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let (s, metrics) = get(addr, "/metrics").await;
    assert_eq!(s, 200);
    assert!(metrics.contains("credo_outbox_depth"), "{metrics}");

    tokio::task::block_in_place(|| pg.stop());
    let (body, took) = ready_becomes(addr, 503, Duration::from_secs(10)).await;
    println!("postgres stopped: /health/ready 503 after {took:?}: {body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "failed");
    assert_eq!(body["checks"]["kafka"], "ok");
    assert_no_host_or_driver_text(&body, "database", &pg.url());
    assert_eq!(get(addr, "/health/live").await.0, 200);
    assert_eq!(get(addr, "/health").await.0, 503);
    tokio::task::block_in_place(|| pg.resume());
    let (_, took) = ready_becomes(addr, 200, Duration::from_secs(20)).await;
    println!("postgres back: /health/ready 200 after {took:?}");

    broker.proxy.cut();
    let (body, took) = ready_becomes(addr, 503, Duration::from_secs(10)).await;
    println!("broker cut off: /health/ready 503 after {took:?}: {body}");
    assert_eq!(body["checks"]["kafka"], "failed");
    assert_eq!(body["checks"]["database"], "ok");
    assert_no_host_or_driver_text(&body, "kafka", &broker.brokers());
    broker.proxy.restore();
    let (_, took) = ready_becomes(addr, 200, Duration::from_secs(30)).await;
    println!("broker reachable again: /health/ready 200 after {took:?}");

    server.abort();
    let report = storage.shutdown().await;
    assert!(report.aborted.is_empty(), "{report:?}");
}

/// A quiet audit topic is not a stalled consumer: with no event at all for three stall
/// limits, the `audit-consumer` and `relay` checks stay ok (the Kafka read used to wait for a
/// first message forever, so an idle consumer never beat and failed readiness after the
/// limit). A limit no longer than the consumer's idle wait is refused at start-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_consumer_stays_ready() {
    let (Some(pg), Some(kafka)) = (
        credo_testkit::required("CREDO_TEST_POSTGRES_URL"),
        credo_testkit::required("CREDO_TEST_KAFKA_BROKERS"),
    ) else {
        return;
    };
    let schema = credo_testkit::unique_name("credo_idle");
    let topic = credo_testkit::unique_name("credo.idle");
    let toml = |stall_ms: u64| {
        format!(
            "[backends]\nusers = \"postgres\"\nconsents = \"postgres\"\naudit = \"postgres\"\n\
             audit_sink = \"kafka\"\n[readiness]\ncache_ms = 0\nstall_after_ms = {stall_ms}\n{}{}",
            support::postgres(&pg, &schema),
            support::kafka(&kafka, &topic, 1),
        )
    };
    let refused = Storage::connect(&StorageConfig::from_toml_str(&toml(1000)).unwrap())
        .await
        .err()
        .expect("a stall limit of the idle wait is refused")
        .to_string();
    assert!(refused.contains("readiness.stall_after_ms"), "{refused}");

    let stall = Duration::from_millis(2500);
    let config = StorageConfig::from_toml_str(&toml(stall.as_millis() as u64)).unwrap();
    let storage = Storage::connect(&config).await.unwrap();
    let idle_until = Instant::now() + stall * 3;
    while Instant::now() < idle_until {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let report = storage.readiness().report().await;
        let json = report.to_json();
        assert_eq!(json["checks"]["audit-consumer"], "ok", "{json}");
        assert_eq!(json["checks"]["relay"], "ok", "{json}");
    }
    storage.shutdown().await;
    support::drop_schemas(&pg, &[&schema]).await;
}

/// Redis behind a proxy that is cut: `/health/ready` turns 503 naming `redis`, with a reason
/// that holds neither the address nor the driver's words, and 200 again once it is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_when_redis_is_cut_off_without_leaking_its_address() {
    let Some(redis) = credo_testkit::required("CREDO_TEST_REDIS_URL") else {
        return;
    };
    // redis://[user:pass@]127.0.0.1:PORT[/db]: the port is the last `:` of the authority.
    let (scheme, rest) = redis.split_once("://").unwrap();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = authority.rsplit_once(':').unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = credo_testkit::Proxy::start(listener, port.parse().unwrap());
    let via = format!("{scheme}://{host}:{}/{path}", proxy.port());
    let prefix = credo_testkit::unique_name("ready");
    let config = StorageConfig::from_toml_str(&format!(
        "health_timeout_ms = 1000\n[backends]\nsessions = \"redis\"\nrate_limits = \"redis\"\n{}",
        support::redis(&via, &prefix)
    ))
    .unwrap();
    let storage = Storage::connect(&config).await.unwrap();
    let readiness = storage.readiness();

    let report = readiness.report().await;
    assert_eq!(report.http_status(), 200, "{report:?}");
    proxy.cut();
    let started = Instant::now();
    let failed = loop {
        let report = readiness.report().await;
        if report.http_status() == 503 {
            break report;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let body = failed.to_json();
    println!(
        "redis cut off: not ready after {:?}: {body}",
        started.elapsed()
    );
    assert_eq!(body["checks"]["redis"], "failed", "{body}");
    assert_no_host_or_driver_text(&body, "redis", &via);
    proxy.restore();
    let started = Instant::now();
    while readiness.report().await.http_status() != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "redis not ready again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = storage.shutdown().await;
    assert!(report.aborted.is_empty(), "{report:?}");
}
