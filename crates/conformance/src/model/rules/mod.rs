//! The model's own statement of the input rules and of the email identity policy.
//!
//! Written from DESIGN.md (§4 "Bad input", §5 the ports) and the port documentation, and
//! sharing no code with `credo_ports::validate` or the `validate` methods of the port types:
//! only their documented limits are taken from `credo_ports`, as constants (data, not code).
//! Each rule is spelled out plainly (loops, plain comparisons), in the order the port docs
//! list the fields, so that an error names the same field as the ports' validators do (the
//! suite compares only the error kind; the model's unit tests compare the field too).
//!
//! One file per family of rules: single fields (`fields`), the email identity policy
//! (`email_policy`), then the inputs of each port (`users`, `sessions`, `consents`, `audit`,
//! `rate_limit`). This file holds what they share and re-exports the rules the rest of the
//! model uses.
//!
//! The unit tests (`tests`, `cross_checks`) cross-check every rule against `credo_ports` on
//! generated input (and the invisible set on every code point): the one place where the two
//! meet. A disagreement there is a bug in one of them, to be settled against the docs.

mod audit;
mod consents;
#[cfg(test)]
mod cross_checks;
mod email_policy;
mod fields;
mod rate_limit;
mod sessions;
#[cfg(test)]
mod tests;
mod users;

pub(crate) use audit::audit_event;
pub(crate) use consents::grant;
pub(crate) use email_policy::{email, email_key, stored_email};
pub(crate) use fields::{action, page, purpose};
pub(crate) use rate_limit::{rate_clock, rate_key, rate_policy};
pub(crate) use sessions::{jti, new_session, token_revocation};
pub(crate) use users::{changed_fields, new_user, user_update};

use credo_ports::{StoreError, StoreResult};

/// The outcome of one rule.
type Rule = StoreResult<()>;

fn invalid(field: &'static str, reason: impl Into<String>) -> Rule {
    Err(StoreError::InvalidInput {
        field,
        reason: reason.into(),
    })
}
