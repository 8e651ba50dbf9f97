//! The cases of the consent store. This file holds the list of cases and the fixtures they
//! share; the model-based property, the targeted examples and the atomic-write cases live in
//! files of their own.

mod atomic_writes;
mod examples;
mod properties;

use atomic_writes::{
    a_failed_event_write_writes_nothing, bad_input_is_rejected_before_any_write,
    every_change_records_one_audit_event,
};
use examples::{
    cross_tenant_isolation, delete_all_erases_every_record, expiry_is_exact_at_now,
    list_filters_by_purpose_and_status, regrant_after_revoke_keeps_the_record,
    revoke_all_counts_active_only, revoke_needs_an_active_consent,
};
use properties::model_based_sequences;

use super::{cases, consent_id, tenant, user_id};
use crate::harness::{Port, Stores};
use crate::support::Ctx;
use credo_ports::{ConsentStore, GrantConsent, Timestamp};
use std::sync::Arc;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Consents;
        model_based_sequences,
        regrant_after_revoke_keeps_the_record,
        expiry_is_exact_at_now,
        revoke_needs_an_active_consent,
        revoke_all_counts_active_only,
        delete_all_erases_every_record,
        every_change_records_one_audit_event,
        a_failed_event_write_writes_nothing,
        list_filters_by_purpose_and_status,
        cross_tenant_isolation,
        bad_input_is_rejected_before_any_write,
    ]
}

const SEC: i64 = 1_000_000;

fn grant(s: &Stores, id: u8, t: u8, user: u8, purpose: &str, ttl: Option<i64>) -> GrantConsent {
    GrantConsent {
        id: consent_id(id),
        tenant_id: tenant(t),
        user_id: user_id(user),
        purpose: purpose.to_string(),
        expires_at: ttl.map(|secs| Timestamp::from_micros(s.now().as_micros() + secs * SEC)),
    }
}

async fn consents(ctx: &Ctx) -> Result<(Stores, Arc<dyn ConsentStore>), String> {
    let s = ctx.fresh().await?;
    let c = s.consents()?;
    Ok((s, c))
}
