//! Redis hot paths beside raw `fred` doing the same work on the same server, pool size and
//! runtime:
//! - session read: `HGETALL` of the same hash;
//! - session touch (the per-request write): a pipelined `HSET seen` + `HINCRBY version` +
//!   `HGETALL`, without our live/revoked checks;
//! - session create with its per-user index: a pipelined reservation `SET NX PX`, `HSET`,
//!   `PEXPIRE`, `ZADD`, `PEXPIRE`;
//! - revoke-all of a user's 20 sessions: a pipelined `DEL` of 20 keys;
//! - rate-limit check: `EVALSHA` of the same GCRA script with the same arguments.
//!
//! Reads, touches and checks run at 1 task (latency) and 64 tasks (throughput).
//!
//! The `redis-cluster.*` groups run the session read and the rate-limit check again through
//! our adapter on a clustered `fred` client, beside raw `fred` on the same cluster (the same
//! client settings: `credo_adapters_redis::client_builder` of a `redis-cluster://` URL).
//!
//! Needs `CREDO_TEST_REDIS_URL` and `CREDO_TEST_REDIS_CLUSTER_URL` (`cargo xtask bench` sets
//! them).

use credo_adapters_redis::{RedisConfig, RedisStores, TimeSource};
use credo_bench::{BASELINE, OURS};
use credo_ports::{
    Clock, Device, NewSession, RateLimitPolicy, SessionId, SessionStatus, SystemClock, TenantId,
    UserId,
};
use criterion::{Criterion, criterion_group, criterion_main};
use fred::prelude::*;
use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const POOL: usize = 4;
const TASKS: u64 = 64;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Time for `iters` operations spread over `tasks` concurrent tasks.
fn concurrent<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, tasks: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static + Clone,
    Fut: Future<Output = ()> + Send,
{
    let per = iters.div_ceil(tasks).max(1);
    let elapsed = rt.block_on(async move {
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let op = op.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        op(t * per + i).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        started.elapsed()
    });
    // Scale to exactly `iters` operations.
    elapsed.mul_f64(iters as f64 / (per * tasks) as f64)
}

/// Groups `{name}.1_tasks` (latency) and `{name}.64_tasks` (time per operation under load),
/// each timing `ours` and `baseline` through [`concurrent`].
fn at_1_and_64_tasks<O, OF, B, BF>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    ours: O,
    baseline: B,
) where
    O: Fn(u64) -> OF + Send + Sync + Clone + 'static,
    OF: Future<Output = ()> + Send,
    B: Fn(u64) -> BF + Send + Sync + Clone + 'static,
    BF: Future<Output = ()> + Send,
{
    for tasks in [1, TASKS] {
        let mut g = c.benchmark_group(format!("{name}.{tasks}_tasks"));
        g.bench_function(OURS, |b| {
            b.iter_custom(|iters| concurrent(rt, iters, tasks, ours.clone()))
        });
        g.bench_function(BASELINE, |b| {
            b.iter_custom(|iters| concurrent(rt, iters, tasks, baseline.clone()))
        });
        g.finish();
    }
}

struct Setup {
    rt: tokio::runtime::Runtime,
    ours: RedisStores,
    raw: Pool,
    prefix: String,
}

/// Our stores and a raw pool on the server (or cluster) named by `var`.
fn setup_on(var: &str) -> Option<Setup> {
    let url = credo_testkit::required(var)?;
    let rt = runtime();
    let prefix = format!("credo_bench_{}", std::process::id());
    let (ours, raw) = rt.block_on(async {
        let mut config = RedisConfig::new(&url);
        config.pool_size = POOL;
        config.key_prefix = prefix.clone();
        config.rate_limit_time = TimeSource::Server;
        let ours = RedisStores::connect(&config, Arc::new(SystemClock))
            .await
            .unwrap();
        // Raw fred on the adapter's own client settings and pool size.
        let raw = credo_adapters_redis::client_builder(&config)
            .unwrap()
            .build_pool(POOL)
            .unwrap();
        // fred reconnects forever: a server that does not answer must fail the bench instead.
        tokio::time::timeout(Duration::from_secs(10), raw.init())
            .await
            .unwrap_or_else(|_| {
                panic!("no Redis answered at {} within 10 s", config.redacted_url())
            })
            .unwrap();
        (ours, raw)
    });
    Some(Setup {
        rt,
        ours,
        raw,
        prefix,
    })
}

/// The single server of `CREDO_TEST_REDIS_URL`.
fn setup() -> Option<Setup> {
    setup_on("CREDO_TEST_REDIS_URL")
}

/// The cluster of `CREDO_TEST_REDIS_CLUSTER_URL` (`redis-cluster://host:port?node=...`).
fn setup_cluster() -> Option<Setup> {
    setup_on("CREDO_TEST_REDIS_CLUSTER_URL")
}

fn session_get(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    session_get_on(c, &s, "redis.session.get");
}

