//! The cases of the user store. This file holds the list of cases and the fixtures they
//! share; the model-based property, the targeted examples, the concurrency cases and the
//! atomic-write cases live in files of their own.

mod atomic_writes;
mod concurrency;
mod examples;
mod properties;

use atomic_writes::{
    a_failed_event_write_writes_nothing, bad_input_is_rejected_before_any_write,
    mutations_record_audit_events_atomically,
};
use concurrency::{
    concurrent_creates_of_one_email_have_one_winner,
    concurrent_updates_of_one_version_have_one_winner, find_or_create_is_atomic_under_concurrency,
};
use examples::{
    cross_tenant_isolation, delete_of_absent_user_is_not_found,
    email_collision_is_case_folded_and_trimmed,
    look_alike_emails_are_one_user_and_invisible_characters_are_refused,
    pagination_is_stable_under_inserts, timestamps_round_trip_in_microseconds,
    update_checks_expected_version, update_to_a_taken_email_conflicts,
};
use properties::model_based_sequences;

use super::{cases, tenant};
use crate::harness::Port;
use crate::support::Ctx;
use credo_ports::{NewUser, UserStore};
use std::sync::Arc;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Users;
        model_based_sequences,
        email_collision_is_case_folded_and_trimmed,
        look_alike_emails_are_one_user_and_invisible_characters_are_refused,
        concurrent_creates_of_one_email_have_one_winner,
        concurrent_updates_of_one_version_have_one_winner,
        find_or_create_is_atomic_under_concurrency,
        update_checks_expected_version,
        update_to_a_taken_email_conflicts,
        cross_tenant_isolation,
        pagination_is_stable_under_inserts,
        bad_input_is_rejected_before_any_write,
        mutations_record_audit_events_atomically,
        a_failed_event_write_writes_nothing,
        timestamps_round_trip_in_microseconds,
        delete_of_absent_user_is_not_found,
    ]
}

async fn users(ctx: &Ctx) -> Result<(crate::harness::Stores, Arc<dyn UserStore>), String> {
    let s = ctx.fresh().await?;
    let u = s.users()?;
    Ok((s, u))
}

fn person(t: u8, email: &str) -> NewUser {
    NewUser::new(tenant(t), email, "Test", "Person")
}
