//! Names of the metrics credo-storage emits through the `metrics` facade. Install any
//! `metrics` recorder (e.g. a Prometheus exporter) to collect them; without one they cost a
//! relaxed atomic load each.
//!
//! No metric carries PII in its labels.

/// Counter: events the outbox relay published and acked.
pub const RELAY_PUBLISHED: &str = "credo_relay_published_events_total";
/// Counter: relay passes that failed (claim, publish or ack), each followed by a backoff.
pub const RELAY_FAILURES: &str = "credo_relay_failures_total";
/// Counter: events a sink rejected (each is retried after a delay, then set aside).
pub const RELAY_REJECTED: &str = "credo_relay_rejected_events_total";
/// Counter: outbox rows set aside as dead letters after repeated rejections.
pub const OUTBOX_DEAD_LETTERED: &str = "credo_outbox_dead_lettered_total";
/// Gauge: outbox rows currently set aside (dead letters waiting for an operator), sampled by
/// the relay.
pub const OUTBOX_DEAD_LETTERS: &str = "credo_outbox_dead_letters";
/// Histogram (seconds): how long one `EventSink::publish` of a batch took.
pub const RELAY_PUBLISH_SECONDS: &str = "credo_relay_publish_seconds";
/// Gauge: outbox rows not yet published nor set aside, sampled by the relay.
pub const OUTBOX_DEPTH: &str = "credo_outbox_depth";
/// Gauge (seconds): age of the oldest unpublished outbox row (0 when empty), sampled by the
/// relay: the relay lag.
pub const OUTBOX_OLDEST_PENDING_SECONDS: &str = "credo_outbox_oldest_pending_seconds";
/// Counter: messages the audit consumer read.
pub const CONSUMER_CONSUMED: &str = "credo_audit_consumer_consumed_total";
/// Counter: events the audit consumer wrote to the log.
pub const CONSUMER_MATERIALIZED: &str = "credo_audit_consumer_materialized_total";
/// Counter: redelivered events the log already held (absorbed duplicates).
pub const CONSUMER_DUPLICATES: &str = "credo_audit_consumer_duplicates_total";
/// Counter: messages sent to the dead-letter topic.
pub const CONSUMER_DEAD_LETTERED: &str = "credo_audit_consumer_dead_lettered_total";
/// Counter: failed writes that were retried.
pub const CONSUMER_WRITE_RETRIES: &str = "credo_audit_consumer_write_retries_total";
/// Counter: offset commits that failed.
pub const CONSUMER_COMMIT_FAILURES: &str = "credo_audit_consumer_commit_failures_total";
/// Counter: Kafka producers replaced after fatal errors or repeated failures.
pub const PRODUCER_REBUILDS: &str = "credo_kafka_producer_rebuilds_total";
/// Histogram (seconds), labels `port`, `operation`, `backend`: latency of every store call
/// made through the `credo-storage` facade.
pub const STORE_OPERATION_SECONDS: &str = "credo_store_operation_seconds";
/// Counter, labels `port`, `operation`, `backend`, `kind` (the `StoreError` kind): store calls
/// that returned an error.
pub const STORE_ERRORS: &str = "credo_store_errors_total";
/// Counter, labels `backend`, `decision` (`allowed` or `denied`), `class` (the key's prefix
/// before its first `:` when that is 1 to 24 ASCII lowercase letters, `_` or `-`, else
/// `other`: never the key itself): rate-limit checks.
pub const RATE_LIMIT_CHECKS: &str = "credo_rate_limit_checks_total";
/// Counter, label `job`: rows the maintenance runner removed.
pub const MAINTENANCE_REMOVED: &str = "credo_maintenance_removed_total";
/// Histogram (seconds), label `job`: how long one run of a maintenance job took.
pub const MAINTENANCE_RUN_SECONDS: &str = "credo_maintenance_run_seconds";
/// Gauge (Unix seconds), label `job`: when the job last ran to the end on this instance.
pub const MAINTENANCE_LAST_SUCCESS: &str = "credo_maintenance_last_success_timestamp_seconds";
/// Counter, label `job`: maintenance runs that ended in a store error.
pub const MAINTENANCE_FAILURES: &str = "credo_maintenance_failures_total";
/// Gauge (Unix seconds): when the outbox relay last completed a pass.
pub const RELAY_LAST_PASS: &str = "credo_relay_last_pass_timestamp_seconds";
/// Gauge (Unix seconds): when the audit consumer last completed a read (empty or written).
pub const CONSUMER_LAST_PASS: &str = "credo_audit_consumer_last_pass_timestamp_seconds";
/// Gauge, label `partition`: messages of the partition the audit consumer has not read yet
/// (high watermark minus its position), sampled every relay metrics interval.
pub const CONSUMER_LAG_MESSAGES: &str = "credo_audit_consumer_lag_messages";
/// Gauge (seconds), label `partition`: age of the newest message the audit consumer read from
/// the partition, when it read it (broker timestamp to now); 0 once the partition is read to
/// its end.
pub const CONSUMER_LAG_SECONDS: &str = "credo_audit_consumer_lag_seconds";
/// Histogram (seconds): from an event's enqueue in the outbox to its acknowledgement by the
/// sink (with the direct sink, its write into the log).
pub const RELAY_TIME_TO_ACK_SECONDS: &str = "credo_relay_enqueue_to_ack_seconds";
/// Histogram (seconds): from an event's enqueue in the outbox to its write into the audit log
/// by the Kafka consumer (the message's `enqueued_at_us` header against the consumer's wall
/// clock): the seed's time-to-persist.
pub const AUDIT_TIME_TO_PERSIST_SECONDS: &str = "credo_audit_enqueue_to_materialized_seconds";
/// Counter, label `operation` (`write` or `check`): token revocation calls that failed.
pub const REVOKED_TOKEN_FAILURES: &str = "credo_revoked_token_failures_total";
/// Counter: messages the Kafka producer could not deliver (each is retried by the relay).
pub const KAFKA_PRODUCE_ERRORS: &str = "credo_kafka_produce_errors_total";
/// Gauge, label `check`: the last readiness result of each check: 0 ok, 1 degraded, 2 failed.
pub const READINESS_CHECK_STATUS: &str = "credo_readiness_check_status";
/// Gauge (Unix seconds): when a readiness report last said ready.
pub const READINESS_LAST_READY: &str = "credo_readiness_last_ready_timestamp_seconds";
/// Gauge, labels `backend` (`postgres`, `redis`), `pool`, `state` (`max`, `open`, `idle`,
/// `in_use`): connection pool sizes, sampled with the readiness report.
pub const POOL_CONNECTIONS: &str = "credo_pool_connections";
/// Gauge (seconds): how long `Storage::connect` took (connections, migrations, tasks).
pub const STARTUP_SECONDS: &str = "credo_storage_startup_seconds";
/// Gauge (seconds): how long the last `Storage::shutdown` took.
pub const SHUTDOWN_SECONDS: &str = "credo_storage_shutdown_seconds";

