//! Time: a microsecond [`Timestamp`] and the [`Clock`] every store evaluates expiry against.

use crate::{StoreError, StoreResult};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// An instant as whole microseconds since the Unix epoch (UTC).
///
/// Microseconds are what PostgreSQL `timestamptz` keeps, so a value read back from any backend
/// equals the value written: there is no sub-microsecond part to lose.
///
/// # Supported range
///
/// Any `i64` can be held, but only [`Timestamp::MIN`] ..= [`Timestamp::MAX`] (years 0001 to
/// 9999, the range RFC 3339 can write) can be **stored**: every store rejects a timestamp
/// outside it with `InvalidInput` before any I/O, the same on every backend, and every value
/// inside it round-trips exactly. Query, retention and purge *bounds* may be any `i64`: a bound
/// beyond the range compares like the model (everything stored is inside it).
///
/// ```
/// use credo_ports::Timestamp;
/// assert!(Timestamp::MAX.check("expires_at").is_ok());
/// assert!(Timestamp::from_micros(i64::MAX).check("expires_at").is_err());
/// assert_eq!(Timestamp::MIN.to_rfc3339(), "0001-01-01T00:00:00.000000Z");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The earliest storable instant: `0001-01-01T00:00:00.000000Z`.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000_000);

    /// The latest storable instant: `9999-12-31T23:59:59.999999Z`.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999_999);

    /// From microseconds since the Unix epoch.
    #[must_use]
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From whole seconds since the Unix epoch, saturating at the `i64` range.
    #[must_use]
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// True inside [`Timestamp::MIN`] ..= [`Timestamp::MAX`].
    #[must_use]
    pub const fn is_storable(self) -> bool {
        self.0 >= Self::MIN.0 && self.0 <= Self::MAX.0
    }

    /// `InvalidInput` naming `field` unless [`Timestamp::is_storable`].
    pub fn check(self, field: &'static str) -> StoreResult<()> {
        if self.is_storable() {
            Ok(())
        } else {
            Err(StoreError::invalid(
                field,
                format!(
                    "must be between {} and {} (got {} µs since the epoch)",
                    Self::MIN,
                    Self::MAX,
                    self.0
                ),
            ))
        }
    }

    /// This bound moved into `MIN - 1 µs ..= MAX + 1 µs`: against storable values it compares
    /// exactly as the original (with `<`, `<=`, `>` or `>=`), and every backend can hold it.
    #[must_use]
    pub fn clamp_bound(self) -> Self {
        Self(self.0.clamp(Self::MIN.0 - 1, Self::MAX.0 + 1))
    }

    /// This instant plus `d`, truncated to microseconds and saturating at the `i64` range.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_micros(d)))
    }

    /// This instant minus `d`, saturating.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_micros(d)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    #[must_use]
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        let micros = i128::from(self.0) - i128::from(earlier.0);
        Duration::from_micros(u64::try_from(micros.max(0)).unwrap_or(u64::MAX))
    }

    /// As a `chrono` UTC date-time, when chrono can represent it (about ±262,000 years).
    #[must_use]
    pub fn to_chrono(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.0)
    }

    /// RFC 3339 in UTC with exactly six fraction digits, e.g. `2025-12-12T10:00:00.000000Z`.
    ///
    /// Storable values always give this form (four-digit years). Values beyond chrono's range
    /// give a description instead, which no parser accepts.
    #[must_use]
    pub fn to_rfc3339(self) -> String {
        match self.to_chrono() {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("<out of range: {} µs since the epoch>", self.0),
        }
    }

    /// Parses any RFC 3339 date-time (`Z` or a numeric offset, `T`/`t`/space separator, any
    /// number of fraction digits), converted to UTC.
    ///
    /// Digits past the microsecond are truncated (towards the past), the same everywhere; a
    /// leap second (`:60`) folds into the next second; impossible dates (`02-30`) and
    /// out-of-range fields are refused. The result may lie outside the storable range (year
    /// 0000): the stores refuse it then.
    #[must_use]
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t = DateTime::parse_from_rfc3339(s).ok()?;
        Some(Timestamp(t.timestamp_micros()))
    }
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    /// Fails for a value beyond chrono's range rather than writing something unreadable.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.to_chrono() {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            None => Err(serde::ser::Error::custom(format!(
                "timestamp out of range: {} µs since the epoch",
                self.0
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp: {s:?}")))
    }
}

