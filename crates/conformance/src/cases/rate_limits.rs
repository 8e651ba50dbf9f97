use super::{cases, ensure, eq, err_kind, ok, race, tenant};
use crate::harness::{Port, Stores};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{RateLimitPolicy, RateLimitStore, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::RateLimits;
        model_based_sequences,
        burst_then_one_per_interval_at_exact_edges,
        denied_requests_consume_nothing,
        sustained_rate_never_exceeds_limit_per_period,
        idle_keys_are_purged,
    ];
    // These also run where the limiter reads the server's clock (the production default of
    // the Redis adapter): slow policies, so the time that passes while a case runs changes
    // nothing it asserts.
    v.extend(cases![real_time Port::RateLimits;
        concurrent_checks_at_one_instant_never_exceed_the_policy,
        peek_and_reset,
        large_limits_are_enforced,
        cross_tenant_isolation,
        absurd_policies_are_rejected,
        capacity_returns_on_the_clock_the_limiter_reads,
    ]);
    v
}

/// 10 per second, burst 3: emission interval 100 ms.
const P0: RateLimitPolicy = RateLimitPolicy {
    limit: 10,
    period: Duration::from_secs(1),
    burst: 3,
};
/// 3 per hour, burst 3: emission interval 20 min, so nothing refills while a case runs.
const SLOW: RateLimitPolicy = RateLimitPolicy {
    limit: 3,
    period: Duration::from_secs(3600),
    burst: 3,
};
/// Bound on the real time a case may take between two calls it compares.
const SLACK: Duration = Duration::from_secs(60);

const POLICIES: [RateLimitPolicy; 6] = [
    P0,
    // Burst above the limit: a client may save up more than one period's worth.
    RateLimitPolicy {
        limit: 2,
        period: Duration::from_secs(1),
        burst: 10,
    },
    // At the bounds: the highest rate over the longest period, the largest burst.
    RateLimitPolicy {
        limit: credo_ports::rate_limit::MAX_RATE,
        period: credo_ports::rate_limit::MAX_PERIOD,
        burst: credo_ports::rate_limit::MAX_RATE,
    },
    RateLimitPolicy {
        limit: 3,
        period: Duration::from_secs(7),
        burst: 3,
    },
    RateLimitPolicy {
        limit: 1000,
        period: Duration::from_secs(60),
        burst: 50,
    },
    RateLimitPolicy {
        limit: 0,
        period: Duration::from_secs(1),
        burst: 1,
    },
];

#[derive(Clone, Debug)]
enum Op {
    Check {
        t: u8,
        key: u8,
        policy: u8,
        cost: u32,
    },
    Peek {
        t: u8,
        key: u8,
        policy: u8,
    },
    Reset {
        t: u8,
        key: u8,
    },
    PurgeIdle,
    Advance {
        micros: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let (t, key, policy) = (
        0u8..8,
        0..KEYS.len() as u8,
        prop_oneof![8 => 0u8..5, 1 => Just(5u8)],
    );
    prop_oneof![
        8 => (t.clone(), key.clone(), policy.clone(), prop_oneof![6 => Just(1u32), 2 => 2u32..4, 1 => Just(0u32), 1 => Just(51u32)])
            .prop_map(|(t, key, policy, cost)| Op::Check { t, key, policy, cost }),
        2 => (t.clone(), key.clone(), policy).prop_map(|(t, key, policy)| Op::Peek { t, key, policy }),
        1 => (t, key).prop_map(|(t, key)| Op::Reset { t, key }),
        1 => Just(Op::PurgeIdle),
        4 => prop_oneof![
            8 => prop_oneof![Just(0i64), Just(1), Just(99_999), Just(100_000), Just(1_000_000), Just(2_333_334), Just(-1)],
            // Days and years, forwards and back (clocks are stepped by operators and NTP).
            1 => prop_oneof![Just(86_400_000_000i64), Just(366 * 86_400_000_000), Just(-86_400_000_000), Just(-5 * 366 * 86_400_000_000)],
        ]
            .prop_map(|micros| Op::Advance { micros }),
    ]
}

/// Keys are opaque: ones that differ only by case, by a combining accent (NFC against NFD),
/// by a `LIKE` wildcard, by trailing space or by punctuation a linguistic collation skips are
/// all distinct keys.
const KEYS: [&str; 10] = [
    "ip:203.0.113.7:auth",
    "user:42:read",
    "client:web:/token",
    "User:42:Read",
    "caf\u{e9}",
    "cafe\u{301}",
    "user_42:read",
    "user%42:read",
    "user:42:read ",
    "user-42-read",
];

fn key(k: u8) -> String {
    KEYS[usize::from(k)].to_string()
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.rate_limits()?, p.backend.rate_limits()?);
        match op.clone() {
            Op::Check {
                t,
                key: k,
                policy,
                cost,
            } => {
                let pol = POLICIES[usize::from(policy)];
                same(
                    op,
                    m.check(tenant(t), &key(k), pol, cost).await,
                    b.check(tenant(t), &key(k), pol, cost).await,
                )
            }
            Op::Peek { t, key: k, policy } => {
                let pol = POLICIES[usize::from(policy)];
                same(
                    op,
                    m.peek(tenant(t), &key(k), pol).await,
                    b.peek(tenant(t), &key(k), pol).await,
                )
            }
            Op::Reset { t, key: k } => same(
                op,
                m.reset(tenant(t), &key(k)).await,
                b.reset(tenant(t), &key(k)).await,
            ),
            Op::PurgeIdle => same(
                op,
                m.purge_idle(NonZeroU32::MAX).await,
                b.purge_idle(NonZeroU32::MAX).await,
            ),
            Op::Advance { micros } => {
                let now = p.backend.now().as_micros();
                p.backend.clock.set(Timestamp::from_micros(now + micros));
                Ok(())
            }
        }
    }
    .boxed()
}

