//! Facade of credo-storage: choose a backend per port by cargo feature and configuration, and
//! get every store as `Arc<dyn …>`, with the audit relay (and Kafka consumer) running and one
//! readiness check per backend in use.
//!
//! Moving a service from the in-memory default to PostgreSQL + Redis + Kafka is a change of
//! configuration (and cargo features), not of code:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use credo_storage::{Storage, StorageConfig, NewUser, TenantId};
//! // Every CREDO_* variable, or nothing at all: the in-memory default.
//! let storage = Storage::connect(&StorageConfig::default()).await.unwrap();
//! let user = storage.users.create(NewUser::new(TenantId::new(), "ada@example.com", "Ada", "L")).await.unwrap();
//! assert_eq!(storage.readiness().report().await.http_status(), 200);
//! storage.shutdown().await;
//! # });
//! ```
//!
//! Every store call is timed, and errors and rate-limit decisions counted, through the
//! `metrics` facade (names in [`telemetry`]); install any recorder to export them. Every store
//! call also runs in a `credo.store` span (`port`, `operation`, `backend`, `tenant`,
//! `trace_id`, `error_kind`; never an email, IP, key or token), and an audit event recorded
//! inside [`trace::in_trace`] carries that W3C trace context through the outbox and the Kafka
//! headers to the consumer's `credo.audit.materialize` span.
//!
//! Features: `inmemory` (default), `postgres`, `redis`, `kafka`. Choosing a backend whose
//! feature is not compiled in, or a combination the backends do not support (users in Redis,
//! say), fails at start-up with an error naming the setting.

pub mod config;
mod exported;
mod instrument;
mod maintenance;
mod wiring;

pub use config::{AuditSink, Backend, ConfigError, StorageConfig};
pub use credo_ports::*;
pub use wiring::{ShutdownReport, Storage, StorageError};

/// The audit pipeline: relay, consumer, direct sink (see its crate docs for the path).
pub use credo_pipeline as pipeline;

/// The embedded in-memory backend.
#[cfg(feature = "inmemory")]
pub use credo_adapters_inmemory as inmemory;
/// The Kafka audit transport.
#[cfg(feature = "kafka")]
pub use credo_adapters_kafka as kafka;
/// The PostgreSQL backend.
#[cfg(feature = "postgres")]
pub use credo_adapters_postgres as postgres;
/// The Redis backend.
#[cfg(feature = "redis")]
pub use credo_adapters_redis as redis;