/// The source of "now" for a store. Injected at construction so tests control expiry exactly.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, in whole microseconds.
    fn now(&self) -> Timestamp;
}

/// The system wall clock, in microseconds. Read through the CPU's time-stamp counter,
/// anchored to the system clock and re-anchored every 100 ms: a few nanoseconds instead of a
/// `clock_gettime`, never more than the counter's drift over 100 ms (microseconds) from the
/// system clock, and a step of the system clock shows within 100 ms. Like the system clock
/// it is not monotonic: a renewal can move it back by the drift of one interval.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(crate::wall_clock::now_micros())
    }
}

/// A clock that moves only when told to; shared between a test and the stores it drives.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }

    /// Moves the clock to `t` (it may move backwards: tests use that to prove monotonic fields).
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.fetch_add(duration_micros(d), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn display_is_rfc3339() {
        let t = Timestamp::from_secs(86_400);
        assert_eq!(t.to_string(), t.to_rfc3339());
        assert!(t.to_string().starts_with("1970-01-02T00:00:00"), "{t}");
    }

    #[test]
    fn the_system_clock_reads_the_wall_clock() {
        let micros = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64
        };
        let before = micros();
        let now = SystemClock.now().as_micros();
        assert!(before <= now && now <= micros(), "{before} {now}");
    }

    /// Storable bounds stay as they are; anything beyond lands one microsecond outside.
    #[test]
    fn clamp_bound_keeps_storable_values_and_stops_one_past_the_range() {
        let (min, max) = (Timestamp::MIN.0, Timestamp::MAX.0);
        for t in [min - 1, min, 0, max, max + 1] {
            assert_eq!(Timestamp(t).clamp_bound(), Timestamp(t), "{t}");
        }
        assert_eq!(Timestamp(min - 5).clamp_bound(), Timestamp(min - 1));
        assert_eq!(Timestamp(i64::MIN).clamp_bound(), Timestamp(min - 1));
        assert_eq!(Timestamp(max + 5).clamp_bound(), Timestamp(max + 1));
        assert_eq!(Timestamp(i64::MAX).clamp_bound(), Timestamp(max + 1));
    }

    #[test]
    fn saturating_sub_subtracts_and_saturates() {
        let t = Timestamp::from_secs(10);
        assert_eq!(
            t.saturating_sub(Duration::from_secs(3)),
            Timestamp::from_secs(7)
        );
        assert_eq!(
            Timestamp(i64::MIN + 1).saturating_sub(Duration::from_secs(1)),
            Timestamp(i64::MIN)
        );
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        let t = Timestamp::from_secs(1_765_533_600); // 2025-12-12T10:00:00Z
        assert_eq!(t.to_rfc3339(), "2025-12-12T10:00:00.000000Z");
        let parse = Timestamp::parse_rfc3339;
        for same in [
            "2025-12-12T10:00:00Z",
            "2025-12-12T10:00:00.000Z",
            "2025-12-12t10:00:00z",
            "2025-12-12 10:00:00Z",
            "2025-12-12T12:00:00+02:00",
            "2025-12-12T05:30:00-04:30",
            "2025-12-12T10:00:00.000000000Z",
        ] {
            assert_eq!(parse(same), Some(t), "{same}");
        }
        // Sub-microsecond digits are truncated towards the past, before and after 1970.
        assert_eq!(
            parse("2025-12-12T10:00:00.123456789Z"),
            Some(Timestamp::from_micros(t.as_micros() + 123_456))
        );
        assert_eq!(
            parse("1969-12-31T23:59:59.9999999Z"),
            Some(Timestamp::from_micros(-1))
        );
        // A leap second folds into the next second.
        assert_eq!(
            parse("2016-12-31T23:59:60.5Z"),
            Some(Timestamp::from_micros(1_483_228_800_500_000))
        );
        assert_eq!(
            parse("2024-02-29T00:00:00Z")
                .map(|t| t.to_rfc3339())
                .as_deref(),
            Some("2024-02-29T00:00:00.000000Z")
        );
        for bad in [
            "2025-02-29T00:00:00Z",
            "2025-04-31T00:00:00Z",
            "2025-13-12T10:00:00Z",
            "2025-12-12T24:00:00Z",
            "2025-12-12T10:00:00",
            "2025-12-12",
            "2025-12-12T10:00:00+25:00",
            "",
            "not a time",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(Timestamp::MIN.to_rfc3339(), "0001-01-01T00:00:00.000000Z");
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59.999999Z");
        // Year 0000 is RFC 3339 but not storable.
        let year0 = parse("0000-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(year0.as_micros(), Timestamp::MIN.as_micros() - 1);
        assert_eq!(year0.check("at").unwrap_err().kind(), "InvalidInput");
        assert!(
            Timestamp::from_micros(i64::MIN)
                .to_rfc3339()
                .starts_with("<out of range")
        );
        assert!(serde_json::to_string(&Timestamp::from_micros(i64::MAX)).is_err());
    }

    proptest::proptest! {
        /// Every storable instant is written in one fixed-width form and read back exactly,
        /// through the text form and through JSON.
        #[test]
        fn storable_instants_round_trip(micros in Timestamp::MIN.0..=Timestamp::MAX.0) {
            let t = Timestamp::from_micros(micros);
            let s = t.to_rfc3339();
            proptest::prop_assert_eq!(s.len(), 27, "{}", s);
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
            proptest::prop_assert!(t.check("t").is_ok());
        }

        /// Any `i64` formats without panicking; the storable ones and only they pass `check`;
        /// a clamped bound compares with every storable value exactly as the original does.
        #[test]
        fn every_i64_is_handled(
            micros in proptest::prop_oneof![
                proptest::num::i64::ANY,
                (-3i64..=3).prop_map(|d| Timestamp::MIN.0 + d),
                (-3i64..=3).prop_map(|d| Timestamp::MAX.0 + d),
                (-3i64..=3).prop_map(|d| if d < 0 { i64::MAX + d + 1 } else { i64::MIN + d }),
            ],
            stored in proptest::prop_oneof![
                Timestamp::MIN.0..=Timestamp::MAX.0,
                (0i64..=2).prop_map(|d| Timestamp::MIN.0 + d),
                (0i64..=2).prop_map(|d| Timestamp::MAX.0 - d),
            ],
        ) {
            let t = Timestamp::from_micros(micros);
            let _ = t.to_rfc3339();
            let storable = (Timestamp::MIN.0..=Timestamp::MAX.0).contains(&micros);
            proptest::prop_assert_eq!(t.check("t").is_ok(), storable);
            let b = t.clamp_bound();
            proptest::prop_assert!(b.0 >= Timestamp::MIN.0 - 1 && b.0 <= Timestamp::MAX.0 + 1);
            proptest::prop_assert!(b.to_chrono().is_some());
            let v = Timestamp::from_micros(stored);
            proptest::prop_assert_eq!(v < t, v < b);
            proptest::prop_assert_eq!(v <= t, v <= b);
            proptest::prop_assert_eq!(v > t, v > b);
            proptest::prop_assert_eq!(v >= t, v >= b);
            let _ = t.duration_since(v);
            let _ = v.duration_since(t);
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_secs(10));
        assert_eq!(c.now(), Timestamp::from_secs(10));
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now().as_micros(), 11_500_000);
        c.set(Timestamp::from_secs(3));
        assert_eq!(c.now(), Timestamp::from_secs(3));
    }
}
