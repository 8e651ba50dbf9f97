use chrono::{DateTime, Utc};
use credo_ports::{StoreError, Timestamp};

/// A [`Timestamp`] as a `timestamptz` parameter (both hold whole microseconds).
pub(crate) fn to_db(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.as_micros()).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A `timestamptz` column as a [`Timestamp`].
pub(crate) fn from_db(t: DateTime<Utc>) -> Timestamp {
    Timestamp::from_micros(t.timestamp_micros())
}

/// Optional variant of [`from_db`].
pub(crate) fn from_db_opt(t: Option<DateTime<Utc>>) -> Option<Timestamp> {
    t.map(from_db)
}

/// A status or category column that holds an unknown word.
pub(crate) fn bad_enum(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{column}: unknown value {value:?}"))
}
