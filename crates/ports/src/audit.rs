//! Audit events: an append-only log, materialized idempotently from the outbox.

use crate::page::{Cursor, Page, PageRequest};
use crate::{EventId, StoreError, StoreResult, TenantId, Timestamp, UserId, validate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::num::NonZeroU32;

/// Largest serialized `metadata` object accepted, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Deepest nesting of arrays and objects accepted in metadata (the event's own object is
/// level 1). Checked first and without recursion, so no input can exhaust the stack of a
/// validator, serializer or driver.
pub const MAX_METADATA_DEPTH: usize = 32;

/// Broad class of an audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditCategory {
    /// Regulatory record (consent, erasure).
    Compliance,
    /// Security-relevant (sign-in, revocation).
    Security,
    /// Operational change (user profile edits).
    Operations,
}

impl AuditCategory {
    /// The stored spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            AuditCategory::Compliance => "compliance",
            AuditCategory::Security => "security",
            AuditCategory::Operations => "operations",
        }
    }
}

/// One audit event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// UUIDv7 id; the idempotency key of materialization.
    pub id: EventId,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Broad class.
    pub category: AuditCategory,
    /// What happened, e.g. `consent.granted`.
    pub action: String,
    /// Who did it (user id, client id or system name).
    pub actor: Option<String>,
    /// The user it concerns.
    pub subject_user_id: Option<UserId>,
    /// Consent purpose it concerns.
    pub purpose: Option<String>,
    /// Decision taken, e.g. `allow`.
    pub decision: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// Correlating request id.
    pub request_id: Option<String>,
    /// Free-form JSON object, at most 16 KiB serialized, no NUL characters.
    pub metadata: Map<String, Value>,
}

impl AuditEvent {
    /// A minimal event with a fresh UUIDv7 id and empty optional fields.
    pub fn new(
        tenant_id: TenantId,
        occurred_at: Timestamp,
        category: AuditCategory,
        action: &str,
    ) -> Self {
        Self {
            id: EventId::new(),
            tenant_id,
            occurred_at,
            category,
            action: action.to_string(),
            actor: None,
            subject_user_id: None,
            purpose: None,
            decision: None,
            reason: None,
            request_id: None,
            metadata: Map::new(),
        }
    }

    /// The keyset position of this event in [`AuditLog::query`].
    #[must_use]
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.occurred_at,
            id: self.id.0,
        }
    }

    /// Rejects bad input before any I/O.
    /// `InvalidInput` for an id that is not a UUIDv7 (RFC 9562): the log is kept in ranges of
    /// the time in its ids, so an id must carry one.
    pub fn validate(&self) -> StoreResult<()> {
        if self.id.0.get_version_num() != 7 || self.id.0.get_variant() != uuid::Variant::RFC4122 {
            return Err(StoreError::invalid(
                "id",
                "must be a UUIDv7 (RFC 9562): the audit log is kept in ranges of the time in its ids",
            ));
        }
        self.occurred_at.check("occurred_at")?;
        validate::action(&self.action)?;
        validate::optional_text("actor", self.actor.as_deref())?;
        if let Some(p) = &self.purpose {
            validate::purpose(p)?;
        }
        validate::optional_text("decision", self.decision.as_deref())?;
        validate::optional_text("reason", self.reason.as_deref())?;
        validate::optional_text("request_id", self.request_id.as_deref())?;
        if metadata_depth(&self.metadata) > MAX_METADATA_DEPTH {
            return Err(StoreError::invalid(
                "metadata",
                format!("nesting deeper than {MAX_METADATA_DEPTH} levels"),
            ));
        }
        let size = serialized_len(&self.metadata);
        if size > MAX_METADATA_BYTES {
            return Err(StoreError::invalid(
                "metadata",
                format!("at most {MAX_METADATA_BYTES} bytes serialized, got {size}"),
            ));
        }
        if self
            .metadata
            .iter()
            .any(|(k, v)| k.contains('\0') || value_has_nul(v))
        {
            return Err(StoreError::invalid(
                "metadata",
                "must not contain NUL characters",
            ));
        }
        Ok(())
    }

    /// True when the event matches every criterion of `q` (ignoring pagination).
    #[must_use]
    pub fn matches(&self, q: &AuditQuery) -> bool {
        q.subject_user_id
            .is_none_or(|s| self.subject_user_id == Some(s))
            && q.action.as_ref().is_none_or(|a| &self.action == a)
            && q.category.is_none_or(|c| self.category == c)
            && q.from.is_none_or(|f| self.occurred_at >= f)
            && q.until.is_none_or(|u| self.occurred_at < u)
    }
}

