//! The message format on `credo.audit.events`, version 1.
//!
//! - **key**: `<tenant_id>:<subject_user_id>`, or `<tenant_id>:` when the event concerns no
//!   user, so one subject's events land on one partition and stay in order;
//! - **headers** (UTF-8): `event_id`, `event_type` (the action, e.g. `consent.granted`),
//!   `tenant_id`, `schema_version` (`1`);
//! - **value**: a JSON object `{"schema_version": 1, "event": {...}}` where `event` has the
//!   fields of [`AuditEvent`]: `id`, `tenant_id` (UUID strings), `occurred_at` (RFC 3339 with
//!   microseconds), `category` (`compliance`, `security` or `operations`), `action`, `actor`,
//!   `subject_user_id`, `purpose`, `decision`, `reason`, `request_id` (string or null) and
//!   `metadata` (object).
//!
//! A reader accepts any version up to [`SCHEMA_VERSION`] and rejects newer ones, so a consumer
//! that is older than its producers sends their messages to the dead-letter topic instead of
//! misreading them.
//!
//! ```
//! use credo_adapters_kafka::envelope;
//! use credo_ports::{AuditCategory, AuditEvent, TenantId, Timestamp};
//! let event = AuditEvent::new(TenantId::new(), Timestamp::from_micros(0), AuditCategory::Security, "auth.login_failed");
//! let value = envelope::encode(&event);
//! assert_eq!(envelope::decode(Some(&value)).unwrap(), event);
//! assert!(envelope::decode(Some(b"{\"schema_version\":2,\"event\":{}}")).is_err());
//! ```

use credo_ports::AuditEvent;
use serde::{Deserialize, Serialize};

/// The version this crate writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Out<'a> {
    schema_version: u32,
    event: &'a AuditEvent,
}

#[derive(Deserialize)]
struct In {
    schema_version: u32,
    event: serde_json::Value,
}

/// The message key of `event`.
pub fn key(event: &AuditEvent) -> String {
    match event.subject_user_id {
        Some(u) => format!("{}:{}", event.tenant_id, u),
        None => format!("{}:", event.tenant_id),
    }
}

/// The headers of `event` as `(name, value)` pairs.
pub fn headers(event: &AuditEvent) -> [(&'static str, String); 4] {
    [
        ("event_id", event.id.to_string()),
        ("event_type", event.action.clone()),
        ("tenant_id", event.tenant_id.to_string()),
        ("schema_version", SCHEMA_VERSION.to_string()),
    ]
}

/// The message value of `event`.
pub fn encode(event: &AuditEvent) -> Vec<u8> {
    serde_json::to_vec(&Out {
        schema_version: SCHEMA_VERSION,
        event,
    })
    .expect("an AuditEvent always serializes")
}

/// Reads a message value; `Err` says why it cannot be materialized (the dead-letter reason).
pub fn decode(value: Option<&[u8]>) -> Result<AuditEvent, String> {
    let bytes = value.ok_or("message has no value")?;
    let envelope: In =
        serde_json::from_slice(bytes).map_err(|e| format!("not a v1 envelope: {e}"))?;
    if envelope.schema_version == 0 || envelope.schema_version > SCHEMA_VERSION {
        return Err(format!(
            "unsupported schema_version {} (this consumer reads 1..={SCHEMA_VERSION})",
            envelope.schema_version
        ));
    }
    let event: AuditEvent =
        serde_json::from_value(envelope.event).map_err(|e| format!("bad event: {e}"))?;
    event
        .validate()
        .map_err(|e| format!("event {} rejected: {e}", event.id))?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credo_ports::{AuditCategory, TenantId, Timestamp, UserId};

    fn event() -> AuditEvent {
        let mut e = AuditEvent::new(
            TenantId::new(),
            Timestamp::from_micros(1_800_000_000_123_457),
            AuditCategory::Compliance,
            "consent.granted",
        );
        e.subject_user_id = Some(UserId::new());
        e.purpose = Some("marketing".into());
        e.metadata.insert("n".into(), 1.into());
        e
    }

    #[test]
    fn round_trips_and_keys_by_subject() {
        let e = event();
        assert_eq!(decode(Some(&encode(&e))).unwrap(), e);
        assert_eq!(
            key(&e),
            format!("{}:{}", e.tenant_id, e.subject_user_id.unwrap())
        );
        let h = headers(&e);
        assert_eq!(h[0], ("event_id", e.id.to_string()));
        assert_eq!(h[1], ("event_type", "consent.granted".to_string()));
        assert_eq!(h[3], ("schema_version", "1".to_string()));
    }

    #[test]
    fn documented_field_names_are_the_wire_names() {
        let v: serde_json::Value = serde_json::from_slice(&encode(&event())).unwrap();
        assert_eq!(v["schema_version"], 1);
        for field in [
            "id",
            "tenant_id",
            "occurred_at",
            "category",
            "action",
            "actor",
            "subject_user_id",
            "purpose",
            "decision",
            "reason",
            "request_id",
            "metadata",
        ] {
            assert!(v["event"].get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["event"]["occurred_at"], "2027-01-15T08:00:00.123457Z");
    }

    #[test]
    fn rejects_what_cannot_be_materialized() {
        assert!(decode(None).unwrap_err().contains("no value"));
        assert!(decode(Some(b"nope")).unwrap_err().contains("not a v1"));
        assert!(
            decode(Some(br#"{"schema_version":9,"event":{}}"#))
                .unwrap_err()
                .contains("unsupported schema_version 9")
        );
        assert!(
            decode(Some(br#"{"schema_version":1,"event":{"id":1}}"#))
                .unwrap_err()
                .contains("bad event")
        );
        let mut e = event();
        e.action = "nul\0".into();
        assert!(decode(Some(&encode(&e))).unwrap_err().contains("rejected"));
    }
}
