use crate::mutants::Switch;
use async_trait::async_trait;
use credo_ports::rate_limit::{gcra, validate_clock, validate_key};
use credo_ports::{
    Clock, Decision, RateLimitPolicy, RateLimitStore, StoreResult, TenantId, Timestamp,
};
use dashmap::DashMap;
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A map key: the tenant and the caller's key.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Owned(TenantId, String);

/// A key seen through a borrow, so that a lookup of an existing key allocates nothing
/// (`(tenant, &str)` finds an entry stored as `(tenant, String)`).
trait KeyView {
    fn parts(&self) -> (TenantId, &str);
}

impl KeyView for Owned {
    fn parts(&self) -> (TenantId, &str) {
        (self.0, &self.1)
    }
}

impl KeyView for (TenantId, &str) {
    fn parts(&self) -> (TenantId, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn KeyView + 'a> for Owned {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

// Must hash exactly like the `dyn KeyView` it is looked up by.
impl Hash for Owned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// The map's hasher: foldhash, seeded at random per map. SipHash (the standard one) was a
/// tenth of a check's time; a per-map random seed keeps keys chosen by clients (addresses,
/// emails) from being aimed at one bucket.
type KeyHasher = foldhash::fast::RandomState;

/// In-memory GCRA [`RateLimitStore`]: one TAT per key, updated under the key's entry lock.
///
/// Idle keys are reclaimed: once per sweep interval (store clock) a check sweeps out every key
/// whose TAT has passed and shrinks the map, so rotating keys (e.g. IPv6 addresses) cannot grow
/// memory without bound.
pub struct InMemoryRateLimitStore {
    clock: Arc<dyn Clock>,
    tats: DashMap<Owned, Timestamp, KeyHasher>,
    sweep_interval: Duration,
    next_sweep_us: AtomicI64,
    mutant: Switch,
}

impl InMemoryRateLimitStore {
    pub(crate) fn new(clock: Arc<dyn Clock>, sweep_interval: Duration, mutant: Switch) -> Self {
        let next = clock.now().saturating_add(sweep_interval).as_micros();
        Self {
            clock,
            tats: DashMap::with_hasher(KeyHasher::default()),
            sweep_interval,
            next_sweep_us: AtomicI64::new(next),
            mutant,
        }
    }

    /// Number of keys currently held in memory.
    pub fn key_count(&self) -> usize {
        self.tats.len()
    }

    fn sweep(&self, now: Timestamp) -> u64 {
        let mut removed = 0u64;
        self.tats.retain(|_, tat| {
            let keep = *tat > now;
            removed += u64::from(!keep);
            keep
        });
        self.tats.shrink_to_fit();
        removed
    }

    /// At most `limit` idle keys, each removed only if still idle under its entry's lock.
    fn sweep_some(&self, now: Timestamp, limit: NonZeroU32) -> u64 {
        let doomed: Vec<Owned> = self
            .tats
            .iter()
            .filter(|e| *e.value() <= now)
            .map(|e| e.key().clone())
            .take(limit.get() as usize)
            .collect();
        let mut removed = 0u64;
        for key in &doomed {
            removed += u64::from(self.tats.remove_if(key, |_, tat| *tat <= now).is_some());
        }
        if removed < u64::from(limit.get()) {
            self.tats.shrink_to_fit();
        }
        removed
    }

    fn maybe_sweep(&self, now: Timestamp) {
        let due = self.next_sweep_us.load(Ordering::Relaxed);
        if now.as_micros() < due {
            return;
        }
        let next = now.saturating_add(self.sweep_interval).as_micros();
        // Only the caller that moves the deadline sweeps.
        if self
            .next_sweep_us
            .compare_exchange(due, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.sweep(now);
        }
    }
}

#[async_trait]
impl RateLimitStore for InMemoryRateLimitStore {
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision> {
        policy.validate(cost)?;
        validate_key(key)?;
        let now = self.clock.now();
        validate_clock(now)?;
        self.maybe_sweep(now);
        let view: &dyn KeyView = &(tenant, key);
        let mut entry = match self.tats.get_mut(view) {
            Some(existing) => existing,
            None => self
                .tats
                .entry(Owned(tenant, key.to_string()))
                .or_insert(now),
        };
        let (decision, new_tat) = gcra(&policy, Some(*entry), now, cost);
        match new_tat {
            Some(t) => *entry = t,
            None => *entry = self.mutant.denied_tat(*entry, now, &policy, cost),
        }
        Ok(decision)
    }

    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision> {
        policy.validate(1)?;
        validate_key(key)?;
        let now = self.clock.now();
        validate_clock(now)?;
        let view: &dyn KeyView = &(tenant, key);
        let tat = self.tats.get(view).map(|t| *t);
        Ok(gcra(&policy, tat, now, 1).0)
    }

    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        validate_key(key)?;
        let view: &dyn KeyView = &(tenant, key);
        self.tats.remove(view);
        Ok(())
    }

    /// Sweeps idle keys now. Checks also sweep once per sweep interval, so the count only
    /// covers keys that went idle since the last sweep.
    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        Ok(self.sweep_some(self.clock.now(), limit))
    }
}

#[cfg(test)]
mod tests {
    use crate::{InMemoryConfig, InMemoryStores};
    use credo_ports::{ManualClock, RateLimitPolicy, RateLimitStore, TenantId, Timestamp};
    use std::sync::Arc;
    use std::time::Duration;

    /// The idle-key sweep runs from checks, once per interval of store clock, and only then:
    /// rotating keys cannot grow memory without bound, and a busy limiter does not sweep on
    /// every call. (The conformance harness moves it out of the way; this is its test.)
    #[tokio::test]
    async fn checks_sweep_idle_keys_once_per_interval() {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let config = InMemoryConfig {
            rate_limit_sweep_interval: Duration::from_secs(60),
        };
        let stores = InMemoryStores::with_config(clock.clone(), config);
        let rl = stores.rate_limits_inner();
        let fast = RateLimitPolicy::per(10, Duration::from_secs(1));
        let slow = RateLimitPolicy::per(1, Duration::from_secs(3600));
        let t = TenantId::new();
        for i in 0..100 {
            rl.check(t, &format!("k{i}"), fast, 1).await.unwrap();
        }
        assert_eq!(rl.key_count(), 100);
        clock.advance(Duration::from_secs(59));
        rl.check(t, "busy", slow, 1).await.unwrap();
        assert_eq!(rl.key_count(), 101, "no sweep before the interval");
        clock.advance(Duration::from_secs(1));
        rl.check(t, "new", slow, 1).await.unwrap();
        assert_eq!(rl.key_count(), 2, "idle keys swept, busy and new kept");
    }
}