/// Bytes `value` takes as JSON, counted without building the text.
/// Nesting depth of `map` (1 for a flat object), computed with an explicit stack; stops
/// counting past the limit.
fn metadata_depth(map: &Map<String, Value>) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 2)).collect();
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(o) => Box::new(o.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        if deepest > MAX_METADATA_DEPTH {
            return deepest;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    deepest
}

fn serialized_len(value: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

fn value_has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(value_has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || value_has_nul(v)),
        _ => false,
    }
}

/// Criteria for [`AuditLog::query`] and [`AuditLog::count`]; all optional, combined with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events about this user.
    pub subject_user_id: Option<UserId>,
    /// Events with this action.
    pub action: Option<String>,
    /// Events of this category.
    pub category: Option<AuditCategory>,
    /// `occurred_at >= from`.
    pub from: Option<Timestamp>,
    /// `occurred_at < until`.
    pub until: Option<Timestamp>,
}

/// Result of [`AuditLog::append_batch`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Events written now.
    pub inserted: u64,
    /// Events skipped because their id was already present.
    pub duplicates: u64,
}

/// The recording role: how a service (and every store, for its own changes) writes an audit
/// event. Durable on return: the event is encoded once and enqueued into the outbox; the relay
/// moves it to the log.
#[async_trait]
pub trait AuditRecorder: Send + Sync {
    /// Validates `event` and records it durably. Recording an id again is a no-op.
    async fn record(&self, event: AuditEvent) -> StoreResult<()>;
}

/// The log role: the materialized, append-only audit log. Events enter it only through
/// [`append_batch`](AuditLog::append_batch) (from the relay's sink or the audit consumer); the
/// only deletion is retention ([`purge_before`](AuditLog::purge_before)).
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Materializes events; an id already present is skipped, never duplicated. All events are
    /// validated first: one bad event rejects the whole batch with nothing written.
    async fn append_batch(&self, events: &[AuditEvent]) -> StoreResult<AppendOutcome>;
    /// The materialized event with this id in this tenant.
    async fn get(&self, tenant: TenantId, id: EventId) -> StoreResult<Option<AuditEvent>>;
    /// One page of matching events ordered by `(occurred_at, id)`.
    async fn query(
        &self,
        tenant: TenantId,
        query: AuditQuery,
        page: PageRequest,
    ) -> StoreResult<Page<AuditEvent>>;
    /// Number of matching events.
    async fn count(&self, tenant: TenantId, query: AuditQuery) -> StoreResult<u64>;
    /// Retention: deletes at most `limit` events of every tenant with `occurred_at < before`,
    /// of `category` only when given; returns how many, so fewer than `limit` means none is
    /// left.
    async fn purge_before(
        &self,
        before: Timestamp,
        category: Option<AuditCategory>,
        limit: NonZeroU32,
    ) -> StoreResult<u64>;
}

