//! Store wrappers that time every call and count errors and rate-limit decisions through the
//! `metrics` facade (names in [`credo_ports::telemetry`]), and run every call in a
//! `credo.store` span (fields `port`, `operation`, `backend`, `tenant`, `trace_id`,
//! `error_kind`). No label or field carries user data: never an email, IP, key or token.

use async_trait::async_trait;
use credo_ports::telemetry;
use credo_ports::*;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

fn observe<T>(
    port: &'static str,
    operation: &'static str,
    backend: &'static str,
    started: Instant,
    result: &StoreResult<T>,
    span: &tracing::Span,
) {
    metrics::histogram!(
        telemetry::STORE_OPERATION_SECONDS,
        "port" => port, "operation" => operation, "backend" => backend
    )
    .record(started.elapsed());
    if let Err(e) = result {
        span.record("error_kind", e.kind());
        metrics::counter!(
            telemetry::STORE_ERRORS,
            "port" => port, "operation" => operation, "backend" => backend, "kind" => e.kind()
        )
        .increment(1);
        // A revocation that cannot be written or checked is a security event of its own.
        let token = match operation {
            "revoke_token" => Some("write"),
            "is_token_revoked" => Some("check"),
            _ => None,
        };
        if let Some(op) = token {
            metrics::counter!(telemetry::REVOKED_TOKEN_FAILURES, "operation" => op).increment(1);
        }
    }
}

/// The `class` label of a rate-limit key: its prefix before the first `:` when that is 1 to
/// 24 ASCII lowercase letters, `_` or `-` (`ip`, `login`, `api_key`), else `other`. Never
/// the key itself, so the label stays low-cardinality and free of user data.
pub(crate) fn key_class(key: &str) -> &str {
    match key.split_once(':') {
        Some((class, _))
            if (1..=24).contains(&class.len())
                && class
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-') =>
        {
            class
        }
        _ => "other",
    }
}

/// The tenant an argument of a store call names, for the call's span; `None` for arguments
/// that name none (ids, keys, pages, ...).
trait TenantField {
    fn tenant(&self) -> Option<TenantId> {
        None
    }
}

impl TenantField for TenantId {
    fn tenant(&self) -> Option<TenantId> {
        Some(*self)
    }
}

macro_rules! tenant_field {
    ($($t:ty),*) => { $(impl TenantField for $t { fn tenant(&self) -> Option<TenantId> { Some(self.tenant_id) } })* };
}
tenant_field!(NewUser, NewSession, GrantConsent, AuditEvent);

macro_rules! no_tenant_field {
    ($($t:ty),*) => { $(impl TenantField for $t {})* };
}
no_tenant_field!(
    UserId,
    &str,
    UserUpdate,
    Option<u64>,
    PageRequest,
    SessionId,
    NonZeroU32,
    Timestamp,
    ConsentFilter,
    &[AuditEvent],
    EventId,
    AuditQuery,
    Option<AuditCategory>,
    RateLimitPolicy,
    u32
);

/// The span of one store call; `tenant` and `trace_id` are filled only when the span is on.
fn call_span(
    port: &'static str,
    operation: &'static str,
    backend: &'static str,
    tenant: Option<TenantId>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "credo.store",
        port,
        operation,
        backend,
        tenant = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        error_kind = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Some(t) = tenant {
            span.record("tenant", tracing::field::display(t));
        }
        if let Some(tp) = credo_ports::trace::current() {
            span.record("trace_id", tp.trace_id().as_str());
        }
    }
    span
}

/// A timed wrapper around `Arc<dyn $trait>` forwarding every listed method.
macro_rules! instrumented {
    ($wrapper:ident: $trait:ident, $port:literal;
     $( fn $m:ident(&self $(, $a:ident : $t:ty)*) -> $r:ty; )*) => {
        pub(crate) struct $wrapper {
            pub(crate) inner: Arc<dyn $trait>,
            pub(crate) backend: &'static str,
        }

        #[async_trait]
        impl $trait for $wrapper {
            $(
                async fn $m(&self $(, $a: $t)*) -> StoreResult<$r> {
                    let tenant: Option<TenantId> = None $(.or(TenantField::tenant(&$a)))*;
                    let span = call_span($port, stringify!($m), self.backend, tenant);
                    let started = Instant::now();
                    let result = self.inner.$m($($a),*).instrument(span.clone()).await;
                    observe($port, stringify!($m), self.backend, started, &result, &span);
                    result
                }
            )*
        }
    };
}

