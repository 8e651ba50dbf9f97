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
/// Counter, labels `backend`, `decision` (`allowed` or `denied`): rate-limit checks.
pub const RATE_LIMIT_CHECKS: &str = "credo_rate_limit_checks_total";
/// Counter, label `job`: rows the maintenance runner removed.
pub const MAINTENANCE_REMOVED: &str = "credo_maintenance_removed_total";
/// Histogram (seconds), label `job`: how long one run of a maintenance job took.
pub const MAINTENANCE_RUN_SECONDS: &str = "credo_maintenance_run_seconds";
/// Gauge (Unix seconds), label `job`: when the job last ran to the end on this instance.
pub const MAINTENANCE_LAST_SUCCESS: &str = "credo_maintenance_last_success_timestamp_seconds";
/// Counter, label `job`: maintenance runs that ended in a store error.
pub const MAINTENANCE_FAILURES: &str = "credo_maintenance_failures_total";