fn cluster_session_get(c: &mut Criterion) {
    let Some(s) = setup_cluster() else { return };
    session_get_on(c, &s, "redis-cluster.session.get");
}

fn session_get_on(c: &mut Criterion, s: &Setup, name: &str) {
    let sessions = s.ours.sessions();
    let tenant = TenantId::new();
    let session = s.rt.block_on(async {
        sessions
            .create(new_session(tenant, UserId::new()))
            .await
            .unwrap()
    });
    // The hash our store wrote, read raw: the same bytes over the same pool size.
    let key = format!("{}:{{t:{}}}:s:{}", s.prefix, tenant, session.id);
    let fields: HashMap<String, String> = s.rt.block_on(s.raw.hgetall(&key)).unwrap();
    assert!(!fields.is_empty(), "session hash not found at {key}");

    let ours = move |_| {
        let sessions = sessions.clone();
        async move {
            black_box(sessions.get(tenant, session.id).await.unwrap());
        }
    };
    let raw = s.raw.clone();
    let baseline = move |_| {
        let (raw, key) = (raw.clone(), key.clone());
        async move {
            let v: HashMap<String, String> = raw.hgetall(&key).await.unwrap();
            black_box(v);
        }
    };
    at_1_and_64_tasks(c, &s.rt, name, ours, baseline);
}

fn new_session(tenant: TenantId, user: UserId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user,
        client_id: "web".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: SystemClock.now().saturating_add(Duration::from_secs(3600)),
    }
}

/// The fields our store writes for a session, as a raw client would write them.
fn raw_fields(user: UserId) -> Vec<(String, String)> {
    let now = SystemClock.now().as_micros();
    [
        ("user", user.to_string()),
        ("client", "web".into()),
        ("scopes", r#"["openid","profile"]"#.into()),
        ("status", "active".into()),
        ("created", now.to_string()),
        ("expires", (now + 3_600_000_000).to_string()),
        ("seen", now.to_string()),
        ("version", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn session_touch(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    let sessions = s.ours.sessions();
    let tenant = TenantId::new();
    let session =
        s.rt.block_on(sessions.create(new_session(tenant, UserId::new())))
            .unwrap();
    let key = format!("{}:{{t:{}}}:s:{}", s.prefix, tenant, session.id);
    let ours = move |_| {
        let sessions = sessions.clone();
        async move {
            black_box(sessions.touch(tenant, session.id).await.unwrap());
        }
    };
    let raw = s.raw.clone();
    let baseline = move |_| {
        let (raw, key) = (raw.clone(), key.clone());
        async move {
            let p = raw.next().pipeline();
            let now = SystemClock.now().as_micros().to_string();
            let _: () = p.hset(&key, ("seen", now)).await.unwrap();
            let _: () = p.hincrby(&key, "version", 1).await.unwrap();
            let _: () = p.hgetall(&key).await.unwrap();
            let v: HashMap<String, String> = p.last().await.unwrap();
            black_box(v);
        }
    };
    at_1_and_64_tasks(c, &s.rt, "redis.session.touch", ours, baseline);
}

fn session_create(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    let sessions = s.ours.sessions();
    let (tenant, user) = (TenantId::new(), UserId::new());
    let mut g = c.benchmark_group("redis.session.create");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(sessions.create(new_session(tenant, user)).await.unwrap());
                }
                started.elapsed()
            })
        })
    });
    let index = format!("{}:raw:{{t:{}}}:u:{}", s.prefix, tenant, user);
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let id = SessionId::new();
                    let key = format!("{}:raw:{{t:{}}}:s:{}", s.prefix, tenant, id);
                    let expires = SystemClock.now().as_micros() + 3_600_000_000;
                    let p = s.raw.next().pipeline();
                    let _: () = p
                        .set(
                            format!("{}:raw:sid:{{{id}}}", s.prefix),
                            format!("{expires}:{tenant}"),
                            Some(Expiration::PX(3_600_000)),
                            Some(SetOptions::NX),
                            false,
                        )
                        .await
                        .unwrap();
                    let _: () = p.hset(&key, raw_fields(user)).await.unwrap();
                    let _: () = p.pexpire(&key, 3_600_000, None).await.unwrap();
                    let _: () = p
                        .zadd(
                            &index,
                            None,
                            None,
                            false,
                            false,
                            (expires as f64, id.to_string()),
                        )
                        .await
                        .unwrap();
                    let _: () = p.pexpire(&index, 3_600_000, None).await.unwrap();
                    let v: Vec<Value> = p.all().await.unwrap();
                    black_box(v);
                }
                started.elapsed()
            })
        })
    });
    g.finish();
}

const REVOKED_PER_CALL: usize = 20;

