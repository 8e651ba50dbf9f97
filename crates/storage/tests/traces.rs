//! What a trace shows: a `credo.store` span per store call with its port, operation, backend,
//! tenant and trace id, and never an email, IP, rate-limit key or token; the example service's
//! request layer continuing a caller's `traceparent`; and (on PostgreSQL + Kafka) the trace
//! context of the call that recorded an audit event reaching the consumer's
//! `credo.audit.materialize` span through the outbox row and the Kafka headers.

#[path = "../examples/service/http.rs"]
#[allow(dead_code)]
mod http;
mod support;

use credo_storage::trace::{self, TraceParent};
use credo_storage::{
    AuditCategory, AuditEvent, Clock, NewUser, RateLimitPolicy, Storage, StorageConfig,
    SystemClock, TenantId,
};
use credo_testkit::{CapturedSpans, SpanRecord, unique_name as unique};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Values a trace must never hold, used by the scenario below.
const EMAIL: &str = "ada.secret@example.com";
const IP_KEY: &str = "ip:203.0.113.77";
const JTI: &str = "jti-d0n7-l34k-m3";

/// Runs a user create (and a refused duplicate), a token revocation and check, a rate-limit
/// check and an audit record inside `tp`, for `tenant`.
async fn scenario(storage: &Storage, tenant: TenantId, tp: TraceParent) -> AuditEvent {
    let event = AuditEvent::new(
        tenant,
        SystemClock.now(),
        AuditCategory::Security,
        "auth.login",
    );
    let recorded = event.clone();
    trace::in_trace(tp, async {
        storage
            .users
            .create(NewUser::new(tenant, EMAIL, "Ada", "L"))
            .await
            .unwrap();
        let duplicate = storage
            .users
            .create(NewUser::new(tenant, EMAIL, "Ada", "L"))
            .await;
        assert!(duplicate.is_err());
        let expires = SystemClock.now().saturating_add(Duration::from_secs(600));
        storage
            .sessions
            .revoke_token(tenant, JTI, expires)
            .await
            .unwrap();
        assert!(
            storage
                .sessions
                .is_token_revoked(tenant, JTI)
                .await
                .unwrap()
        );
        let policy = RateLimitPolicy::per(5, Duration::from_secs(60));
        storage
            .rate_limits
            .check(tenant, IP_KEY, policy, 1)
            .await
            .unwrap();
        storage.audit.record(recorded).await.unwrap();
    })
    .await;
    event
}

/// The `credo.store` spans of the scenario, checked field by field; returns them.
fn check_store_spans(
    spans: &CapturedSpans,
    tenant: TenantId,
    tp: TraceParent,
    backends: &[(&str, &str)],
) -> Vec<SpanRecord> {
    let tenant = tenant.to_string();
    let mine: Vec<SpanRecord> = spans
        .named("credo.store")
        .into_iter()
        .filter(|s| s.field("tenant") == Some(tenant.as_str()))
        .collect();
    for (port, operation) in [
        ("users", "create"),
        ("sessions", "revoke_token"),
        ("sessions", "is_token_revoked"),
        ("rate_limits", "check"),
        ("audit", "record"),
    ] {
        let span = mine
            .iter()
            .find(|s| s.field("port") == Some(port) && s.field("operation") == Some(operation))
            .unwrap_or_else(|| panic!("no span for {port}.{operation}: {mine:#?}"));
        assert_eq!(
            span.field("trace_id"),
            Some(tp.trace_id().as_str()),
            "{span:?}"
        );
        let backend = backends
            .iter()
            .find(|(p, _)| *p == port)
            .map_or("inmemory", |(_, b)| b);
        assert_eq!(span.field("backend"), Some(backend), "{span:?}");
    }
    let refused: Vec<_> = mine
        .iter()
        .filter(|s| s.field("operation") == Some("create"))
        .filter_map(|s| s.field("error_kind"))
        .collect();
    assert_eq!(
        refused,
        ["Conflict"],
        "the duplicate's span names its error"
    );
    mine
}

