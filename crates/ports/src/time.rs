//! Time: a microsecond [`Timestamp`] and the [`Clock`] every store evaluates expiry against.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant as whole microseconds since the Unix epoch (UTC).
///
/// Microseconds are what PostgreSQL `timestamptz` keeps, so a value read back from any backend
/// equals the value written: there is no sub-microsecond part to lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From whole seconds since the Unix epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs * 1_000_000)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This instant plus `d`, truncated to microseconds and saturating at the representable range.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_micros(d)))
    }

    /// This instant minus `d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_micros(d)))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2025-12-12T10:00:00.000000Z`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod % 3600) / 60,
            sod % 60
        )
    }

    /// Parses the form written by [`Timestamp::to_rfc3339`] (UTC, `Z`, 0 to 6 fraction digits).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 || *b.last()? != b'Z' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
            return None;
        }
        let frac = &s[19..s.len() - 1];
        let micros = if frac.is_empty() {
            0
        } else {
            let digits = frac.strip_prefix('.')?;
            if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|c| c.is_ascii_digit())
            {
                return None;
            }
            format!("{digits:0<6}").parse::<i64>().ok()?
        };
        let days = days_from_civil(y, mo, d);
        Some(Timestamp(
            (days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000 + micros,
        ))
    }
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

// Howard Hinnant's civil calendar algorithms (public domain).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("invalid RFC 3339 UTC timestamp: {s:?}"))
        })
    }
}

/// The source of "now" for a store. Injected at construction so tests control expiry exactly.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant, in whole microseconds.
    fn now(&self) -> Timestamp;
}

/// The system wall clock, truncated to microseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        Timestamp(micros)
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

    #[test]
    fn rfc3339_round_trips_and_matches_known_instants() {
        let t = Timestamp::from_secs(1_765_533_600); // 2025-12-12T10:00:00Z
        assert_eq!(t.to_rfc3339(), "2025-12-12T10:00:00.000000Z");
        for micros in [
            0,
            1,
            -1,
            951_782_400_123_456,
            -62_135_596_800_000_000,
            4_102_444_799_999_999,
        ] {
            let t = Timestamp::from_micros(micros);
            assert_eq!(
                Timestamp::parse_rfc3339(&t.to_rfc3339()),
                Some(t),
                "{micros}"
            );
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2025-12-12T10:00:00Z"),
            Some(Timestamp::from_secs(1_765_533_600))
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2025-12-12T10:00:00.5Z").map(|t| t.as_micros() % 1_000_000),
            Some(500_000)
        );
        assert_eq!(Timestamp::parse_rfc3339("2025-12-12 10:00:00Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("2025-13-12T10:00:00Z"), None);
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