instrumented!(Users: UserStore, "users";
    fn create(&self, user: NewUser) -> User;
    fn get(&self, tenant: TenantId, id: UserId) -> Option<User>;
    fn find_by_email(&self, tenant: TenantId, email: &str) -> Option<User>;
    fn find_or_create(&self, user: NewUser) -> (User, bool);
    fn update(&self, tenant: TenantId, id: UserId, update: UserUpdate, expected_version: Option<u64>) -> User;
    fn delete(&self, tenant: TenantId, id: UserId) -> ();
    fn list(&self, tenant: TenantId, page: PageRequest) -> Page<User>;
    fn count(&self, tenant: TenantId) -> u64;
);

instrumented!(Sessions: SessionStore, "sessions";
    fn create(&self, session: NewSession) -> Session;
    fn get(&self, tenant: TenantId, id: SessionId) -> Option<Session>;
    fn touch(&self, tenant: TenantId, id: SessionId) -> Session;
    fn mark_refreshed(&self, tenant: TenantId, id: SessionId) -> Session;
    fn activate(&self, tenant: TenantId, id: SessionId) -> Session;
    fn revoke(&self, tenant: TenantId, id: SessionId) -> Session;
    fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> u64;
    fn list_for_user(&self, tenant: TenantId, user: UserId) -> Vec<Session>;
    fn purge_expired(&self, limit: NonZeroU32) -> u64;
    fn revoke_token(&self, tenant: TenantId, jti: &str, expires_at: Timestamp) -> ();
    fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> bool;
);

instrumented!(Consents: ConsentStore, "consents";
    fn grant(&self, grant: GrantConsent) -> Consent;
    fn revoke(&self, tenant: TenantId, user: UserId, purpose: &str) -> Consent;
    fn get(&self, tenant: TenantId, user: UserId, purpose: &str) -> Option<Consent>;
    fn list_for_user(&self, tenant: TenantId, user: UserId, filter: ConsentFilter) -> Vec<Consent>;
    fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> u64;
    fn delete_all_for_user(&self, tenant: TenantId, user: UserId) -> u64;
);

instrumented!(Recorder: AuditRecorder, "audit";
    fn record(&self, event: AuditEvent) -> ();
);

instrumented!(Log: AuditLog, "audit";
    fn append_batch(&self, events: &[AuditEvent]) -> AppendOutcome;
    fn get(&self, tenant: TenantId, id: EventId) -> Option<AuditEvent>;
    fn query(&self, tenant: TenantId, query: AuditQuery, page: PageRequest) -> Page<AuditEvent>;
    fn count(&self, tenant: TenantId, query: AuditQuery) -> u64;
    fn purge_before(&self, before: Timestamp, category: Option<AuditCategory>, limit: NonZeroU32) -> u64;
);

instrumented!(TimedRateLimits: RateLimitStore, "rate_limits";
    fn check(&self, tenant: TenantId, key: &str, policy: RateLimitPolicy, cost: u32) -> Decision;
    fn peek(&self, tenant: TenantId, key: &str, policy: RateLimitPolicy) -> Decision;
    fn reset(&self, tenant: TenantId, key: &str) -> ();
    fn purge_idle(&self, limit: NonZeroU32) -> u64;
);

/// [`TimedRateLimits`] plus the allowed/denied counter.
pub(crate) struct RateLimits(pub(crate) TimedRateLimits);

#[async_trait]
impl RateLimitStore for RateLimits {
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision> {
        let result = self.0.check(tenant, key, policy, cost).await;
        if let Ok(d) = &result {
            let decision = if d.allowed { "allowed" } else { "denied" };
            metrics::counter!(
                telemetry::RATE_LIMIT_CHECKS,
                "backend" => self.0.backend, "decision" => decision,
                "class" => key_class(key).to_string()
            )
            .increment(1);
        }
        result
    }
    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision> {
        self.0.peek(tenant, key, policy).await
    }
    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        self.0.reset(tenant, key).await
    }
    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        self.0.purge_idle(limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::key_class;
    use proptest::prelude::*;

    #[test]
    fn key_classes_are_word_prefixes_or_other() {
        for (key, class) in [
            ("ip:10.0.0.1", "ip"),
            ("login:ada@example.com", "login"),
            ("api_key:k-1", "api_key"),
            ("pass-reset:x", "pass-reset"),
            ("ada@example.com", "other"),
            (":x", "other"),
            ("IP:1", "other"),
            ("user1:x", "other"),
            ("ÿp:x", "other"),
            ("abcdefghijklmnopqrstuvwxy:x", "other"),
        ] {
            assert_eq!(key_class(key), class, "{key:?}");
        }
    }

    proptest! {
        /// Whatever the key, the class is `other` or a short lowercase word that the key
        /// starts with: at most 27^24 values, and never more of the key than its prefix.
        #[test]
        fn a_class_never_carries_more_than_a_word(key in "\\PC{0,40}") {
            let class = key_class(&key);
            let word = class == "other"
                || (key.starts_with(&format!("{class}:")) && class.len() <= 24);
            prop_assert!(word, "{:?} -> {:?}", key, class);
        }
    }
}
