//! Idle rate-limit keys must not cost memory forever: after 1,000,000 distinct keys go idle,
//! the heap returns to its baseline.
#![allow(unsafe_code)] // a counting global allocator needs `unsafe impl GlobalAlloc`

use credo_adapters_inmemory::{InMemoryConfig, InMemoryStores};
use credo_ports::{ManualClock, RateLimitPolicy, TenantId, Timestamp};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_idle_keys_are_reclaimed() {
    const KEYS: usize = 1_000_000;
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let config = InMemoryConfig {
        rate_limit_sweep_interval: Duration::from_secs(60),
    };
    let stores = InMemoryStores::with_config(clock.clone(), config);
    let limiter = stores.rate_limits();
    let inner = stores.rate_limits_inner();
    let tenant = TenantId::new();
    let policy = RateLimitPolicy::per(10, Duration::from_secs(1));
    let mut key = String::with_capacity(32);

    // Warm up: one key through the whole path, then drop it, so lazily-built state is counted
    // in the baseline.
    limiter.check(tenant, "warmup", policy, 1).await.unwrap();
    limiter.reset(tenant, "warmup").await.unwrap();
    let baseline = live();

    for i in 0..KEYS {
        use std::fmt::Write;
        key.clear();
        write!(key, "ip:2001:db8::{i:x}:auth").unwrap();
        assert!(
            limiter
                .check(tenant, &key, policy, 1)
                .await
                .unwrap()
                .allowed
        );
    }
    assert_eq!(inner.key_count(), KEYS);
    let peak = live();
    assert!(
        peak - baseline > 50_000_000,
        "1M keys should hold tens of MB, saw {}",
        peak - baseline
    );

    // Every key goes idle after one emission interval; the next check past the sweep interval
    // reclaims them without anyone calling purge.
    clock.advance(Duration::from_secs(61));
    limiter.check(tenant, "one-more", policy, 1).await.unwrap();
    assert_eq!(
        inner.key_count(),
        1,
        "the check should have swept every idle key"
    );
    limiter.reset(tenant, "one-more").await.unwrap();
    let after = live();
    println!(
        "idle keys: baseline {baseline} B, with {KEYS} keys {peak} B (+{} B), after sweep {after} B ({:+} B)",
        peak - baseline,
        after - baseline
    );
    assert_eq!(inner.key_count(), 0);
    assert!(
        after - baseline < 64 * 1024,
        "heap did not return to baseline: {} B above",
        after - baseline
    );
}
