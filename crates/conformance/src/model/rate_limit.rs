//! The model's [`RateLimitStore`]: its own GCRA, written naively from the definition (DESIGN.md
//! §5 RateLimitStore: one theoretical arrival time per key, integer microseconds) rather than
//! calling `credo_ports::rate_limit::gcra`, so that it is an independent oracle for that
//! function too. The unit tests below cross-check the two.

use super::{Inner, RateEntry, remove_up_to, rules};
use credo_ports::{Decision, RateLimitPolicy, RateLimitStore, StoreResult, TenantId, Timestamp};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// GCRA state kept in `World::rate`, one TAT per (tenant, key).
pub(crate) struct ModelRateLimits(pub(crate) Arc<Inner>);

/// A non-negative number of microseconds as a duration (negative counts as zero).
fn micros(v: i64) -> Duration {
    Duration::from_micros(u64::try_from(v).unwrap_or(0))
}

/// The emission interval T of a (valid) policy: the time one request "costs", the period
/// divided by the limit and rounded **up** to a whole microsecond, so that no more than
/// `limit` requests are ever admitted per period; at least 1 µs.
pub(crate) fn emission_interval_us(policy: &RateLimitPolicy) -> i64 {
    let period = i64::try_from(policy.period.as_micros()).unwrap_or(i64::MAX);
    let limit = i64::from(policy.limit.max(1));
    let mut t = period / limit;
    if t * limit < period {
        t += 1;
    }
    t.max(1)
}

/// One policy in GCRA terms.
#[derive(Clone, Copy, Debug)]
struct Gcra {
    /// Emission interval T, in microseconds.
    t: i64,
    /// Tolerance τ = T x burst: how far ahead of the present the TAT may run.
    tau: i64,
}

impl Gcra {
    fn of(policy: &RateLimitPolicy) -> Self {
        let t = emission_interval_us(policy);
        Gcra {
            t,
            tau: t * i64::from(policy.burst),
        }
    }

    /// The GCRA conformance test: a request of `cost` arriving at `at`, on a key whose TAT is
    /// `tat` (a TAT in the past counts as `at`: the key is idle), is admitted when the TAT it
    /// leaves behind runs at most τ ahead of `at`.
    fn admits(self, tat: i64, at: i64, cost: u32) -> bool {
        let tat_after = tat.max(at) + self.t * i64::from(cost);
        tat_after - at <= self.tau
    }