fn revoke_all(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    let sessions = s.ours.sessions();
    let (tenant, user) = (TenantId::new(), UserId::new());
    let keys: Vec<String> = s.rt.block_on(async {
        let mut keys = Vec::new();
        for _ in 0..REVOKED_PER_CALL {
            let session = sessions.create(new_session(tenant, user)).await.unwrap();
            keys.push(format!("{}:{{t:{}}}:s:{}", s.prefix, tenant, session.id));
        }
        keys
    });
    let raw_keys: Vec<String> = (0..REVOKED_PER_CALL)
        .map(|i| format!("{}:raw:{{t:{}}}:s:{i}", s.prefix, tenant))
        .collect();
    let mut g = c.benchmark_group("redis.session.revoke_all_20");
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Untimed: make all 20 live again, so every call revokes 20.
                    let p = s.raw.next().pipeline();
                    for key in &keys {
                        let _: () = p.hset(key, ("status", "active")).await.unwrap();
                    }
                    let _: Vec<Value> = p.all().await.unwrap();
                    let started = Instant::now();
                    let n = sessions.revoke_all_for_user(tenant, user).await.unwrap();
                    timed += started.elapsed();
                    assert_eq!(n, REVOKED_PER_CALL as u64);
                }
                timed
            })
        })
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            s.rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let p = s.raw.next().pipeline();
                    for key in &raw_keys {
                        let _: () = p.set(key, "1", None, None, false).await.unwrap();
                    }
                    let _: Vec<Value> = p.all().await.unwrap();
                    let started = Instant::now();
                    let p = s.raw.next().pipeline();
                    for key in &raw_keys {
                        let _: () = p.del(key).await.unwrap();
                    }
                    let deleted: Vec<i64> = p.all().await.unwrap();
                    timed += started.elapsed();
                    assert_eq!(deleted.iter().sum::<i64>(), REVOKED_PER_CALL as i64);
                }
                timed
            })
        })
    });
    g.finish();
}

fn rate_limit_check(c: &mut Criterion) {
    let Some(s) = setup() else { return };
    rate_limit_check_on(c, &s, "redis.rate_limit.check");
}

fn cluster_rate_limit_check(c: &mut Criterion) {
    let Some(s) = setup_cluster() else { return };
    rate_limit_check_on(c, &s, "redis-cluster.rate_limit.check");
}

fn rate_limit_check_on(c: &mut Criterion, s: &Setup, name: &str) {
    let limits = s.ours.rate_limits();
    let tenant = TenantId::new();
    let policy = RateLimitPolicy {
        limit: 1_000_000,
        period: Duration::from_secs(1),
        burst: 1_000_000,
    };
    // On every master of a cluster (a plain `SCRIPT LOAD` on a single server).
    let sha: String =
        s.rt.block_on(
            s.raw
                .next()
                .script_load_cluster(credo_adapters_redis::scripts::GCRA),
        )
        .unwrap();
    let raw_key = format!("{}:raw:rl", s.prefix);
    let ours = move |_| {
        let limits = limits.clone();
        async move {
            black_box(limits.check(tenant, "login:k", policy, 1).await.unwrap());
        }
    };
    let raw = s.raw.clone();
    let baseline = move |_| {
        let (raw, sha, key) = (raw.clone(), sha.clone(), raw_key.clone());
        async move {
            let args = vec![
                String::new(),
                policy.emission_interval_us().to_string(),
                policy.tolerance_us().to_string(),
                "1".to_string(),
                "1".to_string(),
                "60000".to_string(),
            ];
            let r: (i64, i64, i64, i64) = raw.next().evalsha(&sha, vec![key], args).await.unwrap();
            black_box(r);
        }
    };
    at_1_and_64_tasks(c, &s.rt, name, ours, baseline);
}

/// Not a benchmark: unlinks every key this process wrote (its prefix, on the server and on
/// the cluster). A full `redis.session.create` run leaves some 65,000 keys for an hour
/// otherwise, and every purge case of the conformance suite, which scans the keyspace, then
/// takes 25 times as long on the shared test server.
fn clean_up(_: &mut Criterion) {
    use fred::types::scan::Scanner;
    use futures_util::StreamExt;
    for s in [setup(), setup_cluster()].into_iter().flatten() {
        let client = s.raw.next().clone();
        let pattern = format!("{}:*", s.prefix);
        s.rt.block_on(async move {
            let mut pages = if client.is_clustered() {
                client.scan_cluster(pattern, Some(500), None).boxed()
            } else {
                client.scan(pattern, Some(500), None).boxed()
            };
            while let Some(page) = pages.next().await {
                let mut page = page.unwrap();
                let keys = page.take_results().unwrap_or_default();
                // One key per call: on a cluster the keys of a page live in many slots.
                futures_util::future::try_join_all(
                    keys.into_iter().map(|k| client.unlink::<i64, _>(k)),
                )
                .await
                .unwrap();
                page.next();
            }
        });
    }
}

criterion_group!(
    benches,
    session_get,
    session_touch,
    session_create,
    revoke_all,
    rate_limit_check,
    cluster_session_get,
    cluster_rate_limit_check,
    clean_up
);
criterion_main!(benches);
