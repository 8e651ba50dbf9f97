//! What a backend supplies to get the whole suite: one small [`Harness`] implementation.

use async_trait::async_trait;
use credo_ports::{
    AuditLog, AuditRecorder, Clock, ConsentStore, EncodedEvent, EventSink, JobLeases, ManualClock,
    Outbox, RateLimitStore, SessionStore, StoreResult, Timestamp, UserStore,
};
use futures_util::future::BoxFuture;
use std::sync::Arc;

pub use credo_ports::capability::{Port, Support};

/// Builds the backend's sink writing into the given log (a test may pass a wrapper that
/// watches what arrives, in which order).
pub type SinkFactory = Arc<dyn Fn(Arc<dyn AuditLog>) -> Arc<dyn EventSink> + Send + Sync>;

/// Switches an injected fault on or off: while on, every write into the outbox fails (as a
/// full disk would make it), so every change that records an event must fail whole.
pub type OutboxFaults = Arc<dyn Fn(bool) -> BoxFuture<'static, StoreResult<()>> + Send + Sync>;

/// Writes an outbox row as given, as another program (an older or newer version, or damage)
/// could have left it.
pub type RawEnqueue =
    Arc<dyn Fn(EncodedEvent) -> BoxFuture<'static, StoreResult<()>> + Send + Sync>;

/// The stores of one backend, fresh and isolated from every other test, all reading one
/// [`ManualClock`]. Ports the backend does not implement are `None`.
#[derive(Clone)]
pub struct Stores {
    /// The clock every store evaluates time against; tests move it.
    pub clock: Arc<ManualClock>,
    /// User store.
    pub users: Option<Arc<dyn UserStore>>,
    /// Session store.
    pub sessions: Option<Arc<dyn SessionStore>>,
    /// Consent store.
    pub consents: Option<Arc<dyn ConsentStore>>,
    /// Audit recorder (into the outbox).
    pub audit: Option<Arc<dyn AuditRecorder>>,
    /// The materialized audit log.
    pub audit_log: Option<Arc<dyn AuditLog>>,
    /// Relay-facing outbox fed by the user, consent and audit stores.
    pub outbox: Option<Arc<dyn Outbox>>,
    /// The backend's sink, writing into a given log (normally `audit_log`).
    pub sink: Option<SinkFactory>,
    /// Writes raw outbox rows.
    pub raw_outbox: Option<RawEnqueue>,
    /// Makes outbox writes fail.
    pub outbox_faults: Option<OutboxFaults>,
    /// Rate limiter.
    pub rate_limits: Option<Arc<dyn RateLimitStore>>,
    /// Leases of the maintenance jobs.
    pub job_leases: Option<Arc<dyn JobLeases>>,
    /// Held until the last clone of these stores is dropped: a backend hangs the release of
    /// its isolation unit here (e.g. a PostgreSQL schema returned to the harness's free list).
    pub lease: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Stores {
    /// Store instants used by the suite start here: 2027-01-15T08:00:00.123457Z (a
    /// non-zero microsecond part, so truncation bugs show).
    pub const START: Timestamp = Timestamp::from_micros(1_800_000_000_123_457);

    /// A clock standing at [`Stores::START`].
    pub fn new_clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Self::START))
    }

    /// Current time of the shared clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

macro_rules! accessor {
    ($name:ident, $ty:ty) => {
        /// The store, or an error naming the port when the harness did not supply it.
        pub fn $name(&self) -> Result<$ty, String> {
            self.$name
                .clone()
                .ok_or_else(|| format!("harness supplied no {} store", stringify!($name)))
        }
    };
}

#[allow(missing_docs)]
impl Stores {
    accessor!(users, Arc<dyn UserStore>);
    accessor!(sessions, Arc<dyn SessionStore>);
    accessor!(consents, Arc<dyn ConsentStore>);
    accessor!(audit, Arc<dyn AuditRecorder>);
    accessor!(audit_log, Arc<dyn AuditLog>);
    accessor!(outbox, Arc<dyn Outbox>);
    accessor!(raw_outbox, RawEnqueue);
    accessor!(outbox_faults, OutboxFaults);
    accessor!(rate_limits, Arc<dyn RateLimitStore>);
    accessor!(job_leases, Arc<dyn JobLeases>);
}

impl Stores {
    /// The backend's sink into its own audit log.
    pub fn sink(&self) -> Result<Arc<dyn EventSink>, String> {
        self.sink_into(self.audit_log()?)
    }

    /// The backend's sink into `log`.
    pub fn sink_into(&self, log: Arc<dyn AuditLog>) -> Result<Arc<dyn EventSink>, String> {
        let factory = self.sink.as_ref().ok_or("harness supplied no sink store")?;
        Ok(factory(log))
    }
}

/// A [`SinkFactory`] of direct sinks.
pub fn direct_sinks() -> SinkFactory {
    Arc::new(|log| Arc::new(credo_pipeline::DirectSink::new(log)))
}

/// One backend under test.
///
/// A new backend gets the whole suite by implementing this in one file under
/// `crates/conformance-backends/src/` and listing it in that crate's `all()`.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Column name in the report (`inmemory`, `postgres`, ...).
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the backend's server cannot be reached: its cases are reported as
    /// skipped with that reason (a failure under `CREDO_TEST_REQUIRE=all`).
    async fn available(&self) -> Result<(), String>;
    /// Whether the backend implements `port`.
    fn supports(&self, port: Port) -> Support;
    /// Fresh, isolated stores reading `clock`.
    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String>;
    /// Whether the stores read real time (a server's `TIME`) instead of the injected clock.
    /// Only cases written for real time run then; the others are not applicable.
    fn reads_real_time(&self) -> bool {
        false
    }
    /// What the server saw of the case just passed, that the stores' answers cannot show:
    /// `Err(why)` fails it. The Redis columns check that the server refused none of the
    /// adapter's commands (its `ACL LOG`), so a command missing from the adapter's ACL rule
    /// fails the case that sends it, even where the adapter recovers from the refusal.
    async fn after_case(&self) -> Result<(), String> {
        Ok(())
    }
}
