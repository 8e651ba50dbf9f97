//! The cases of the session store (sessions and the token revocation list). This file holds
//! the list of cases and the fixtures they share; the model-based property, the lifecycle
//! examples, the concurrency case and the boundary cases live in files of their own.

mod boundaries;
mod concurrency;
mod lifecycle;
mod properties;

use boundaries::{
    a_clock_far_ahead_hides_no_live_session, bad_input_is_rejected_before_any_write,
    cross_tenant_isolation, ids_are_global_while_live_and_free_once_expired,
};
use concurrency::concurrent_revokes_have_one_winner;
use lifecycle::{
    expiry_is_exact_at_now, lifecycle_transitions_are_enforced,
    list_for_user_has_no_cap_and_is_newest_first, purge_removes_only_expired,
    revoke_all_for_user_counts_live_sessions, revoked_session_is_returned_until_expiry,
    second_revoke_is_invalid_state, token_revocation_expires_and_extends, touch_only_moves_forward,
};
use properties::model_based_sequences;

use super::{cases, session_id, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::support::Ctx;
use credo_ports::{Device, NewSession, SessionStatus, SessionStore, Timestamp};
use std::sync::Arc;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Sessions;
        model_based_sequences,
        expiry_is_exact_at_now,
        second_revoke_is_invalid_state,
        concurrent_revokes_have_one_winner,
        revoked_session_is_returned_until_expiry,
        touch_only_moves_forward,
        lifecycle_transitions_are_enforced,
        list_for_user_has_no_cap_and_is_newest_first,
        revoke_all_for_user_counts_live_sessions,
        purge_removes_only_expired,
        token_revocation_expires_and_extends,
        cross_tenant_isolation,
        bad_input_is_rejected_before_any_write,
        ids_are_global_while_live_and_free_once_expired,
        a_clock_far_ahead_hides_no_live_session,
    ]
}

const SEC: i64 = 1_000_000;

pub(crate) fn new_session(
    s: &Stores,
    id: u8,
    t: u8,
    user: u8,
    ttl_secs: i64,
    pending: bool,
) -> NewSession {
    NewSession {
        id: session_id(id),
        tenant_id: tenant(t),
        user_id: user_id(user),
        client_id: "web-app".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: if pending {
            SessionStatus::PendingConsent
        } else {
            SessionStatus::Active
        },
        device: Device {
            user_agent: Some("Mozilla/5.0 'quoted'".into()),
            ip_address: Some("2001:db8::1".into()),
            ..Default::default()
        },
        expires_at: Timestamp::from_micros(s.now().as_micros() + ttl_secs * SEC),
    }
}

async fn sessions(ctx: &Ctx) -> Result<(Stores, Arc<dyn SessionStore>), String> {
    let s = ctx.fresh().await?;
    let st = s.sessions()?;
    Ok((s, st))
}
