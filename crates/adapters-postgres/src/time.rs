use chrono::{DateTime, Utc};
use credo_ports::{StoreError, Timestamp};

/// A [`Timestamp`] as a `timestamptz` parameter (both hold whole microseconds).
///
/// Stored values are validated to the storable range before they get here; bounds (query,
/// purge, `now`) may be any `i64` and are clamped just outside that range, where `timestamptz`
/// and chrono hold them and they compare with every stored value as the original would.
pub(crate) fn to_db(t: Timestamp) -> DateTime<Utc> {
    let t = t.clamp_bound();
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
    StoreError::Corrupt(format!("{column}: unknown value {value:?}").into())
}