/// No span of the whole process holds the scenario's secrets, in any field.
fn check_no_secret_anywhere(spans: &CapturedSpans) {
    for span in spans.all() {
        for (name, value) in &span.fields {
            for secret in [EMAIL, "203.0.113.77", JTI] {
                assert!(
                    !value.contains(secret),
                    "span {} field {name} holds {secret:?}: {span:?}",
                    span.name
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_calls_are_spans_with_their_tenant_and_trace_and_no_user_data() {
    let spans = CapturedSpans::install();
    let storage = Storage::connect(&StorageConfig::default()).await.unwrap();
    let (tenant, tp) = (TenantId::new(), TraceParent::new_root());
    scenario(&storage, tenant, tp).await;
    check_store_spans(&spans, tenant, tp, &[]);
    check_no_secret_anywhere(&spans);
    storage.shutdown().await;
}

/// A plain HTTP/1.1 GET with extra headers: the status.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw)[9..12].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_layer_continues_the_callers_trace_or_starts_one() {
    let spans = CapturedSpans::install();
    let storage = Storage::connect(&StorageConfig::default()).await.unwrap();
    let app = Arc::new(http::App {
        readiness: storage.readiness(),
        started: Instant::now(),
        metrics: None,
        clock: Arc::new(SystemClock),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, http::router(app)).await.unwrap() });

    let caller = TraceParent::new_root();
    let status = get(addr, "/health/ready", &format!("traceparent: {caller}\r\n")).await;
    assert_eq!(status, 200);
    let requests = spans.named("http.request");
    let continued = requests
        .iter()
        .find(|s| s.field("trace_id") == Some(caller.trace_id().as_str()))
        .unwrap_or_else(|| panic!("no request span in the caller's trace: {requests:#?}"));
    assert_eq!(
        continued.field("remote_parent_id"),
        Some(caller.parent_id().as_str())
    );
    assert_ne!(
        continued.field("span_id"),
        Some(caller.parent_id().as_str())
    );
    assert_eq!(continued.field("route"), Some("/health/ready"));
    assert_eq!(continued.field("status"), Some("200"));

    // A malformed header starts a trace of its own; nothing fails.
    let before = spans.named("http.request").len();
    assert_eq!(
        get(addr, "/health/live", "traceparent: 00-zz\r\n").await,
        200
    );
    let fresh: Vec<_> = spans.named("http.request")[before..]
        .iter()
        .filter(|s| s.field("route") == Some("/health/live"))
        .cloned()
        .collect();
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    assert_eq!(fresh[0].field("remote_parent_id"), Some(""));
    assert_eq!(fresh[0].field("trace_id").map(str::len), Some(32));
    // Paths no route matches are not traced, so a path holding user data never reaches one.
    assert_eq!(get(addr, "/users/ada.secret@example.com", "").await, 404);
    check_no_secret_anywhere(&spans);
    storage.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_events_trace_reaches_the_consumers_span_through_outbox_and_kafka() {
    let spans = CapturedSpans::install();
    let Some((pg, redis, kafka)) = support::servers() else {
        return;
    };
    let schema = unique("credo_traces");
    let topic = unique("credo.traces");
    let config = StorageConfig::from_toml_str(&format!(
        "[backends]\nusers = \"postgres\"\nconsents = \"postgres\"\naudit = \"postgres\"\n\
         sessions = \"redis\"\nrate_limits = \"redis\"\naudit_sink = \"kafka\"\n\
         [relay]\nidle_poll_ms = 10\n{}{}{}",
        support::postgres(&pg, &schema),
        support::redis(&redis, &unique("credo_traces")),
        support::kafka(&kafka, &topic, 1),
    ))
    .unwrap();
    let storage = Storage::connect(&config).await.unwrap();
    let (tenant, tp) = (TenantId::new(), TraceParent::new_root());
    let event = scenario(&storage, tenant, tp).await;
    check_store_spans(
        &spans,
        tenant,
        tp,
        &[
            ("users", "postgres"),
            ("audit", "postgres"),
            ("sessions", "redis"),
            ("rate_limits", "redis"),
        ],
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let materialized = loop {
        let found = spans
            .named("credo.audit.materialize")
            .into_iter()
            .find(|s| s.field("event_id") == Some(event.id.to_string().as_str()));
        if let Some(s) = found.filter(|s| s.field("outcome").is_some()) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the event was not materialized within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(materialized.field("trace_id"), Some(tp.trace_id().as_str()));
    assert_eq!(
        materialized.field("remote_parent_id"),
        Some(tp.parent_id().as_str())
    );
    assert_eq!(materialized.field("outcome"), Some("materialized"));
    assert_eq!(materialized.parent.as_deref(), Some("credo.audit.consume"));
    assert_eq!(
        storage.audit_log.get(tenant, event.id).await.unwrap(),
        Some(event)
    );
    let relayed = spans.named("credo.relay.pass");
    assert!(
        relayed.iter().any(|s| s.field("published").is_some()),
        "{relayed:#?}"
    );
    check_no_secret_anywhere(&spans);

    storage.shutdown().await;
    support::drop_schemas(&pg, &[&schema]).await;
}
