//! The ports this backend serves, and why not the others (DESIGN §3).

use credo_ports::capability::{Capabilities, Port, Support};

/// Sessions (with the revocation list), rate limits and the leases of their maintenance jobs;
/// Redis is no system of record.
pub const CAPABILITIES: Capabilities = Capabilities::new("redis", |port| match port {
    Port::Sessions | Port::RateLimits | Port::Leases => Support::Yes,
    Port::Users => Support::No("Redis is not a user store: not a cache (DESIGN §3)"),
    Port::Consents => Support::No("consent read-model projection comes later (DESIGN §3)"),
    Port::Audit | Port::Outbox | Port::Pipeline => {
        Support::No("the audit log and outbox live in PostgreSQL (DESIGN §3)")
    }
});
