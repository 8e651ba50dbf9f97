//! The one encoding of an audit event on its way from the outbox to the log.
//!
//! An event is encoded once, when it is recorded (inside the transaction of the change), into an
//! [`EncodedEvent`]: the versioned envelope plus the few fields a transport routes by. The outbox
//! stores it as it is, the relay moves it unchanged, a Kafka sink sends its bytes as the message
//! value, and it is decoded exactly once, where it is materialized into the log (the direct sink
//! or the audit consumer).
//!
//! **Version 1** (on the Kafka topic `credo.audit.events` and in the outbox):
//! - **value / payload**: the JSON object `{"schema_version": 1, "event": {...}}` where `event`
//!   has the fields of [`AuditEvent`]: `id`, `tenant_id` (UUID strings), `occurred_at`
//!   (RFC 3339 with microseconds), `category` (`compliance`, `security` or `operations`),
//!   `action`, `actor`, `subject_user_id`, `purpose`, `decision`, `reason`, `request_id`
//!   (string or null) and `metadata` (object);
//! - **key**: `<tenant_id>:<subject_user_id>`, or `<tenant_id>:` when the event concerns no user,
//!   so one subject's events share a partition and stay in order (the *order key*);
//! - **headers** (UTF-8): `event_id`, `event_type` (the action, e.g. `consent.granted`),
//!   `tenant_id`, `schema_version`.
//!
//! **Versioning rule.** A change that an older reader would still read correctly (a new optional
//! field, which readers ignore) keeps the version. Any other change (a field removed, renamed or
//! retyped, a meaning changed) takes the next version, and [`decode`] keeps reading every older
//! one. A reader accepts `1..=`[`SCHEMA_VERSION`] and refuses newer versions, so a consumer older
//! than its producers sets their messages aside instead of misreading them: upgrade consumers
//! before producers.
//!
//! ```
//! use credo_ports::envelope::{self, EncodedEvent};
//! use credo_ports::{AuditCategory, AuditEvent, TenantId, Timestamp};
//! let event = AuditEvent::new(TenantId::new(), Timestamp::from_micros(0), AuditCategory::Security, "auth.login_failed");
//! let encoded = EncodedEvent::encode(&event);
//! assert_eq!(encoded.key(), format!("{}:", event.tenant_id));
//! assert_eq!(envelope::decode(Some(encoded.payload.as_bytes())).unwrap(), event);
//! assert!(envelope::decode(Some(b"{\"schema_version\":2,\"event\":{}}")).is_err());
//! ```

use crate::trace::{ENQUEUED_AT_HEADER, TRACE_ID_HEADER, TRACEPARENT_HEADER, TraceParent};
use crate::{AuditEvent, EventId, TenantId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

/// The version written now and the newest one [`decode`] reads.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Out<'a> {
    schema_version: u32,
    event: &'a AuditEvent,
}

/// The envelope with its event left unparsed until the version is known.
#[derive(Deserialize)]
struct In<'a> {
    schema_version: u32,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
}

/// One audit event in its wire encoding, with the fields a transport routes by (read from the
/// event when it was encoded, so nobody needs to decode the payload to route it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    /// The event's id (the idempotency key downstream).
    pub id: EventId,
    /// The event's tenant.
    pub tenant_id: TenantId,
    /// The user the event concerns, if any.
    pub subject: Option<UserId>,
    /// The event's action, e.g. `consent.granted`.
    pub event_type: String,
    /// Version of the envelope in `payload`.
    pub schema_version: u32,
    /// The envelope JSON, `{"schema_version": N, "event": {...}}`.
    pub payload: String,
    /// The trace context of the call that recorded the event ([`crate::trace::current`] when
    /// it was encoded), kept in the outbox row and sent as the `traceparent` header.
    pub traceparent: Option<TraceParent>,
    /// When the event entered the outbox, set by the relay from the outbox record and sent as
    /// the `enqueued_at_us` header, so the consumer can time enqueue → materialized.
    pub enqueued_at: Option<Timestamp>,
}

impl EncodedEvent {
    /// Encodes `event` in the current version.
    #[must_use]
    pub fn encode(event: &AuditEvent) -> Self {
        let payload = serde_json::to_string(&Out {
            schema_version: SCHEMA_VERSION,
            event,
        })
        .expect("an AuditEvent always serializes");
        Self {
            id: event.id,
            tenant_id: event.tenant_id,
            subject: event.subject_user_id,
            event_type: event.action.clone(),
            schema_version: SCHEMA_VERSION,
            payload,
            traceparent: crate::trace::current(),
            enqueued_at: None,
        }
    }

