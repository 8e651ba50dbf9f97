//! Ports of credo-storage: the domain types and store traits that every backend implements.
//!
//! A service depends on these traits only (`Arc<dyn UserStore>`, `Arc<dyn SessionStore>`, ...),
//! so moving from the in-memory adapter to PostgreSQL, Redis or Kafka is a change of wiring.
//! This crate does no I/O: it holds the types, the [`StoreError`] every backend maps its driver
//! errors into, the [`Clock`] stores evaluate expiry against, input validation shared by all
//! backends (so bad input fails the same way everywhere, before any I/O), and health types.
//!
//! ```
//! use std::sync::Arc;
//! use credo_ports::{Clock, ManualClock, Timestamp};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000)));
//! clock.advance(std::time::Duration::from_secs(5));
//! assert_eq!(clock.now().as_micros(), 1_700_000_005_000_000);
//! ```

pub mod audit;
pub mod capability;
pub mod consents;
pub mod envelope;
pub mod error;
pub mod health;
pub mod ids;
pub mod leases;
pub mod outbox;
pub mod page;
pub mod partitions;
pub mod rate_limit;
pub mod redact;
pub mod secret;
pub mod sessions;
pub mod telemetry;
pub mod time;
pub mod trace;
pub mod users;
pub mod validate;
mod wall_clock;

pub use audit::{AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, AuditRecorder};
pub use consents::{Consent, ConsentFilter, ConsentStatus, ConsentStore, GrantConsent};
pub use envelope::EncodedEvent;
pub use error::{Cause, StoreError, StoreResult};
pub use health::{
    HealthCheck, HealthStatus, Liveness, Readiness, ReadinessReport, ReadyStatus, ReportObserver,
};
pub use ids::{ConsentId, EventId, SessionId, TenantId, UserId};
pub use leases::JobLeases;
pub use outbox::{
    Claim, ClaimToken, DeadLetter, Delivery, Disposition, EventSink, EventSource, Outbox,
    OutboxRecord, PartitionLag, SourceMessage,
};
pub use page::{Cursor, Page, PageRequest};
pub use rate_limit::{Decision, RateLimitPolicy, RateLimitStore};
pub use secret::SecretString;
pub use sessions::{Device, NewSession, Session, SessionStatus, SessionStore};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
pub use trace::TraceParent;
pub use users::{NewUser, User, UserStatus, UserStore, UserUpdate};

/// A purge's batch bound: [`std::num::NonZeroU32`], re-exported for callers of the purge methods.
pub use std::num::NonZeroU32;
