//! The reference model: a deliberately naive implementation of every port, used as the test
//! oracle that each backend is compared against, operation by operation.
//!
//! Everything lives in one `World` of plain `Vec`s behind one mutex. Every method reads the
//! clock once, validates its input with the model's own rules (`rules`), then takes the lock
//! once and does all its work under it, so every operation is trivially atomic. Lookups are
//! linear scans and listings sort on read: clarity over speed, so that the model is obviously
//! correct and any disagreement points at the backend.
//!
//! The model is an independent oracle: it shares no decision logic with the code it checks.
//! Input rules and the email identity policy (`rules`), the records a change produces, the
//! audit events stores record (`events`), consent status, query matching, batch
//! deduplication, pagination and GCRA (`rate_limit`) are all written here, from DESIGN.md
//! and the port docs. From `credo_ports` it takes only the types, the trait definitions, the
//! documented limits (constants), and the outbox's wire encoding (`EncodedEvent::encode`,
//! `envelope::decode`), which is a data format the model must produce and read exactly.
//!
//! ```
//! use std::sync::Arc;
//! use credo_conformance::model::ModelStores;
//! use credo_ports::{ManualClock, NewUser, TenantId, Timestamp};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
//! let model = ModelStores::new(clock);
//! let tenant = TenantId::new();
//! let user = model.users().create(NewUser::new(tenant, "a@example.com", "A", "B")).await.unwrap();
//! assert_eq!(user.version, 1);
//! // The user.created event landed in the shared outbox.
//! assert_eq!(model.outbox().depth().await.unwrap(), 1);
//! # });
//! ```

mod audit;
mod consents;
mod events;
mod rate_limit;
pub(crate) mod rules;
mod sessions;
mod users;

/// The model's own rules, for cases that compute an expected value (so that they, too, share
/// nothing with the code under test).
pub(crate) use audit::matches as audit_query_matches;
pub(crate) use consents::status_at as consent_status;

use credo_ports::{
    AuditEvent, AuditLog, AuditRecorder, Clock, Consent, ConsentStore, Cursor, EncodedEvent,
    Outbox, Page, RateLimitStore, Session, SessionStore, TenantId, Timestamp, User, UserStore,
};
use parking_lot::Mutex;
use std::sync::Arc;

/// The whole state of the model. Plain vectors, scanned linearly.
#[derive(Debug, Default)]
pub(crate) struct World {
    /// Users of every tenant.
    pub(crate) users: Vec<User>,
    /// Sessions of every tenant, including expired ones not yet purged.
    pub(crate) sessions: Vec<Session>,
    /// Token revocation list of every tenant, including expired entries not yet purged.
    pub(crate) revoked_tokens: Vec<RevokedToken>,
    /// Consents of every tenant.
    pub(crate) consents: Vec<Consent>,
    /// Outbox rows, published or not, until `purge_published` removes them.
    pub(crate) outbox: Vec<OutboxRow>,
    /// Sequence number the next outbox row gets (enqueue order).
    pub(crate) next_seq: u64,
    /// The materialized audit log.
    pub(crate) log: Vec<AuditEvent>,
    /// GCRA state: one theoretical arrival time per (tenant, key).
    pub(crate) rate: Vec<RateEntry>,
}

/// One entry of the token revocation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RevokedToken {
    pub(crate) tenant: TenantId,
    pub(crate) jti: String,
    pub(crate) expires_at: Timestamp,
}

/// One outbox row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OutboxRow {
    pub(crate) message: EncodedEvent,
    /// Enqueue order; `claim` hands rows out in this order.
    pub(crate) seq: u64,
    pub(crate) enqueued_at: Timestamp,
    /// Held while `now < claimed_until` (by `token`, or by nobody during a retry delay).
    pub(crate) claimed_until: Option<Timestamp>,
    pub(crate) token: Option<credo_ports::ClaimToken>,
    pub(crate) published_at: Option<Timestamp>,
    pub(crate) dead_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
    pub(crate) attempts: u32,
    pub(crate) failures: u32,
}

impl OutboxRow {
    /// Neither published nor set aside.
    pub(crate) fn pending(&self) -> bool {
        self.published_at.is_none() && self.dead_at.is_none()
    }
}

/// GCRA state of one rate-limit key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RateEntry {
    pub(crate) tenant: TenantId,
    pub(crate) key: String,
    pub(crate) tat: Timestamp,
}

