//! The audit pipeline of credo-storage, read top to bottom:
//!
//! ```text
//!  service / store mutation
//!        │ record (same transaction as the change; the event is encoded once)
//!        ▼
//!     Outbox ──claim──▶ OutboxRelay ──publish──▶ EventSink
//!        ▲  ack / release / reject ◀──────────────┘   │
//!        │  (dead letters: listed, re-queued)          ├─ DirectSink ─────────────▶ AuditLog
//!                                                      └─ Kafka topic ─▶ EventSource
//!                                                              AuditConsumer ◀──┘ ──▶ AuditLog
//! ```
//!
//! - [`OutboxRelay`] ([`relay`]) claims rows from any [`Outbox`](credo_ports::Outbox),
//!   publishes them to any [`EventSink`](credo_ports::EventSink) unchanged, and acks,
//!   releases or rejects each one. Events of one `(tenant, subject)` leave in recording order
//!   however many relays run; a row the sink keeps rejecting is set aside and never blocks the
//!   rows behind it.
//! - [`AuditConsumer`] ([`consumer`]) reads any [`EventSource`](credo_ports::EventSource)
//!   (the Kafka topic), decodes each message once, writes the log with `append_batch`, sets
//!   aside what cannot be materialized, and commits only after the write.
//! - [`DirectSink`] ([`direct`]) is the sink of deployments without Kafka: it decodes and
//!   writes straight into the [`AuditLog`](credo_ports::AuditLog).
//! - [`Backoff`] ([`backoff`]) is the one retry policy of both loops.
//!
//! Both loops run until their stop signal turns true **or its sender is dropped**, so they end
//! with whatever owns them.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use credo_adapters_inmemory::InMemoryStores;
//! use credo_pipeline::{DirectSink, OutboxRelay, RelayConfig};
//! use credo_ports::{AuditCategory, AuditEvent, SystemClock, TenantId, Timestamp};
//!
//! let stores = InMemoryStores::new(Arc::new(SystemClock));
//! let event = AuditEvent::new(TenantId::new(), Timestamp::from_secs(1), AuditCategory::Security, "auth.login_failed");
//! stores.audit().record(event.clone()).await.unwrap();
//! let sink = Arc::new(DirectSink::new(stores.audit_log()));
//! let relay = OutboxRelay::new(stores.outbox(), sink, RelayConfig::default()).unwrap();
//! assert_eq!(relay.drain().await.unwrap(), 1);
//! assert_eq!(stores.audit_log().get(event.tenant_id, event.id).await.unwrap(), Some(event));
//! # });
//! ```

pub mod backoff;
pub mod consumer;
pub mod direct;
pub mod health;
pub mod maintenance;
pub mod relay;

pub use backoff::Backoff;
pub use consumer::{AuditConsumer, ConsumerConfig, ConsumerHandle, ConsumerStats};
pub use direct::DirectSink;
pub use health::{BacklogCheck, BacklogThresholds, Heartbeat, HeartbeatCheck};
pub use maintenance::{Job, Maintenance, MaintenanceConfig};
pub use relay::{OutboxRelay, RelayConfig, RelayPass, RelayStats};

use tokio::sync::watch;

/// True once `stop` holds `true` or its sender is gone.
pub(crate) fn is_stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Resolves once `stop` holds `true` or its sender is gone (never spins on a closed channel).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `pause` unless stopped first; `false` when stopped.
pub(crate) async fn pause_unless_stopped(
    pause: std::time::Duration,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => !is_stopped(stop),
        _ = stopped(stop) => false,
    }
}