async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "rate_limits", || property::sequence(op), apply).await
}

async fn limiter(ctx: &Ctx) -> Result<(Stores, Arc<dyn RateLimitStore>), String> {
    let s = ctx.fresh().await?;
    let r = s.rate_limits()?;
    Ok((s, r))
}

async fn burst_then_one_per_interval_at_exact_edges(ctx: &Ctx) -> Result<(), String> {
    let (s, rl) = limiter(ctx).await?;
    let k = "ip:198.51.100.1:auth";
    for remaining in [2, 1, 0] {
        let d = ok("check", rl.check(tenant(0), k, P0, 1).await)?;
        eq(
            "burst admitted",
            (d.allowed, d.remaining, d.limit),
            (true, remaining, 10),
        )?;
    }
    let d = ok("check", rl.check(tenant(0), k, P0, 1).await)?;
    eq("denied after the burst", d.allowed, false)?;
    eq(
        "retry_after is one interval",
        d.retry_after,
        Duration::from_millis(100),
    )?;
    eq(
        "reset_after is the whole burst",
        d.reset_after,
        Duration::from_millis(300),
    )?;
    s.clock.advance(Duration::from_micros(99_999));
    eq(
        "1 µs early",
        ok("check", rl.check(tenant(0), k, P0, 1).await)?.allowed,
        false,
    )?;
    s.clock.advance(Duration::from_micros(1));
    eq(
        "exactly one interval later",
        ok("check", rl.check(tenant(0), k, P0, 1).await)?.allowed,
        true,
    )?;
    eq(
        "then denied again",
        ok("check", rl.check(tenant(0), k, P0, 1).await)?.allowed,
        false,
    )
}

async fn denied_requests_consume_nothing(ctx: &Ctx) -> Result<(), String> {
    let (s, rl) = limiter(ctx).await?;
    let k = "user:7:write";
    for _ in 0..3 {
        ok("check", rl.check(tenant(0), k, P0, 1).await)?;
    }
    for _ in 0..50 {
        eq(
            "hammering while denied",
            ok("check", rl.check(tenant(0), k, P0, 1).await)?.allowed,
            false,
        )?;
    }
    s.clock.advance(Duration::from_millis(100));
    eq(
        "capacity returns on schedule",
        ok("check", rl.check(tenant(0), k, P0, 1).await)?.allowed,
        true,
    )?;
    s.clock.advance(Duration::from_millis(200));
    let d = ok("cost 3 after 200 ms", rl.check(tenant(0), k, P0, 3).await)?;
    eq("a large denied request", d.allowed, false)?;
    eq(
        "left capacity for small ones",
        ok("check", rl.check(tenant(0), k, P0, 2).await)?.allowed,
        true,
    )
}