impl World {
    /// Appends `event` to the outbox at `now`. Callers hold the lock, so the row lands
    /// atomically with the change it describes.
    pub(crate) fn enqueue(&mut self, event: AuditEvent, now: Timestamp) {
        self.insert(EncodedEvent::encode(&event), now);
    }

    /// Appends an encoded row as it is, unless its id is there already.
    pub(crate) fn insert(&mut self, message: EncodedEvent, now: Timestamp) {
        if self.outbox.iter().any(|r| r.message.id == message.id) {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outbox.push(OutboxRow {
            message,
            seq,
            enqueued_at: now,
            claimed_until: None,
            token: None,
            published_at: None,
            dead_at: None,
            last_error: None,
            attempts: 0,
            failures: 0,
        });
    }
}

/// One page of a listing: `items` are every item after the requested position, already in
/// listing order; the page holds the first `limit` of them, and `next` is the position of the
/// last one returned when more remain (none when the page ends the listing, even exactly).
/// Removes at most `limit` elements that are `doomed`, the first ones in order; returns how
/// many. (Backends remove in their own order: cases compare counts and what remains.)
pub(crate) fn remove_up_to<T>(
    v: &mut Vec<T>,
    limit: std::num::NonZeroU32,
    doomed: impl Fn(&T) -> bool,
) -> u64 {
    let mut n = 0u64;
    v.retain(|x| {
        let gone = n < u64::from(limit.get()) && doomed(x);
        n += u64::from(gone);
        !gone
    });
    n
}

pub(crate) fn page_of<T>(
    mut items: Vec<T>,
    limit: usize,
    position: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let next = if more {
        items.last().map(position)
    } else {
        None
    };
    Page { items, next }
}

/// What every model store handle shares: the clock and the one locked world.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) world: Mutex<World>,
}

impl Inner {
    /// The store clock's now; read once at the start of every operation.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Every port of the reference model, sharing one world: user and consent mutations and
/// `AuditRecorder::record` all land in the same outbox, which the `Outbox` handle drains and
/// the model's sink materializes into the same audit log.
///
/// Cloning is cheap and yields handles onto the same world.
#[derive(Clone, Debug)]
pub struct ModelStores {
    inner: Arc<Inner>,
}

impl ModelStores {
    /// An empty model whose expiry decisions are taken against `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                world: Mutex::new(World::default()),
            }),
        }
    }

    /// The model's [`UserStore`].
    pub fn users(&self) -> Arc<dyn UserStore> {
        Arc::new(users::ModelUsers(self.inner.clone()))
    }

    /// The model's [`SessionStore`] (sessions and token revocation list).
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::new(sessions::ModelSessions(self.inner.clone()))
    }

    /// The model's [`ConsentStore`].
    pub fn consents(&self) -> Arc<dyn ConsentStore> {
        Arc::new(consents::ModelConsents(self.inner.clone()))
    }

    /// The model's [`AuditRecorder`]: `record` enqueues into the outbox.
    pub fn audit(&self) -> Arc<dyn AuditRecorder> {
        Arc::new(audit::ModelAudit(self.inner.clone()))
    }

    /// The model's [`AuditLog`]: `append_batch` materializes into the log.
    pub fn audit_log(&self) -> Arc<dyn AuditLog> {
        Arc::new(audit::ModelAudit(self.inner.clone()))
    }

    /// Writes an outbox row as given (as another program could have left it).
    pub fn enqueue_raw(&self, message: EncodedEvent) {
        let now = self.inner.now();
        self.inner.world.lock().insert(message, now);
    }

    /// The model's [`RateLimitStore`] (its own GCRA, independent of `credo_ports::rate_limit::gcra`).
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        Arc::new(rate_limit::ModelRateLimits(self.inner.clone()))
    }

    /// The model's relay-facing [`Outbox`].
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        Arc::new(audit::ModelOutbox(self.inner.clone()))
    }

    /// The model's sinks: each decodes every message on its own and appends it alone to the
    /// given log, in order; a message that cannot be decoded or is refused is rejected and the
    /// rest of its key held back.
    pub fn sinks(&self) -> crate::harness::SinkFactory {
        Arc::new(|log| Arc::new(audit::ModelSink(log)))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Shared fixtures of the model's unit tests.

    use super::ModelStores;
    use credo_ports::{ManualClock, Timestamp};
    use std::sync::Arc;

    /// Start of every test clock.
    pub(crate) const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    /// A fresh model and the manual clock that drives it.
    pub(crate) fn model() -> (ModelStores, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (ModelStores::new(clock.clone()), clock)
    }
}
