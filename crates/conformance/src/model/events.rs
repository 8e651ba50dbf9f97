//! The audit events the model's stores record with their own changes, built field by field
//! from their documentation (DESIGN.md §5: every user and consent change records an event
//! atomically with it; the port docs of the event builders give their fields), not with
//! `credo_ports::audit::events`.
//!
//! | action            | category   | subject | purpose | decision  | metadata                |
//! |-------------------|------------|---------|---------|-----------|-------------------------|
//! | `user.created`    | operations | user    | —       | —         | —                       |
//! | `user.updated`    | operations | user    | —       | —         | `fields`: changed names |
//! | `user.deleted`    | compliance | user    | —       | —         | —                       |
//! | `consent.granted` | compliance | user    | purpose | `granted` | —                       |
//! | `consent.revoked` | compliance | user    | purpose | `revoked` | —                       |
//! | `consent.deleted` | compliance | user    | purpose | —         | —                       |
//!
//! No PII: emails and names never appear. Ids are fresh UUIDv7 (`EventId::new`), stamped
//! with the store clock's now.

use credo_ports::{AuditCategory, AuditEvent, Consent, EventId, TenantId, Timestamp, User, UserId};
use serde_json::{Map, Value};

/// An event about user `subject` with every optional field empty.
fn about(
    tenant: TenantId,
    subject: UserId,
    now: Timestamp,
    category: AuditCategory,
    action: &str,
) -> AuditEvent {
    AuditEvent {
        id: EventId::new(),
        tenant_id: tenant,
        occurred_at: now,
        category,
        action: action.to_string(),
        actor: None,
        subject_user_id: Some(subject),
        purpose: None,
        decision: None,
        reason: None,
        request_id: None,
        metadata: Map::new(),
    }
}

/// `user.created`.
pub(crate) fn user_created(u: &User, now: Timestamp) -> AuditEvent {
    about(
        u.tenant_id,
        u.id,
        now,
        AuditCategory::Operations,
        "user.created",
    )
}

/// `user.updated`, with the names of the fields the update set in `metadata.fields`.
pub(crate) fn user_updated(u: &User, fields: &[&str], now: Timestamp) -> AuditEvent {
    let mut e = about(
        u.tenant_id,
        u.id,
        now,
        AuditCategory::Operations,
        "user.updated",
    );
    let names: Vec<Value> = fields
        .iter()
        .map(|f| Value::String(f.to_string()))
        .collect();
    e.metadata.insert("fields".to_string(), Value::Array(names));
    e
}

/// `user.deleted` (erasure).
pub(crate) fn user_deleted(tenant: TenantId, id: UserId, now: Timestamp) -> AuditEvent {
    about(tenant, id, now, AuditCategory::Compliance, "user.deleted")
}

/// A consent event: about the consent's user, naming its purpose.
fn consent(c: &Consent, now: Timestamp, action: &str, decision: Option<&str>) -> AuditEvent {
    let mut e = about(
        c.tenant_id,
        c.user_id,
        now,
        AuditCategory::Compliance,
        action,
    );
    e.purpose = Some(c.purpose.clone());
    e.decision = decision.map(str::to_string);
    e
}

/// `consent.granted` (a new grant or a renewal).
pub(crate) fn consent_granted(c: &Consent, now: Timestamp) -> AuditEvent {
    consent(c, now, "consent.granted", Some("granted"))
}

/// `consent.revoked`.
pub(crate) fn consent_revoked(c: &Consent, now: Timestamp) -> AuditEvent {
    consent(c, now, "consent.revoked", Some("revoked"))
}

/// `consent.deleted` (erasure).
pub(crate) fn consent_deleted(c: &Consent, now: Timestamp) -> AuditEvent {
    consent(c, now, "consent.deleted", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credo_ports::audit::events as ports;
    use credo_ports::{ConsentId, UserStatus};

    /// The model's events equal the ports' builders' but for the fresh id.
    #[test]
    fn events_agree_with_the_ports_builders() {
        let now = Timestamp::from_secs(1_700_000_000);
        let u = User {
            id: UserId::new(),
            tenant_id: TenantId::new(),
            email: "a@b.co".into(),
            email_verified: false,
            first_name: "A".into(),
            last_name: "B".into(),
            status: UserStatus::Active,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let c = Consent {
            id: ConsentId::new(),
            tenant_id: u.tenant_id,
            user_id: u.id,
            purpose: "marketing".into(),
            granted_at: now,
            expires_at: None,
            revoked_at: None,
            version: 1,
        };
        let same = |mut model: AuditEvent, ports: AuditEvent| {
            assert_ne!(model.id, ports.id, "fresh ids");
            model.id = ports.id;
            assert_eq!(model, ports);
        };
        same(user_created(&u, now), ports::user_created(&u, now));
        let fields = ["email", "status"];
        same(
            user_updated(&u, &fields, now),
            ports::user_updated(&u, &fields, now),
        );
        same(
            user_deleted(u.tenant_id, u.id, now),
            ports::user_deleted(u.tenant_id, u.id, now),
        );
        same(consent_granted(&c, now), ports::consent_granted(&c, now));
        same(consent_revoked(&c, now), ports::consent_revoked(&c, now));
        same(consent_deleted(&c, now), ports::consent_deleted(&c, now));
    }
}
