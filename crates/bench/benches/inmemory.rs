//! In-memory hot paths beside the `governor` crate's keyed limiter and a raw DashMap.
//! A smoke run (`credo_bench::smoke`) uses 1,000 keys for 100,000 and 10,000 for 2,000,000.

use credo_adapters_inmemory::InMemoryStores;
use credo_bench::{BASELINE, OURS, sized};
use credo_ports::{
    Clock, Device, ManualClock, NewSession, NewUser, RateLimitPolicy, RateLimitStore, SessionId,
    SessionStatus, SystemClock, TenantId, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use governor::clock::FakeRelativeClock;
use governor::{Quota, RateLimiter};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous enough that every check is admitted, on both sides.
const POLICY: RateLimitPolicy = RateLimitPolicy {
    limit: 1_000_000,
    period: Duration::from_secs(1),
    burst: 1_000_000,
};

fn quota() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000).unwrap())
        .allow_burst(NonZeroU32::new(1_000_000).unwrap())
}

fn keys(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{tag}:{i:08}")).collect()
}

/// Our check, polled once: the in-memory store never waits.
fn check(store: &dyn RateLimitStore, tenant: TenantId, key: &str) {
    let d = store
        .check(tenant, key, POLICY, 1)
        .now_or_never()
        .expect("in-memory checks complete at once")
        .unwrap();
    black_box(d);
}

fn rate_limit_existing(c: &mut Criterion) {
    for n in [1usize, sized(100_000, 1_000)] {
        let mut g = c.benchmark_group(format!("inmemory.rate_limit.existing_key.{n}_keys"));
        let ks = keys(n, "k");
        let stores = InMemoryStores::new(Arc::new(SystemClock));
        let ours = stores.rate_limits();
        let tenant = TenantId::new();
        for k in &ks {
            check(ours.as_ref(), tenant, k);
        }
        let peer = RateLimiter::keyed(quota());
        for k in &ks {
            let _ = peer.check_key(k);
        }
        let mut i = 0;
        g.bench_function(OURS, |b| {
            b.iter(|| {
                i = (i + 1) % n;
                check(ours.as_ref(), tenant, &ks[i]);
            })
        });
        g.bench_function(BASELINE, |b| {
            b.iter(|| {
                i = (i + 1) % n;
                black_box(peer.check_key(&ks[i]).is_ok());
            })
        });
        g.finish();
    }
}

fn rate_limit_existing_two_threads(c: &mut Criterion) {
    let n = sized(100_000, 1_000);
    let mut g = c.benchmark_group(format!(
        "inmemory.rate_limit.existing_key.{n}_keys.2_threads"
    ));
    let ks = Arc::new(keys(n, "k"));
    let stores = InMemoryStores::new(Arc::new(SystemClock));
    let ours = stores.rate_limits();
    let tenant = TenantId::new();
    for k in ks.iter() {
        check(ours.as_ref(), tenant, k);
    }
    let peer = Arc::new(RateLimiter::keyed(quota()));
    for k in ks.iter() {
        let _ = peer.check_key(k);
    }
    // Time per check with two threads checking at once (half the iterations each).
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t, i| {
                let k = &ks[(i as usize * 2 + t) % n];
                check(ours.as_ref(), tenant, k);
            })
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |t, i| {
                let k = &ks[(i as usize * 2 + t) % n];
                black_box(peer.check_key(k).is_ok());
            })
        })
    });
    g.finish();
}

fn two_threads(iters: u64, op: impl Fn(usize, u64) + Sync) -> Duration {
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let op = &op;
            s.spawn(move || {
                for i in 0..iters.div_ceil(2) {
                    op(t, i);
                }
            });
        }
    });
    started.elapsed()
}

fn rate_limit_new_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("inmemory.rate_limit.new_key");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            let ks = keys(iters as usize, "new");
            let stores = InMemoryStores::new(Arc::new(SystemClock));
            let ours = stores.rate_limits();
            let tenant = TenantId::new();
            let started = Instant::now();
            for k in &ks {
                check(ours.as_ref(), tenant, k);
            }
            started.elapsed()
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            let ks = keys(iters as usize, "new");
            let peer = RateLimiter::keyed(quota());
            let started = Instant::now();
            for k in &ks {
                black_box(peer.check_key(k).is_ok());
            }
            started.elapsed()
        })
    });
    g.finish();
}

fn eviction(c: &mut Criterion) {
    // A smoke run fills 10,000 keys: 2,000,000 take seconds to set up.
    let n = sized(2_000_000, 10_000);
    let mut g = c.benchmark_group(format!("inmemory.rate_limit.evict_idle.{n}_keys"));
    g.sample_size(10);
    let ks = keys(n, "idle");
    let start = Timestamp::from_secs(1_800_000_000);
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let clock = Arc::new(ManualClock::new(start));
                let stores = InMemoryStores::new(clock.clone());
                let ours = stores.rate_limits_inner();
                let tenant = TenantId::new();
                // Untimed set-up, on both cores to keep `--quick` short.
                two_threads(n as u64, |t, i| {
                    check(ours.as_ref(), tenant, &ks[i as usize * 2 + t]);
                });
                clock.advance(Duration::from_secs(10));
                let started = Instant::now();
                let removed = ours
                    .purge_idle(NonZeroU32::MAX)
                    .now_or_never()
                    .unwrap()
                    .unwrap();
                total += started.elapsed();
                assert_eq!(removed, n as u64);
            }
            total
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let clock = FakeRelativeClock::default();
                let peer = RateLimiter::dashmap_with_clock(quota(), clock.clone());
                two_threads(n as u64, |t, i| {
                    let _ = peer.check_key(&ks[i as usize * 2 + t]);
                });
                clock.advance(Duration::from_secs(10));
                let started = Instant::now();
                peer.retain_recent();
                peer.shrink_to_fit();
                total += started.elapsed();
                assert_eq!(peer.len(), 0);
            }
            total
        })
    });
    g.finish();
}

fn store_gets(c: &mut Criterion) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let stores = InMemoryStores::new(clock.clone());
    let tenant = TenantId::new();

    let users = stores.users();
    let user = users
        .create(NewUser::new(tenant, "ada@example.com", "Ada", "L"))
        .now_or_never()
        .unwrap()
        .unwrap();
    let raw_users = dashmap::DashMap::new();
    raw_users.insert(user.id, user.clone());
    let mut g = c.benchmark_group("inmemory.user.get");
    g.bench_function(OURS, |b| {
        b.iter(|| black_box(users.get(tenant, user.id).now_or_never().unwrap().unwrap()))
    });
    g.bench_function(BASELINE, |b| {
        b.iter(|| black_box(raw_users.get(&user.id).map(|u| u.clone())))
    });
    g.finish();

    let sessions = stores.sessions();
    let new = NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user.id,
        client_id: "web".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: clock.now().saturating_add(Duration::from_secs(3600)),
    };
    let session = sessions.create(new).now_or_never().unwrap().unwrap();
    let raw_sessions = dashmap::DashMap::new();
    raw_sessions.insert(session.id, session.clone());
    let mut g = c.benchmark_group("inmemory.session.get");
    g.bench_function(OURS, |b| {
        b.iter(|| {
            black_box(
                sessions
                    .get(tenant, session.id)
                    .now_or_never()
                    .unwrap()
                    .unwrap(),
            )
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter(|| black_box(raw_sessions.get(&session.id).map(|s| s.clone())))
    });
    g.finish();
}

criterion_group!(
    benches,
    rate_limit_existing,
    rate_limit_existing_two_threads,
    rate_limit_new_key,
    eviction,
    store_gets
);
criterion_main!(benches);
