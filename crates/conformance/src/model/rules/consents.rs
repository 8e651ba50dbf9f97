//! The input rule of the consent store: a grant.

use super::fields::{purpose, storable};
use super::{Rule, invalid};
use credo_ports::{GrantConsent, Timestamp};

/// A grant at `now`: a valid purpose; an expiry, if any, storable and later than `now`.
pub(crate) fn grant(g: &GrantConsent, now: Timestamp) -> Rule {
    purpose(&g.purpose)?;
    if let Some(e) = g.expires_at {
        storable("expires_at", e)?;
        if e <= now {
            return invalid("expires_at", "not later than now");
        }
    }
    Ok(())
}
