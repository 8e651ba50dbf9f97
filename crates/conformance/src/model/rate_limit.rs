//! The model's [`RateLimitStore`]: its own GCRA, written from the spec rather than calling
//! `credo_ports::rate_limit::gcra`, so that it is an independent oracle for that function too.

use super::{Inner, RateEntry};
use credo_ports::StoreError;
use credo_ports::rate_limit::validate_key;
use credo_ports::{Decision, RateLimitPolicy, RateLimitStore, StoreResult, TenantId, Timestamp};
use std::sync::Arc;
use std::time::Duration;

/// GCRA state kept in `World::rate`, one TAT per (tenant, key).
pub(crate) struct ModelRateLimits(pub(crate) Arc<Inner>);

/// A non-negative number of microseconds as a duration.
fn micros(v: i64) -> Duration {
    Duration::from_micros(u64::try_from(v).unwrap_or(0))
}

/// One GCRA step in integer microseconds: the decision for a request of `cost` at `now` on a
/// key whose stored TAT is `stored`, and the TAT to store when it is admitted.
fn step(
    policy: &RateLimitPolicy,
    stored: Option<Timestamp>,
    now: Timestamp,
    cost: u32,
) -> (Decision, Option<Timestamp>) {
    let now = now.as_micros();
    let period = i64::try_from(policy.period.as_micros()).unwrap_or(i64::MAX);
    let limit = i64::from(policy.limit);
    // Emission interval, rounded up so no more than `limit` pass per period.
    let t = ((period + limit - 1) / limit).max(1);
    let tau = t * i64::from(policy.burst);
    let tat = stored.map_or(now, Timestamp::as_micros).max(now);
    let new_tat = tat + t * i64::from(cost);
    let allow_at = new_tat - tau;
    let remaining =
        |tat_after: i64| u32::try_from(((tau - (tat_after - now)) / t).max(0)).unwrap_or(0);
    if now < allow_at {
        let d = Decision {
            allowed: false,
            limit: policy.limit,
            remaining: remaining(tat),
            reset_after: micros(tat - now),
            retry_after: micros(allow_at - now),
        };
        (d, None)
    } else {
        let d = Decision {
            allowed: true,
            limit: policy.limit,
            remaining: remaining(new_tat),
            reset_after: micros(new_tat - now),
            retry_after: Duration::ZERO,
        };
        (d, Some(Timestamp::from_micros(new_tat)))
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
        policy.validate(cost)?;
        validate_key(key)?;
        // Its own statement of the clock range (the adapters share `validate_clock`).
        if now.as_micros().unsigned_abs() >= credo_ports::rate_limit::CLOCK_LIMIT_US as u64 {
            return Err(StoreError::invalid(
                "clock",
                "outside the rate limiter's range",
            ));
        }
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
        validate_key(key)?;
        let mut w = self.0.world.lock();
        w.rate.retain(|e| !(e.tenant == tenant && e.key == key));
        Ok(())
    }

    async fn purge_idle(&self) -> StoreResult<u64> {
        let now = self.0.now();
        let mut w = self.0.world.lock();
        let n = w.rate.len();
        w.rate.retain(|e| e.tat > now);
        Ok((n - w.rate.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{T0, model};
    use credo_ports::{RateLimitPolicy, TenantId};
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
        assert_eq!(rl.purge_idle().await.unwrap(), 1);
        clock.set(T0.saturating_add(Duration::from_secs(3)));
        assert_eq!(rl.purge_idle().await.unwrap(), 1);
        assert_eq!(rl.purge_idle().await.unwrap(), 0);
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
}
