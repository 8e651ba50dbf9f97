//! The model's [`AuditRecorder`], [`AuditLog`], [`Outbox`] and sink, over one world: `record`
//! and the other stores enqueue into `World::outbox`; `append_batch` and the sink materialize
//! into `World::log`.
//!
//! The recorder and the log are in `log`, the relay-facing outbox in `outbox`, the sink in
//! `sink`, and their unit tests in `tests`.
//!
//! [`AuditRecorder`]: credo_ports::AuditRecorder
//! [`AuditLog`]: credo_ports::AuditLog
//! [`Outbox`]: credo_ports::Outbox

mod log;
mod outbox;
mod sink;
#[cfg(test)]
mod tests;

pub(crate) use log::{ModelAudit, matches};
pub(crate) use outbox::ModelOutbox;
pub(crate) use sink::ModelSink;

use credo_ports::{EncodedEvent, TenantId, UserId};

/// The order key of a message: its tenant and subject. Rows of one key leave in enqueue order.
fn order_key(m: &EncodedEvent) -> (TenantId, Option<UserId>) {
    (m.tenant_id, m.subject)
}