    /// How many requests of cost 1 would be admitted at `now`, one after the other, on a key
    /// whose TAT is `tat`. Admitting k of them one by one leaves the TAT where one request of
    /// cost k would, so this is the largest k the conformance test admits, found by bisection
    /// over 0..=burst (a larger k is never easier). Counting one by one cost a million rounds
    /// per check at the largest burst.
    fn remaining(self, tat: i64, now: i64) -> u32 {
        let (mut lo, mut hi) = (0u32, u32::try_from(self.tau / self.t).unwrap_or(u32::MAX));
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.admits(tat, now, mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// One GCRA step in integer microseconds: the decision for a request of `cost` at `now` on a
/// key whose stored TAT is `stored` (`None`: never seen or forgotten), and the TAT to store
/// when it is admitted (a denied request consumes nothing).
fn step(
    policy: &RateLimitPolicy,
    stored: Option<Timestamp>,
    now: Timestamp,
    cost: u32,
) -> (Decision, Option<Timestamp>) {
    let g = Gcra::of(policy);
    let now = now.as_micros();
    // An unknown key, or one whose TAT has passed, is idle: its TAT is now.
    let tat = match stored {
        Some(s) if s.as_micros() > now => s.as_micros(),
        _ => now,
    };
    if g.admits(tat, now, cost) {
        let tat_after = tat + g.t * i64::from(cost);
        let decision = Decision {
            allowed: true,
            limit: policy.limit,
            remaining: g.remaining(tat_after, now),
            // Fully idle again once the TAT is reached.
            reset_after: micros(tat_after - now),
            retry_after: Duration::ZERO,
        };
        (decision, Some(Timestamp::from_micros(tat_after)))
    } else {
        // The earliest instant at which this request would pass: when the TAT it would leave
        // behind is exactly τ ahead (the TAT is not moving, nothing being admitted).
        let admitted_at = tat + g.t * i64::from(cost) - g.tau;
        debug_assert!(g.admits(tat, admitted_at, cost) && !g.admits(tat, admitted_at - 1, cost));
        let decision = Decision {
            allowed: false,
            limit: policy.limit,
            remaining: g.remaining(tat, now),
            reset_after: micros(tat - now),
            retry_after: micros(admitted_at - now),
        };
        (decision, None)
    }
}

impl ModelRateLimits {
    /// Validates, then runs one step under the lock, storing the new TAT only if `consume`.
    fn run(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
        consume: bool,
    ) -> StoreResult<Decision> {
        let now = self.0.now();
        rules::rate_policy(&policy, cost)?;
        rules::rate_key(key)?;
        rules::rate_clock(now)?;
        let mut w = self.0.world.lock();
        let idx = w
            .rate
            .iter()
            .position(|e| e.tenant == tenant && e.key == key);
        let (decision, new_tat) = step(&policy, idx.map(|i| w.rate[i].tat), now, cost);
        if let (true, Some(tat)) = (consume, new_tat) {
            match idx {
                Some(i) => w.rate[i].tat = tat,
                None => w.rate.push(RateEntry {
                    tenant,
                    key: key.to_string(),
                    tat,
                }),
            }
        }
        Ok(decision)
    }
}

#[async_trait::async_trait]
impl RateLimitStore for ModelRateLimits {
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision> {
        self.run(tenant, key, policy, cost, true)
    }

    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision> {
        self.run(tenant, key, policy, 1, false)
    }

    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        rules::rate_key(key)?;
        let mut w = self.0.world.lock();
        w.rate.retain(|e| !(e.tenant == tenant && e.key == key));
        Ok(())
    }

    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        Ok(remove_up_to(&mut w.rate, limit, |e| e.tat <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::rate_limit::{CLOCK_LIMIT_US, MAX_TOLERANCE_US};
    use credo_ports::{RateLimitPolicy, TenantId, Timestamp};
    use proptest::prelude::*;
    use std::num::NonZeroU32;
    use std::time::Duration;

    fn policy() -> RateLimitPolicy {
        // Emission interval 1 s, tolerance 3 s.
        RateLimitPolicy {
            limit: 10,
            period: Duration::from_secs(10),
            burst: 3,
        }
    }

    #[tokio::test]
    async fn burst_then_denials_that_consume_nothing() {
        let (m, clock) = model();
        let rl = m.rate_limits();
        let t = TenantId::new();
        for expected in [2, 1, 0] {
            let d = rl.check(t, "k", policy(), 1).await.unwrap();
            assert!(d.allowed);
            assert_eq!((d.remaining, d.limit), (expected, 10));
            assert_eq!(d.retry_after, Duration::ZERO);
        }
        for _ in 0..5 {
            let d = rl.check(t, "k", policy(), 1).await.unwrap();
            assert!(!d.allowed);
            assert_eq!(d.remaining, 0);
            assert_eq!(d.retry_after, Duration::from_secs(1));
            assert_eq!(d.reset_after, Duration::from_secs(3));
        }
        // Other tenants and keys are untouched.
        assert!(
            rl.check(TenantId::new(), "k", policy(), 3)
                .await
                .unwrap()
                .allowed
        );
        assert!(rl.check(t, "other", policy(), 1).await.unwrap().allowed);
        // Denials consumed nothing: exactly one interval later, one more passes.
        clock.advance(Duration::from_millis(999));
        assert!(!rl.peek(t, "k", policy()).await.unwrap().allowed);
        clock.advance(Duration::from_millis(1));
        let p = rl.peek(t, "k", policy()).await.unwrap();
        assert!(p.allowed);
        assert_eq!(p.remaining, 0);
        assert!(rl.check(t, "k", policy(), 1).await.unwrap().allowed);
        assert!(!rl.check(t, "k", policy(), 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn costly_denial_reports_partial_capacity() {
        let (m, _) = model();
        let rl = m.rate_limits();
        let t = TenantId::new();
        assert!(rl.check(t, "k", policy(), 2).await.unwrap().allowed);
        let d = rl.check(t, "k", policy(), 2).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1, "one unit of cost 1 still fits");
        assert_eq!(d.retry_after, Duration::from_secs(1));
        assert_eq!(d.reset_after, Duration::from_secs(2));
        assert!(rl.check(t, "k", policy(), 1).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn validation_reset_and_purge() {
        let (m, clock) = model();
        let rl = m.rate_limits();
        let t = TenantId::new();
        for (k, p, cost) in [
            ("k", policy(), 0),
            ("k", policy(), 4),
            ("", policy(), 1),
            ("k", RateLimitPolicy::per(0, Duration::from_secs(1)), 1),
        ] {
            assert_eq!(
                rl.check(t, k, p, cost).await.unwrap_err().kind(),
                "InvalidInput"
            );
        }
        assert_eq!(rl.reset(t, "").await.unwrap_err().kind(), "InvalidInput");
        rl.check(t, "a", policy(), 3).await.unwrap();
        rl.check(t, "b", policy(), 1).await.unwrap();
        rl.reset(t, "a").await.unwrap();
        assert_eq!(rl.peek(t, "a", policy()).await.unwrap().remaining, 2);
        rl.check(t, "a", policy(), 3).await.unwrap();
        // "b" has TAT T0+1s, "a" T0+3s: at T0+1s exactly, only "b" is idle.
        clock.set(T0.saturating_add(Duration::from_secs(1)));
        assert_eq!(rl.purge_idle(NonZeroU32::MAX).await.unwrap(), 1);
        clock.set(T0.saturating_add(Duration::from_secs(3)));
        assert_eq!(rl.purge_idle(NonZeroU32::MAX).await.unwrap(), 1);
        assert_eq!(rl.purge_idle(NonZeroU32::MAX).await.unwrap(), 0);
    }

    #[test]
    fn step_agrees_with_ports_gcra_on_a_grid() {
        // Independent implementations must agree; a cheap cross-check of both.
        let policies = [
            policy(),
            RateLimitPolicy::per(7, Duration::from_millis(1000)),
            RateLimitPolicy {
                limit: 3,
                period: Duration::from_micros(10),
                burst: 5,
            },
        ];
        for p in policies {
            for stored in [
                None,
                Some(-5_000_000),
                Some(0),
                Some(2_500_000),
                Some(9_000_000),
            ] {
                for cost in 1..=p.burst.min(5) {
                    let now = T0;
                    let stored = stored
                        .map(|d: i64| credo_ports::Timestamp::from_micros(now.as_micros() + d));
                    assert_eq!(
                        super::step(&p, stored, now, cost),
                        credo_ports::rate_limit::gcra(&p, stored, now, cost),
                        "{p:?} {stored:?} {cost}"
                    );
                }
            }
        }
    }

    /// Exact edges of one policy (T = 1 s, τ = 3 s), each derived by hand from the definition.
    #[test]
    fn gcra_at_exact_edges() {
        use super::step;
        let p = policy();
        let at = |us: i64| Timestamp::from_micros(T0.as_micros() + us);
        const S: i64 = 1_000_000;
        // A TAT exactly τ - T ahead: one more fits, and it leaves the TAT exactly τ ahead.
        let (d, tat) = step(&p, Some(at(2 * S)), T0, 1);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_after), (0, Duration::from_secs(3)));
        assert_eq!(tat, Some(at(3 * S)));
        // A TAT one microsecond further: denied, and admitted exactly 1 µs later.
        let (d, tat) = step(&p, Some(at(2 * S + 1)), T0, 1);
        assert!(!d.allowed && tat.is_none());
        assert_eq!(d.retry_after, Duration::from_micros(1));
        assert_eq!(d.reset_after, Duration::from_micros(2 * S as u64 + 1));
        assert_eq!(d.remaining, 0);
        let (d, _) = step(&p, Some(at(2 * S + 1)), at(1), 1);
        assert!(d.allowed, "at the retry instant");
        // A TAT exactly now, or in the past, is an idle key: the whole burst is there.
        for stored in [None, Some(T0), Some(at(-1)), Some(Timestamp::MIN)] {
            let (d, tat) = step(&p, stored, T0, 3);
            assert!(d.allowed, "{stored:?}");
            assert_eq!((d.remaining, tat), (0, Some(at(3 * S))));
        }
        // Cost 2 with 1.5 s of room: denied; one unit of cost 1 still fits; the retry is when
        // 2 s of room are there.
        let (d, _) = step(&p, Some(at(3 * S / 2)), T0, 2);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.retry_after, Duration::from_millis(500));
        // Rounding up: 3 per 10 µs gives T = 4 µs, so 3 fit in 12 µs, never 4 in 10.
        let odd = RateLimitPolicy {
            limit: 3,
            period: Duration::from_micros(10),
            burst: 1,
        };
        assert_eq!(super::emission_interval_us(&odd), 4);
        let (d, tat) = step(&odd, None, T0, 1);
        assert_eq!((d.allowed, tat), (true, Some(at(4))));
        let (d, _) = step(&odd, tat, at(3), 1);
        assert_eq!(
            (d.allowed, d.retry_after),
            (false, Duration::from_micros(1))
        );
        assert!(step(&odd, tat, at(4), 1).0.allowed);
    }

    proptest! {
        /// Cross-check with `credo_ports::rate_limit::gcra` over valid policies, TATs around
        /// now and every cost: two independent statements of GCRA must agree exactly.
        #[test]
        fn step_agrees_with_ports_gcra(
            limit in prop_oneof![1u32..20, 999_990u32..=1_000_000],
            period_us in prop_oneof![
                1_000u64..5_000,
                999_000u64..1_001_000,
                86_399_999_000u64..=86_400_000_000,
            ],
            burst in prop_oneof![1u32..10, 1_000u32..1_100],
            cost_pick in any::<u32>(),
            // Where the stored TAT stands: none, far in the past, or somewhere from just
            // before now to just past the furthest a key can run ahead (τ).
            stored in prop_oneof![
                Just(Stored::None),
                (-100_000_000_000i64..0).prop_map(Stored::Past),
                any::<u64>().prop_map(Stored::WithinReach),
            ],
            now in prop_oneof![
                -1_000_000_000_000i64..1_000_000_000_000,
                Just(CLOCK_LIMIT_US - 1),
                Just(1 - CLOCK_LIMIT_US),
            ],
        ) {
            // Made valid rather than filtered: at most one request per microsecond, and a
            // tolerance of at most 31 days.
            let limit = limit.min(u32::try_from(period_us).unwrap_or(u32::MAX));
            let mut p = RateLimitPolicy {
                limit,
                period: Duration::from_micros(period_us),
                burst,
            };
            let t = super::emission_interval_us(&p);
            let most = u32::try_from(MAX_TOLERANCE_US / t).unwrap_or(u32::MAX);
            p.burst = p.burst.min(most);
            prop_assert_eq!(super::super::rules::rate_policy(&p, 1), Ok(()), "{:?}", p);
            let burst = p.burst;
            let cost = 1 + cost_pick % burst;
            let tau = super::emission_interval_us(&p) * i64::from(burst);
            let stored = match stored {
                Stored::None => None,
                Stored::Past(d) => Some(now + d),
                Stored::WithinReach(r) => Some(now - 3 + (r % (tau as u64 + 7)) as i64),
            }
            .map(Timestamp::from_micros);
            let now = Timestamp::from_micros(now);
            prop_assert_eq!(
                super::step(&p, stored, now, cost),
                credo_ports::rate_limit::gcra(&p, stored, now, cost),
                "{:?} {:?} {:?} {}", p, stored, now, cost
            );
            prop_assert_eq!(super::emission_interval_us(&p), p.emission_interval_us());
        }
    }

    #[derive(Clone, Debug)]
    enum Stored {
        None,
        Past(i64),
        WithinReach(u64),
    }
}