async fn concurrent_checks_at_one_instant_never_exceed_the_policy(ctx: &Ctx) -> Result<(), String> {
    const TASKS: usize = 64;
    let policy = RateLimitPolicy {
        limit: 100,
        period: Duration::from_secs(86_400),
        burst: 10,
    };
    for round in 0..5 {
        let (_s, rl) = limiter(ctx).await?;
        let results = race(TASKS, |_| {
            let rl = rl.clone();
            async move { rl.check(tenant(0), "ip:192.0.2.1:auth", policy, 1).await }
        })
        .await?;
        let mut admitted = 0;
        for r in results {
            admitted += u32::from(ok("check", r)?.allowed);
        }
        eq(
            &format!("round {round}: admitted of {TASKS} at one instant"),
            admitted,
            10,
        )?;
    }
    Ok(())
}

async fn sustained_rate_never_exceeds_limit_per_period(ctx: &Ctx) -> Result<(), String> {
    let (s, rl) = limiter(ctx).await?;
    let policy = RateLimitPolicy {
        limit: 5,
        period: Duration::from_secs(1),
        burst: 5,
    };
    let mut admitted_at = Vec::new();
    // 10 attempts per 10 ms tick for 5 s.
    for _ in 0..500 {
        for _ in 0..10 {
            if ok("check", rl.check(tenant(0), "k", policy, 1).await)?.allowed {
                admitted_at.push(s.now().as_micros());
            }
        }
        s.clock.advance(Duration::from_millis(10));
    }
    // Any window of one period holds at most burst + limit * (window / period) admissions.
    for (i, start) in admitted_at.iter().enumerate() {
        let in_window = admitted_at[i..]
            .iter()
            .take_while(|t| **t < start + 1_000_000)
            .count();
        ensure(in_window <= 5 + 5, || {
            format!("{in_window} admitted within one period")
        })?;
    }
    ensure((25..=30).contains(&admitted_at.len()), || {
        format!(
            "admitted {} over 5 s at 5/s with burst 5",
            admitted_at.len()
        )
    })
}

async fn peek_and_reset(ctx: &Ctx) -> Result<(), String> {
    let (_s, rl) = limiter(ctx).await?;
    let fresh = ok("peek fresh", rl.peek(tenant(0), "k", SLOW).await)?;
    eq("peek fresh", (fresh.allowed, fresh.remaining), (true, 2))?;
    for _ in 0..5 {
        ok("peek", rl.peek(tenant(0), "k", SLOW).await)?;
    }
    ok("check", rl.check(tenant(0), "k", SLOW, 3).await)?;
    let d = ok("peek", rl.peek(tenant(0), "k", SLOW).await)?;
    eq("peek after burst: denied", d.allowed, false)?;
    let interval = Duration::from_secs(1200);
    ensure(
        d.retry_after <= interval && d.retry_after + SLACK > interval,
        || {
            format!(
                "retry_after {:?}, expected one interval (20 min)",
                d.retry_after
            )
        },
    )?;
    ok("reset", rl.reset(tenant(0), "k").await)?;
    eq(
        "full again",
        ok("check", rl.check(tenant(0), "k", SLOW, 3).await)?.allowed,
        true,
    )?;
    ok("reset unknown key", rl.reset(tenant(0), "never-seen").await)
}

async fn large_limits_are_enforced(ctx: &Ctx) -> Result<(), String> {
    let (_s, rl) = limiter(ctx).await?;
    let policy = RateLimitPolicy {
        limit: 1000,
        period: Duration::from_secs(86_400),
        burst: 1000,
    };
    let mut admitted = 0;
    for _ in 0..1200 {
        admitted += u32::from(ok("check", rl.check(tenant(0), "big", policy, 1).await)?.allowed);
    }
    eq(
        "limits above 256 work (the Go in-memory limiter capped at 256)",
        admitted,
        1000,
    )
}

async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (_s, rl) = limiter(ctx).await?;
    ok("drain t0", rl.check(tenant(0), "shared-key", SLOW, 3).await)?;
    eq(
        "t0 exhausted",
        ok("check", rl.check(tenant(0), "shared-key", SLOW, 1).await)?.allowed,
        false,
    )?;
    eq(
        "t1 unaffected",
        ok("check", rl.check(tenant(1), "shared-key", SLOW, 3).await)?.allowed,
        true,
    )?;
    ok("reset t1", rl.reset(tenant(1), "shared-key").await)?;
    eq(
        "t0 still exhausted",
        ok("check", rl.check(tenant(0), "shared-key", SLOW, 1).await)?.allowed,
        false,
    )
}

