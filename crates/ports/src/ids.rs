//! Typed identifiers: newtypes over [`uuid::Uuid`] so a session id can never be passed where a
//! user id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $ctor:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random identifier.
            pub fn new() -> Self {
                Self(Uuid::$ctor())
            }

            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

id_type!(
    /// Identifies a tenant; every record and every query is scoped by one.
    TenantId,
    new_v4
);
id_type!(
    /// Identifies a user within a tenant.
    UserId,
    new_v4
);
id_type!(
    /// Identifies a session.
    SessionId,
    new_v4
);
id_type!(
    /// Identifies a consent record (one per tenant, user and purpose).
    ConsentId,
    new_v4
);
id_type!(
    /// Identifies an audit event. New ids are UUIDv7, so they sort by creation time.
    EventId,
    now_v7
);
