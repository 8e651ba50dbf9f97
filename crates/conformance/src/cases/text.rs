//! Arbitrary text in every text field: each backend must store it verbatim or reject it with
//! `InvalidInput`, exactly like the model; never a raw driver error, never a panic.

use super::{cases, consent_id, event_id, session_id, tenant, user_id};
use crate::harness::Port;
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{
    AuditCategory, AuditEvent, Device, GrantConsent, NewSession, NewUser, RateLimitPolicy,
    SessionStatus, StoreResult, Timestamp, UserStatus,
};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use serde_json::json;
use std::fmt::Debug;
use std::num::NonZeroU32;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Users; arbitrary_text_in_user_fields];
    v.extend(cases![Port::Sessions; arbitrary_text_in_session_fields]);
    v.extend(cases![Port::Consents; arbitrary_text_as_purpose]);
    v.extend(cases![Port::Audit; arbitrary_text_in_audit_fields]);
    v.extend(cases![Port::RateLimits; arbitrary_text_as_rate_limit_key]);
    v
}

/// Text that breaks naive storage code: any Unicode, control characters and NUL, quotes and
/// SQL, UUID look-alikes, lengths around the limits, and 1 MB.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        2 => "[ -~]{1,40}",
        1 => "[a-z]{1,10}@[a-z]{1,10}\\.[a-z]{2,3}",
        1 => "[a-z][a-z0-9_.:-]{0,70}",
        1 => Just("Robert'); DROP TABLE users;--".to_string()),
        1 => Just("\" OR \"1\"=\"1".to_string()),
        1 => Just("a\0b".to_string()),
        1 => Just("00000000-0000-0000-0000-00000000000g".to_string()),
        1 => Just("\u{feff}\u{202e}\u{1F600}é\u{0301}".to_string()),
        1 => (250usize..260).prop_map(|n| "x".repeat(n)),
        1 => Just("y".repeat(1 << 20)),
    ]
}

fn field_and_text(fields: u8) -> impl Strategy<Value = Vec<(u8, String)>> {
    proptest::collection::vec((0..fields, text()), 1..6)
}

fn ok_or_invalid<T: Debug>(what: &str, r: &StoreResult<T>) -> Result<(), String> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == "InvalidInput" => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected a stored value or InvalidInput, got {e:?}"
        )),
    }
}

fn check_pair<'a, T: PartialEq + Debug + 'a>(
    what: &'a (u8, String),
    model: StoreResult<T>,
    backend: StoreResult<T>,
) -> Result<(), String> {
    ok_or_invalid(&format!("field {}", what.0), &backend)?;
    same(what, model, backend)
}

fn users_apply<'a>(p: &'a Pair, op: &'a (u8, String)) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.users()?, p.backend.users()?);
        let (field, s) = op;
        let mut u = NewUser {
            id: user_id(0),
            tenant_id: tenant(0),
            email: "text@example.com".into(),
            email_verified: false,
            first_name: "F".into(),
            last_name: "L".into(),
            status: UserStatus::Active,
        };
        match field {
            0 => u.email = s.clone(),
            1 => u.first_name = s.clone(),
            _ => u.last_name = s.clone(),
        }
        check_pair(op, m.create(u.clone()).await, b.create(u).await)?;
        check_pair(
            op,
            m.get(tenant(0), user_id(0)).await,
            b.get(tenant(0), user_id(0)).await,
        )?;
        check_pair(
            op,
            m.find_by_email(tenant(0), s).await,
            b.find_by_email(tenant(0), s).await,
        )?;
        // NotFound here when the create was rejected: compared with the model, not required Ok.
        same(
            op,
            m.delete(tenant(0), user_id(0)).await,
            b.delete(tenant(0), user_id(0)).await,
        )
    }
    .boxed()
}

