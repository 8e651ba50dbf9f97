//! Rate limiting with GCRA (generic cell rate algorithm): the state of a key is one timestamp,
//! the theoretical arrival time (TAT), and every backend computes the same answer in integer
//! microseconds.

use crate::{StoreError, StoreResult, TenantId, Timestamp, validate};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::time::Duration;

/// Largest `limit` or `burst` accepted.
pub const MAX_RATE: u32 = 1_000_000;
/// Longest period accepted.
pub const MAX_PERIOD: Duration = Duration::from_secs(86_400);
/// Shortest period accepted.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);
/// Largest `burst * emission interval`: keeps every TAT far below 2^53 microseconds, so Redis
/// Lua (whose numbers are doubles) computes exactly what Rust computes.
pub const MAX_TOLERANCE_US: i64 = 31 * 86_400 * 1_000_000;
/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// `limit` requests per `period`, of which up to `burst` may arrive at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RateLimitPolicy {
    /// Sustained requests per period (1..=1,000,000).
    pub limit: u32,
    /// The period (1 ms ..= 24 h).
    pub period: Duration,
    /// Requests admitted at one instant on an idle key (1..=1,000,000).
    pub burst: u32,
}

impl RateLimitPolicy {
    /// `limit` per `period` with a burst equal to `limit`.
    pub fn per(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            burst: limit,
        }
    }

    /// Rejects zero or absurd policies, and costs outside `1..=burst`.
    pub fn validate(&self, cost: u32) -> StoreResult<()> {
        if self.limit == 0 || self.limit > MAX_RATE {
            return Err(StoreError::invalid(
                "limit",
                format!("must be 1..={MAX_RATE}"),
            ));
        }
        if self.burst == 0 || self.burst > MAX_RATE {
            return Err(StoreError::invalid(
                "burst",
                format!("must be 1..={MAX_RATE}"),
            ));
        }
        if self.period < MIN_PERIOD || self.period > MAX_PERIOD {
            return Err(StoreError::invalid(
                "period",
                "must be between 1 ms and 24 h",
            ));
        }
        if (self.period.as_micros() as i64) < i64::from(self.limit) {
            return Err(StoreError::invalid(
                "period",
                "shorter than one microsecond per request",
            ));
        }
        if self.tolerance_us() > MAX_TOLERANCE_US {
            return Err(StoreError::invalid(
                "burst",
                "burst x (period / limit) must not exceed 31 days",
            ));
        }
        if cost == 0 || cost > self.burst {
            return Err(StoreError::invalid(
                "cost",
                format!("must be 1..=burst ({}), got {cost}", self.burst),
            ));
        }
        Ok(())
    }

    /// Time between two requests at the sustained rate, rounded up so that no more than
    /// `limit` are ever admitted per period.
    #[must_use]
    pub fn emission_interval_us(&self) -> i64 {
        let period = self.period.as_micros() as i64;
        let limit = i64::from(self.limit.max(1));
        ((period + limit - 1) / limit).max(1)
    }

    /// How far ahead of now the TAT may run: `emission_interval * burst`.
    #[must_use]
    pub fn tolerance_us(&self) -> i64 {
        self.emission_interval_us() * i64::from(self.burst)
    }
}

/// The answer to a rate-limit check, with what the `X-RateLimit-*` and `Retry-After` headers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The policy's limit.
    pub limit: u32,
    /// Requests of cost 1 that would still be admitted right now.
    pub remaining: u32,
    /// Time until the key is fully idle again (all capacity back).
    pub reset_after: Duration,
    /// When denied, the wait before this request would be admitted; zero when allowed.
    pub retry_after: Duration,
}

/// One GCRA step at `now` on a key whose stored TAT is `tat` (`None`: unknown or idle).
/// Returns the decision and, when the request is admitted, the new TAT to store.
/// Every backend that computes in Rust calls this; the Redis script mirrors it.
#[must_use]
pub fn gcra(
    policy: &RateLimitPolicy,
    tat: Option<Timestamp>,
    now: Timestamp,
    cost: u32,
) -> (Decision, Option<Timestamp>) {
    let t = policy.emission_interval_us();
    let tau = policy.tolerance_us();
    let now_us = now.as_micros();
    let tat_us = tat.map_or(now_us, |x| x.as_micros()).max(now_us);
    let new_tat = tat_us + t * i64::from(cost);
    let allow_at = new_tat - tau;
    let us = |v: i64| Duration::from_micros(v.max(0) as u64);
    if now_us < allow_at {
        let remaining = ((tau - (tat_us - now_us)) / t).max(0) as u32;
        let decision = Decision {
            allowed: false,
            limit: policy.limit,
            remaining,
            reset_after: us(tat_us - now_us),
            retry_after: us(allow_at - now_us),
        };
        (decision, None)
    } else {
        let remaining = ((tau - (new_tat - now_us)) / t).max(0) as u32;
        let decision = Decision {
            allowed: true,
            limit: policy.limit,
            remaining,
            reset_after: us(new_tat - now_us),
            retry_after: Duration::ZERO,
        };
        (decision, Some(Timestamp::from_micros(new_tat)))
    }
}

