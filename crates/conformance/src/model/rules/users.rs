//! The input rules of the user store: a new user and an update.

use super::email_policy::email;
use super::fields::text;
use super::{Rule, invalid};
use credo_ports::{NewUser, UserUpdate};

/// Input of a user creation: email, then given and family names.
pub(crate) fn new_user(u: &NewUser) -> Rule {
    email(&u.email)?;
    text("first_name", &u.first_name)?;
    text("last_name", &u.last_name)
}

/// The names of the fields an update sets, in the order the update type declares them
/// (recorded in `user.updated`).
pub(crate) fn changed_fields(u: &UserUpdate) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if u.email.is_some() {
        fields.push("email");
    }
    if u.email_verified.is_some() {
        fields.push("email_verified");
    }
    if u.first_name.is_some() {
        fields.push("first_name");
    }
    if u.last_name.is_some() {
        fields.push("last_name");
    }
    if u.status.is_some() {
        fields.push("status");
    }
    fields
}

/// A user update: at least one field set, and every set field valid.
pub(crate) fn user_update(u: &UserUpdate) -> Rule {
    if changed_fields(u).is_empty() {
        return invalid("update", "nothing to change");
    }
    if let Some(e) = &u.email {
        email(e)?;
    }
    if let Some(n) = &u.first_name {
        text("first_name", n)?;
    }
    if let Some(n) = &u.last_name {
        text("last_name", n)?;
    }
    Ok(())
}
