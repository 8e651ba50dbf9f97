//! The health and metrics endpoints of PRD-020 FR-1, over any wired [`Storage`] readiness.
//! Kept in its own file so the readiness tests serve exactly this router.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use credo_storage::trace::{self, TRACEPARENT_HEADER, TraceParent};
use credo_storage::{Clock, Liveness, Readiness, ReadyStatus};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// What the handlers read.
pub struct App {
    /// One check per backend in use.
    pub readiness: Arc<Readiness>,
    /// For `uptime_seconds`.
    pub started: Instant,
    /// Renders `/metrics`; `None` serves an empty body.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// For timestamps.
    pub clock: Arc<dyn Clock>,
}

/// A Prometheus exporter that exports every histogram of credo-storage as a histogram with
/// the buckets of `credo_storage::telemetry::HISTOGRAMS` (not as a summary).
pub fn exporter() -> metrics_exporter_prometheus::PrometheusBuilder {
    use metrics_exporter_prometheus::Matcher;
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for (name, buckets) in credo_storage::telemetry::HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
            .expect("bucket lists are not empty");
    }
    builder
}

/// `GET /health/live`, `/health/ready`, `/health`, `/metrics`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn(trace_request))
        .with_state(app)
}

/// The request trace layer: an `http.request` span per request (method, route template,
/// status, trace id), and the request's W3C trace context made [`trace::current`] for the
/// handler, continuing the caller's `traceparent` header or starting a trace. Store calls and
/// audit events of the request carry it. The route template, not the path, is recorded, so a
/// path that holds an email or a token never reaches a span.
async fn trace_request(route: MatchedPath, req: Request, next: Next) -> Response {
    let caller = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse);
    let tp = caller.map_or_else(TraceParent::new_root, |c| c.child());
    let span = tracing::info_span!(
        "http.request",
        method = %req.method(),
        route = route.as_str(),
        trace_id = tp.trace_id().as_str(),
        span_id = tp.parent_id().as_str(),
        remote_parent_id = caller.map(|c| c.parent_id()).as_deref().unwrap_or(""),
        status = tracing::field::Empty,
    );
    let response = trace::in_trace(tp, next.run(req))
        .instrument(span.clone())
        .await;
    span.record("status", response.status().as_u16());
    response
}

/// 200 while the process serves requests; no I/O.
async fn live(State(app): State<Arc<App>>) -> Json<Liveness> {
    Json(Liveness::now(app.clock.as_ref()))
}

/// 200 `ready` or 503 `not_ready`, with every check and the reasons of those not ok.
async fn ready(State(app): State<Arc<App>>) -> Response {
    let report = app.readiness.report().await;
    let status = StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::OK);
    (status, Json(report.to_json())).into_response()
}

/// `healthy` (200) or `unhealthy` (503), version, uptime and checks.
async fn health(State(app): State<Arc<App>>) -> Response {
    let report = app.readiness.report().await;
    let status = StatusCode::from_u16(report.http_status()).unwrap_or(StatusCode::OK);
    let body = serde_json::json!({
        "status": if report.status == ReadyStatus::Ready { "healthy" } else { "unhealthy" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": app.started.elapsed().as_secs(),
        "checks": report.checks,
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