/// The unit and scale of the time the limiter reads: at 10 per second (burst 1), a denied key
/// is still denied 40 ms later and admitted again once its retry_after has passed, with
/// retry_after shrinking by what passed. Where the limiter reads the server's clock, a script
/// that read it in the wrong unit (milliseconds taken for microseconds, seconds without
/// their fraction, a scale off by ten) fails one of the three.
async fn capacity_returns_on_the_clock_the_limiter_reads(ctx: &Ctx) -> Result<(), String> {
    let (s, rl) = limiter(ctx).await?;
    let policy = RateLimitPolicy {
        limit: 10,
        period: Duration::from_secs(1),
        burst: 1,
    };
    let interval = Duration::from_millis(100);
    let k = "unit";
    eq(
        "first admitted",
        ok("check", rl.check(tenant(0), k, policy, 1).await)?.allowed,
        true,
    )?;
    let d = ok("check", rl.check(tenant(0), k, policy, 1).await)?;
    eq("second denied", d.allowed, false)?;
    ensure(
        d.retry_after <= interval && d.retry_after > interval / 2,
        || {
            format!(
                "retry_after {:?} right after an admission, expected about 100 ms",
                d.retry_after
            )
        },
    )?;
    ctx.wait(&s, Duration::from_millis(40)).await;
    let later = ok("peek", rl.peek(tenant(0), k, policy).await)?;
    eq("still denied 40 ms later", later.allowed, false)?;
    ensure(
        later.retry_after + Duration::from_millis(40) <= d.retry_after,
        || {
            format!(
                "retry_after went from {:?} to {:?} in 40 ms",
                d.retry_after, later.retry_after
            )
        },
    )?;
    ctx.wait(&s, later.retry_after + Duration::from_millis(5))
        .await;
    eq(
        "admitted once retry_after has passed",
        ok("check", rl.check(tenant(0), k, policy, 1).await)?.allowed,
        true,
    )
}

async fn idle_keys_are_purged(ctx: &Ctx) -> Result<(), String> {
    let (s, rl) = limiter(ctx).await?;
    for i in 0..20 {
        ok(
            "check",
            rl.check(tenant(0), &format!("ip:10.0.0.{i}"), P0, 1).await,
        )?;
    }
    ok("busy key", rl.check(tenant(0), "busy", P0, 3).await)?;
    s.clock.advance(Duration::from_millis(100)); // single-use keys idle, busy key not
    eq(
        "purged (the idle keys)",
        ok("purge", rl.purge_idle(NonZeroU32::MAX).await)?,
        20,
    )?;
    eq(
        "busy key kept its state",
        ok("check", rl.check(tenant(0), "busy", P0, 2).await)?.allowed,
        false,
    )?;
    eq(
        "purged keys start fresh",
        ok("peek", rl.peek(tenant(0), "ip:10.0.0.1", P0).await)?.remaining,
        2,
    )
}

async fn absurd_policies_are_rejected(ctx: &Ctx) -> Result<(), String> {
    let (_s, rl) = limiter(ctx).await?;
    let bad = [
        RateLimitPolicy { limit: 0, ..P0 },
        RateLimitPolicy { burst: 0, ..P0 },
        RateLimitPolicy {
            period: Duration::ZERO,
            ..P0
        },
        RateLimitPolicy {
            period: Duration::from_secs(86_401),
            ..P0
        },
        RateLimitPolicy {
            limit: 2_000_000,
            ..P0
        },
        RateLimitPolicy {
            limit: 1,
            period: Duration::from_secs(86_400),
            burst: 1_000_000,
        },
    ];
    for p in bad {
        err_kind(
            &format!("{p:?}"),
            rl.check(tenant(0), "k", p, 1).await,
            "InvalidInput",
        )?;
        err_kind(
            &format!("peek {p:?}"),
            rl.peek(tenant(0), "k", p).await,
            "InvalidInput",
        )?;
    }
    err_kind(
        "cost 0",
        rl.check(tenant(0), "k", P0, 0).await,
        "InvalidInput",
    )?;
    err_kind(
        "cost over burst",
        rl.check(tenant(0), "k", P0, 4).await,
        "InvalidInput",
    )?;
    err_kind(
        "empty key",
        rl.check(tenant(0), "", P0, 1).await,
        "InvalidInput",
    )?;
    err_kind(
        "nul key",
        rl.check(tenant(0), "a\0", P0, 1).await,
        "InvalidInput",
    )?;
    err_kind(
        "long key",
        rl.check(tenant(0), &"k".repeat(257), P0, 1).await,
        "InvalidInput",
    )?;
    eq(
        "nothing consumed",
        ok("peek", rl.peek(tenant(0), "k", P0).await)?.remaining,
        2,
    )
}