    /// The events of one order key must reach the log in the order they were recorded.
    #[must_use]
    pub fn order_key(&self) -> (TenantId, Option<UserId>) {
        (self.tenant_id, self.subject)
    }

    /// The message key: `<tenant_id>:<subject_user_id>`, or `<tenant_id>:` without a subject.
    #[must_use]
    pub fn key(&self) -> String {
        match self.subject {
            Some(u) => format!("{}:{}", self.tenant_id, u),
            None => format!("{}:", self.tenant_id),
        }
    }

    /// The message headers as `(name, value)` pairs: the routing fields, then the trace
    /// context and the enqueue time when the event has them.
    #[must_use]
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("event_id", self.id.to_string()),
            ("event_type", self.event_type.clone()),
            ("tenant_id", self.tenant_id.to_string()),
            ("schema_version", self.schema_version.to_string()),
        ];
        if let Some(tp) = self.traceparent {
            headers.push((TRACEPARENT_HEADER, tp.to_string()));
            headers.push((TRACE_ID_HEADER, tp.trace_id()));
        }
        if let Some(at) = self.enqueued_at {
            headers.push((ENQUEUED_AT_HEADER, at.as_micros().to_string()));
        }
        headers
    }

    /// [`decode`]s the payload and checks that it is the event this message says it carries.
    pub fn decode(&self) -> Result<AuditEvent, String> {
        let event = decode(Some(self.payload.as_bytes()))?;
        if event.id != self.id || event.tenant_id != self.tenant_id {
            return Err(format!(
                "payload holds event {} of tenant {}, the row says {} of {}",
                event.id, event.tenant_id, self.id, self.tenant_id
            ));
        }
        Ok(event)
    }
}

/// Reads a payload of any supported version; `Err` says why it cannot be materialized (the
/// dead-letter reason). It parses only: the log validates what it is given.
pub fn decode(payload: Option<&[u8]>) -> Result<AuditEvent, String> {
    let bytes = payload.ok_or("message has no value")?;
    let envelope: In<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not an audit envelope: {e}"))?;
    if envelope.schema_version == 0 || envelope.schema_version > SCHEMA_VERSION {
        return Err(format!(
            "unsupported schema_version {} (this reader reads 1..={SCHEMA_VERSION})",
            envelope.schema_version
        ));
    }
    serde_json::from_str(envelope.event.get()).map_err(|e| format!("bad event: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuditCategory, Timestamp};

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
    fn round_trips_and_routes_by_subject() {
        let e = event();
        let m = EncodedEvent::encode(&e);
        assert_eq!(m.decode().unwrap(), e);
        assert_eq!(
            m.key(),
            format!("{}:{}", e.tenant_id, e.subject_user_id.unwrap())
        );
        assert_eq!(m.order_key(), (e.tenant_id, e.subject_user_id));
        let h = m.headers();
        assert_eq!(h[0], ("event_id", e.id.to_string()));
        assert_eq!(h[1], ("event_type", "consent.granted".to_string()));
        assert_eq!(h[2], ("tenant_id", e.tenant_id.to_string()));
        assert_eq!(h[3], ("schema_version", "1".to_string()));
    }

    #[test]
    fn documented_field_names_are_the_wire_names() {
        let m = EncodedEvent::encode(&event());
        let v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
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
    fn unknown_fields_are_ignored_within_a_version() {
        let m = EncodedEvent::encode(&event());
        let mut v: serde_json::Value = serde_json::from_str(&m.payload).unwrap();
        v["event"]["added_later"] = "x".into();
        v["trace"] = "y".into();
        assert_eq!(
            decode(Some(v.to_string().as_bytes())).unwrap(),
            m.decode().unwrap()
        );
    }

    #[test]
    fn rejects_what_cannot_be_materialized() {
        assert!(decode(None).unwrap_err().contains("no value"));
        assert!(
            decode(Some(b"nope"))
                .unwrap_err()
                .contains("not an audit envelope")
        );
        for v in [0, 9] {
            let body = format!(r#"{{"schema_version":{v},"event":{{}}}}"#);
            assert!(
                decode(Some(body.as_bytes()))
                    .unwrap_err()
                    .contains(&format!("unsupported schema_version {v}"))
            );
        }
        assert!(
            decode(Some(br#"{"schema_version":1,"event":{"id":1}}"#))
                .unwrap_err()
                .contains("bad event")
        );
        let mut m = EncodedEvent::encode(&event());
        m.id = EventId::new();
        assert!(m.decode().unwrap_err().contains("the row says"));
    }
}
