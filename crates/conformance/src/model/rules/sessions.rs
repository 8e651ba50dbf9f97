//! The input rules of the session store: a new session and a token revocation.

use super::fields::{optional_text, storable, text};
use super::{Rule, invalid};
use credo_ports::validate::MAX_SCOPES;
use credo_ports::{NewSession, SessionStatus, Timestamp};

/// A new session at `now`: client id; 1 to [`MAX_SCOPES`] scopes, each valid text without
/// whitespace and none repeated; not created revoked; optional device fields; `expires_at`
/// storable and later than `now`.
pub(crate) fn new_session(s: &NewSession, now: Timestamp) -> Rule {
    text("client_id", &s.client_id)?;
    if s.scopes.is_empty() {
        return invalid("scopes", "at least one scope");
    }
    if s.scopes.len() > MAX_SCOPES {
        return invalid("scopes", format!("at most {MAX_SCOPES} scopes"));
    }
    for (i, scope) in s.scopes.iter().enumerate() {
        text("scopes", scope)?;
        if scope.chars().any(char::is_whitespace) {
            return invalid("scopes", "a scope holds whitespace");
        }
        for earlier in &s.scopes[..i] {
            if earlier == scope {
                return invalid("scopes", format!("{scope:?} given twice"));
            }
        }
    }
    if s.status == SessionStatus::Revoked {
        return invalid("status", "cannot be created revoked");
    }
    optional_text("user_agent", s.device.user_agent.as_deref())?;
    optional_text("ip_address", s.device.ip_address.as_deref())?;
    optional_text("device_id", s.device.device_id.as_deref())?;
    optional_text("device_name", s.device.device_name.as_deref())?;
    storable("expires_at", s.expires_at)?;
    if s.expires_at <= now {
        return invalid("expires_at", "not later than now");
    }
    Ok(())
}

/// A token id (JWT `jti`): a required text field.
pub(crate) fn jti(value: &str) -> Rule {
    text("jti", value)
}

/// A token revocation at `now`: a valid `jti`, `expires_at` storable and later than `now`.
pub(crate) fn token_revocation(id: &str, expires_at: Timestamp, now: Timestamp) -> Rule {
    jti(id)?;
    storable("expires_at", expires_at)?;
    if expires_at <= now {
        return invalid("expires_at", "not later than now");
    }
    Ok(())
}