/// The clock range rate-limit checks accept: `|now|` below `2^52 - 2^43` µs (about the years
/// 1828 to 2112). Redis computes GCRA in Lua doubles, exact below 2^53: a stored TAT and a
/// later `now` (a clock may also move back) then differ by less than 2^53 whatever they are,
/// the margin covering the largest tolerance. Every backend refuses a clock outside it the
/// same way.
pub const CLOCK_LIMIT_US: i64 = (1 << 52) - (1 << 43);

// What the bound is for: a stored TAT and a later `now`, each anywhere within it, plus the
// largest tolerance, stay below 2^53. A build with constants that break it does not compile.
const _: () = assert!(2 * CLOCK_LIMIT_US + MAX_TOLERANCE_US < 1 << 53);

/// `InvalidInput` on field `clock` when `now` is outside [`CLOCK_LIMIT_US`].
pub fn validate_clock(now: Timestamp) -> StoreResult<()> {
    if now.as_micros().unsigned_abs() >= CLOCK_LIMIT_US as u64 {
        return Err(StoreError::invalid(
            "clock",
            format!("rate limits need a clock within ±{CLOCK_LIMIT_US} µs of 1970, got {now}"),
        ));
    }
    Ok(())
}

/// Rejects an empty, over-long or control-character key.
pub fn validate_key(key: &str) -> StoreResult<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::invalid(
            "key",
            format!("at most {MAX_KEY_LEN} bytes"),
        ));
    }
    validate::text("key", key)
}

/// Rate-limit state per `(tenant, key)`.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Checks and, if admitted, consumes `cost` units. A denied request consumes nothing.
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision>;
    /// What a check of cost 1 would answer, consuming nothing.
    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision>;
    /// Forgets the key's state (full capacity again).
    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()>;
    /// Removes the state of at most `limit` keys that are idle at now (their TAT has passed);
    /// returns how many, so fewer than `limit` means none is left. A key a concurrent check
    /// used meanwhile is kept.
    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_interval() {
        let p = RateLimitPolicy {
            limit: 10,
            period: Duration::from_secs(10),
            burst: 3,
        };
        let now = Timestamp::from_secs(100);
        let mut tat = None;
        for expected_remaining in [2, 1, 0] {
            let (d, new) = gcra(&p, tat, now, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = new;
        }
        let (d, new) = gcra(&p, tat, now, 1);
        assert!(!d.allowed && new.is_none());
        assert_eq!(d.retry_after, Duration::from_secs(1));
        assert_eq!(d.reset_after, Duration::from_secs(3));
        let (d, _) = gcra(&p, tat, Timestamp::from_secs(101), 1);
        assert!(d.allowed, "one interval later one more is admitted");
    }

    /// The tolerance bound is 31 days, inclusive: one request a day with a burst of 31 is
    /// exactly at it, a burst of 32 a day past it.
    #[test]
    fn tolerance_of_exactly_31_days_is_accepted() {
        let day = Duration::from_secs(86_400);
        let at = RateLimitPolicy {
            limit: 1,
            period: day,
            burst: 31,
        };
        assert_eq!(at.tolerance_us(), 31 * 86_400 * 1_000_000);
        assert!(at.validate(1).is_ok());
        let past = RateLimitPolicy { burst: 32, ..at };
        assert_eq!(past.validate(1).unwrap_err().kind(), "InvalidInput");
    }

    /// The clock bound covers this century, inclusive of its documented edges.
    #[test]
    fn the_clock_bound_keeps_every_gcra_value_exact_in_a_double() {
        let year_2100 = Timestamp::from_secs(4_102_444_800);
        assert!(validate_clock(year_2100).is_ok());
        assert!(validate_clock(Timestamp::from_micros(-year_2100.as_micros())).is_ok());
        assert!(validate_clock(Timestamp::from_micros(CLOCK_LIMIT_US - 1)).is_ok());
        assert!(validate_clock(Timestamp::from_micros(CLOCK_LIMIT_US)).is_err());
        assert!(validate_clock(Timestamp::from_micros(-CLOCK_LIMIT_US)).is_err());
    }

    #[test]
    fn rejects_absurd_policies() {
        let ok = RateLimitPolicy::per(100, Duration::from_secs(60));
        assert!(ok.validate(1).is_ok());
        assert!(ok.validate(0).is_err());
        assert!(ok.validate(101).is_err());
        assert!(
            RateLimitPolicy::per(0, Duration::from_secs(1))
                .validate(1)
                .is_err()
        );
        assert!(
            RateLimitPolicy::per(10, Duration::ZERO)
                .validate(1)
                .is_err()
        );
        assert!(
            RateLimitPolicy::per(10, Duration::from_secs(86_401))
                .validate(1)
                .is_err()
        );
        assert!(
            RateLimitPolicy::per(1_000_000, Duration::from_millis(1))
                .validate(1)
                .is_err()
        );
    }
}