fn sessions_apply<'a>(p: &'a Pair, op: &'a (u8, String)) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.sessions()?, p.backend.sessions()?);
        let (field, s) = op;
        let exp = Timestamp::from_micros(p.backend.now().as_micros() + 60_000_000);
        let mut n = NewSession {
            id: session_id(0),
            tenant_id: tenant(0),
            user_id: user_id(0),
            client_id: "c".into(),
            scopes: vec!["openid".into()],
            status: SessionStatus::Active,
            device: Device::default(),
            expires_at: exp,
        };
        match field {
            0 => n.client_id = s.clone(),
            1 => n.scopes = vec!["openid".into(), s.clone()],
            2 => n.device.user_agent = Some(s.clone()),
            3 => n.device.ip_address = Some(s.clone()),
            4 => n.device.device_id = Some(s.clone()),
            5 => n.device.device_name = Some(s.clone()),
            _ => {
                check_pair(
                    op,
                    m.revoke_token(tenant(0), s, exp).await,
                    b.revoke_token(tenant(0), s, exp).await,
                )?;
                return check_pair(
                    op,
                    m.is_token_revoked(tenant(0), s).await,
                    b.is_token_revoked(tenant(0), s).await,
                );
            }
        }
        check_pair(op, m.create(n.clone()).await, b.create(n).await)?;
        check_pair(
            op,
            m.get(tenant(0), session_id(0)).await,
            b.get(tenant(0), session_id(0)).await,
        )?;
        p.backend.clock.advance(Duration::from_secs(61));
        check_pair(
            op,
            m.purge_expired(NonZeroU32::MAX).await.map(|_| ()),
            b.purge_expired(NonZeroU32::MAX).await.map(|_| ()),
        )
    }
    .boxed()
}

fn consents_apply<'a>(p: &'a Pair, op: &'a (u8, String)) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.consents()?, p.backend.consents()?);
        let s = &op.1;
        let g = GrantConsent {
            id: consent_id(0),
            tenant_id: tenant(0),
            user_id: user_id(0),
            purpose: s.clone(),
            expires_at: None,
        };
        check_pair(op, m.grant(g.clone()).await, b.grant(g).await)?;
        check_pair(
            op,
            m.get(tenant(0), user_id(0), s).await,
            b.get(tenant(0), user_id(0), s).await,
        )?;
        check_pair(
            op,
            m.delete_all_for_user(tenant(0), user_id(0)).await,
            b.delete_all_for_user(tenant(0), user_id(0)).await,
        )
    }
    .boxed()
}

fn audit_apply<'a>(p: &'a Pair, op: &'a (u8, String)) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.audit_log()?, p.backend.audit_log()?);
        let (field, s) = op;
        let mut e = AuditEvent::new(
            tenant(0),
            p.backend.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        e.id = event_id(u16::from(*field));
        match field {
            0 => e.action = s.clone(),
            1 => e.actor = Some(s.clone()),
            2 => e.decision = Some(s.clone()),
            3 => e.reason = Some(s.clone()),
            4 => e.request_id = Some(s.clone()),
            5 => e.purpose = Some(s.clone()),
            6 => {
                e.metadata.insert(s.clone(), json!(1));
            }
            _ => {
                e.metadata.insert("v".into(), json!([s, {"nested": s}]));
            }
        }
        check_pair(
            op,
            m.append_batch(&[e.clone()]).await,
            b.append_batch(&[e.clone()]).await,
        )?;
        check_pair(
            op,
            m.get(tenant(0), e.id).await,
            b.get(tenant(0), e.id).await,
        )?;
        let (mr, br) = (p.model.audit()?, p.backend.audit()?);
        check_pair(op, mr.record(e.clone()).await, br.record(e).await)
    }
    .boxed()
}

fn rate_apply<'a>(p: &'a Pair, op: &'a (u8, String)) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.rate_limits()?, p.backend.rate_limits()?);
        let policy = RateLimitPolicy::per(5, Duration::from_secs(1));
        let s = &op.1;
        check_pair(
            op,
            m.check(tenant(0), s, policy, 1).await,
            b.check(tenant(0), s, policy, 1).await,
        )?;
        check_pair(
            op,
            m.peek(tenant(0), s, policy).await,
            b.peek(tenant(0), s, policy).await,
        )?;
        check_pair(op, m.reset(tenant(0), s).await, b.reset(tenant(0), s).await)
    }
    .boxed()
}

async fn arbitrary_text_in_user_fields(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "text_users", || field_and_text(3), users_apply).await
}

async fn arbitrary_text_in_session_fields(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "text_sessions", || field_and_text(7), sessions_apply).await
}

async fn arbitrary_text_as_purpose(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "text_consents", || field_and_text(1), consents_apply).await
}

async fn arbitrary_text_in_audit_fields(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "text_audit", || field_and_text(8), audit_apply).await
}

async fn arbitrary_text_as_rate_limit_key(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "text_rate_limits", || field_and_text(1), rate_apply).await
}