/// The wall clock in Unix seconds, as the `*_timestamp_seconds` gauges hold it (0 before
/// 1970). The system clock, not a store's [`crate::Clock`]: alerts compare it with
/// Prometheus's `time()`.
#[must_use]
pub fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// One connection pool's sizes, as [`POOL_CONNECTIONS`] exports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool of the backend (`main`, `outbox`).
    pub pool: &'static str,
    /// Most connections it opens.
    pub max: u32,
    /// Connections open now.
    pub open: u32,
    /// Open connections not lent out now.
    pub idle: u32,
}

impl PoolStats {
    /// Connections lent out now.
    #[must_use]
    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}

/// Bucket bounds (seconds) for store calls: PRD-020's p99 targets are tens of milliseconds.
pub const CALL_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Bucket bounds (seconds) for the audit path: the seed wants events persisted within
/// seconds, and alerts on a lag of 5 minutes.
pub const PIPELINE_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];
/// Bucket bounds (seconds) for maintenance runs: from a no-op to an hour's purge.
pub const JOB_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Every histogram credo-storage records, with the buckets to export it with: give each to
/// your exporter (e.g. `PrometheusBuilder::set_buckets_for_metric(Matcher::Full(name),
/// buckets)`) so that they are Prometheus histograms, not summaries.
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (STORE_OPERATION_SECONDS, CALL_BUCKETS),
    (RELAY_PUBLISH_SECONDS, PIPELINE_BUCKETS),
    (RELAY_TIME_TO_ACK_SECONDS, PIPELINE_BUCKETS),
    (AUDIT_TIME_TO_PERSIST_SECONDS, PIPELINE_BUCKETS),
    (MAINTENANCE_RUN_SECONDS, JOB_BUCKETS),
];