/// Validates a batch for [`AuditLog::append_batch`] and drops repeats of a `(tenant, id)`
/// inside it (first occurrence wins), so every backend sees the same set. Event ids
/// deduplicate per tenant: one tenant's id never suppresses another tenant's event.
pub fn prepare_batch(events: &[AuditEvent]) -> StoreResult<(Vec<&AuditEvent>, u64)> {
    for e in events {
        e.validate()?;
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    let total = events.len();
    let unique: Vec<_> = events
        .iter()
        .filter(|e| seen.insert((e.tenant_id, e.id)))
        .collect();
    let repeats = (total - unique.len()) as u64;
    Ok((unique, repeats))
}

/// Builds the events that stores record with their own mutations, so every backend records
/// exactly the same events. No PII: emails and names never appear in them.
pub mod events {
    use super::*;
    use crate::{Consent, User};

    fn base(
        tenant: TenantId,
        now: Timestamp,
        category: AuditCategory,
        action: &str,
        subject: UserId,
    ) -> AuditEvent {
        let mut e = AuditEvent::new(tenant, now, category, action);
        e.subject_user_id = Some(subject);
        e
    }

    /// `user.created`.
    #[must_use]
    pub fn user_created(u: &User, now: Timestamp) -> AuditEvent {
        base(
            u.tenant_id,
            now,
            AuditCategory::Operations,
            "user.created",
            u.id,
        )
    }

    /// `user.updated`, with the names of the changed fields in `metadata.fields`.
    #[must_use]
    pub fn user_updated(u: &User, fields: &[&str], now: Timestamp) -> AuditEvent {
        let mut e = base(
            u.tenant_id,
            now,
            AuditCategory::Operations,
            "user.updated",
            u.id,
        );
        e.metadata.insert(
            "fields".into(),
            fields.iter().map(|f| Value::from(*f)).collect(),
        );
        e
    }

    /// `user.deleted` (compliance: erasure).
    #[must_use]
    pub fn user_deleted(tenant: TenantId, id: UserId, now: Timestamp) -> AuditEvent {
        base(tenant, now, AuditCategory::Compliance, "user.deleted", id)
    }

    fn consent(c: &Consent, action: &str, now: Timestamp) -> AuditEvent {
        let mut e = base(
            c.tenant_id,
            now,
            AuditCategory::Compliance,
            action,
            c.user_id,
        );
        e.purpose = Some(c.purpose.clone());
        e
    }

    /// `consent.granted` (new or renewed).
    #[must_use]
    pub fn consent_granted(c: &Consent, now: Timestamp) -> AuditEvent {
        let mut e = consent(c, "consent.granted", now);
        e.decision = Some("granted".into());
        e
    }

    /// `consent.revoked`.
    #[must_use]
    pub fn consent_revoked(c: &Consent, now: Timestamp) -> AuditEvent {
        let mut e = consent(c, "consent.revoked", now);
        e.decision = Some("revoked".into());
        e
    }

    /// `consent.deleted` (erasure).
    #[must_use]
    pub fn consent_deleted(c: &Consent, now: Timestamp) -> AuditEvent {
        consent(c, "consent.deleted", now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_over_16_kib_or_with_nul_is_rejected() {
        let mut e = AuditEvent::new(
            TenantId::new(),
            Timestamp::EPOCH,
            AuditCategory::Security,
            "login.failed",
        );
        assert!(e.validate().is_ok());
        e.metadata
            .insert("blob".into(), Value::from("x".repeat(MAX_METADATA_BYTES)));
        assert_eq!(e.validate().unwrap_err().kind(), "InvalidInput");
        e.metadata.clear();
        e.metadata
            .insert("k".into(), serde_json::json!({"nested": ["a\0b"]}));
        assert_eq!(e.validate().unwrap_err().kind(), "InvalidInput");
    }

    fn event() -> AuditEvent {
        AuditEvent::new(
            TenantId::new(),
            Timestamp::EPOCH,
            AuditCategory::Security,
            "login.failed",
        )
    }

    /// DESIGN's limit is 16 KiB of compact JSON: exactly that is accepted, a byte more is not.
    #[test]
    fn metadata_of_exactly_16_kib_is_accepted() {
        let mut e = event();
        // `{"k":"` and `"}` add 8 bytes around the string.
        e.metadata
            .insert("k".into(), Value::from("x".repeat(16 * 1024 - 8)));
        assert!(e.validate().is_ok());
        e.metadata
            .insert("k".into(), Value::from("x".repeat(16 * 1024 - 7)));
        assert_eq!(e.validate().unwrap_err().kind(), "InvalidInput");
    }

    /// The event's own object is level 1: a value 31 objects deep reaches the limit of 32.
    #[test]
    fn metadata_nested_exactly_to_the_limit_is_accepted() {
        let deep = |levels: usize| {
            (1..levels).fold(
                Value::Object(Map::new()),
                |v, _| serde_json::json!({ "d": v }),
            )
        };
        let mut e = event();
        e.metadata.insert("k".into(), deep(MAX_METADATA_DEPTH - 1));
        assert!(e.validate().is_ok());
        e.metadata.insert("k".into(), deep(MAX_METADATA_DEPTH));
        assert_eq!(e.validate().unwrap_err().kind(), "InvalidInput");
        e.metadata.insert("k".into(), serde_json::json!([[[]]]));
        assert_eq!(metadata_depth(&e.metadata), 4);
    }

    /// The stored spelling is the serialized one: both name the same category in the
    /// `category` column, the outbox envelope and queries.
    #[test]
    fn category_spelling_matches_serde() {
        for (c, s) in [
            (AuditCategory::Compliance, "compliance"),
            (AuditCategory::Security, "security"),
            (AuditCategory::Operations, "operations"),
        ] {
            assert_eq!(c.as_str(), s);
            assert_eq!(serde_json::to_value(c).unwrap(), Value::from(s));
        }
    }

    #[test]
    fn prepare_batch_drops_repeated_ids_and_rejects_whole_batch_on_bad_event() {
        let e = AuditEvent::new(
            TenantId::new(),
            Timestamp::EPOCH,
            AuditCategory::Security,
            "a.b",
        );
        let twice = [e.clone(), e.clone()];
        let (u, r) = prepare_batch(&twice).unwrap();
        assert_eq!((u.len(), r), (1, 1));
        let mut bad = e.clone();
        bad.action = "BAD".into();
        assert!(prepare_batch(&[e, bad]).is_err());
    }
}
