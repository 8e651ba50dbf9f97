//! Which ports a backend serves, declared once by each adapter (`CAPABILITIES`) and read by
//! the conformance harness, the facade's configuration checks and the docs.

use serde::Serialize;
use std::fmt;

/// A port a backend may serve (the rows of the conformance report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Port {
    /// [`crate::UserStore`].
    Users,
    /// [`crate::SessionStore`] with the token revocation list.
    Sessions,
    /// [`crate::ConsentStore`].
    Consents,
    /// [`crate::AuditRecorder`] and [`crate::AuditLog`].
    Audit,
    /// The relay-facing [`crate::Outbox`].
    Outbox,
    /// [`crate::RateLimitStore`].
    RateLimits,
    /// Leases on maintenance jobs ([`JobLeases`](crate::JobLeases)).
    Leases,
    /// The audit pipeline: store mutations and `record` -> outbox -> relay -> sink -> log.
    Pipeline,
}

impl Port {
    /// Every port, in report order.
    pub const ALL: [Port; 8] = [
        Port::Users,
        Port::Sessions,
        Port::Consents,
        Port::Audit,
        Port::Outbox,
        Port::RateLimits,
        Port::Leases,
        Port::Pipeline,
    ];

    /// The report spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Port::Users => "users",
            Port::Sessions => "sessions",
            Port::Consents => "consents",
            Port::Audit => "audit",
            Port::Outbox => "outbox",
            Port::RateLimits => "rate_limits",
            Port::Leases => "leases",
            Port::Pipeline => "pipeline",
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a backend implements a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Yes,
    /// Deliberately not implemented, with the reason (DESIGN §3).
    No(&'static str),
}

/// The ports one backend serves.
///
/// ```
/// use credo_ports::capability::{Capabilities, Port, Support};
/// const CACHE: Capabilities = Capabilities::new("cache", |port| match port {
///     Port::Sessions => Support::Yes,
///     _ => Support::No("a cache holds sessions only"),
/// });
/// assert!(CACHE.serves(Port::Sessions));
/// assert_eq!(CACHE.served(), [Port::Sessions]);
/// ```
#[derive(Clone, Copy)]
pub struct Capabilities {
    backend: &'static str,
    supports: fn(Port) -> Support,
}

impl Capabilities {
    /// `backend` (its configuration and report name) serves what `supports` says.
    pub const fn new(backend: &'static str, supports: fn(Port) -> Support) -> Self {
        Self { backend, supports }
    }

    /// A backend that serves every port.
    pub const fn every_port(backend: &'static str) -> Self {
        Self::new(backend, |_| Support::Yes)
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Whether it serves `port`, and why not.
    pub fn supports(&self, port: Port) -> Support {
        (self.supports)(port)
    }

    /// Whether it serves `port`.
    pub fn serves(&self, port: Port) -> bool {
        self.supports(port) == Support::Yes
    }

    /// The ports it serves, in report order.
    pub fn served(&self) -> Vec<Port> {
        Port::ALL.into_iter().filter(|p| self.serves(*p)).collect()
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capabilities")
            .field("backend", &self.backend)
            .field("served", &self.served())
            .finish()
    }
}
