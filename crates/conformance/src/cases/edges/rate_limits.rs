//! Rate limits at the edges: policies, costs and clocks at their limits.

use super::{SEC, clock_instant, set_clock};
use crate::cases::tenant;
use crate::harness::Stores;
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::rate_limit::MAX_RATE;
use credo_ports::{RateLimitPolicy, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Clone, Debug)]
enum RateOp {
    Clock(Timestamp),
    Check {
        key: u8,
        policy: RateLimitPolicy,
        cost: u32,
    },
    Peek {
        key: u8,
        policy: RateLimitPolicy,
    },
    Purge,
}

fn rate_u32() -> BoxedStrategy<u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(MAX_RATE - 1),
        Just(MAX_RATE),
        Just(MAX_RATE + 1),
        Just(u32::MAX),
        1u32..100,
    ]
    .boxed()
}

fn period() -> BoxedStrategy<Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_micros(1)),
        Just(Duration::from_micros(999)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_secs(1)),
        Just(Duration::from_secs(86_400)),
        Just(Duration::from_secs(86_400) + Duration::from_micros(1)),
        Just(Duration::MAX),
        (1u64..=86_400_000_000).prop_map(Duration::from_micros),
    ]
    .boxed()
}

fn policy() -> BoxedStrategy<RateLimitPolicy> {
    let any =
        (rate_u32(), period(), rate_u32()).prop_map(|(limit, period, burst)| RateLimitPolicy {
            limit,
            period,
            burst,
        });
    // One a day with a burst of 31: the tolerance (burst x interval) exactly at its 31-day
    // bound, the largest TAT offset a backend must compute exactly; 32 is one day past it.
    let tolerance_bound = prop_oneof![Just(31u32), Just(32)].prop_map(|burst| RateLimitPolicy {
        limit: 1,
        period: Duration::from_secs(86_400),
        burst,
    });
    prop_oneof![6 => any, 1 => tolerance_bound].boxed()
}

fn rate_op() -> BoxedStrategy<RateOp> {
    let clock = prop_oneof![
        clock_instant(),
        (-2i64..=2).prop_map(|d| Timestamp::from_micros(Stores::START.as_micros() + d * SEC)),
    ];
    prop_oneof![
        2 => clock.prop_map(RateOp::Clock),
        5 => (0u8..2, policy(), rate_u32()).prop_map(|(key, policy, cost)| RateOp::Check { key, policy, cost }),
        2 => (0u8..2, policy()).prop_map(|(key, policy)| RateOp::Peek { key, policy }),
        1 => Just(RateOp::Purge),
    ]
    .boxed()
}

fn apply_rate<'a>(p: &'a Pair, op: &'a RateOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.rate_limits()?, p.backend.rate_limits()?);
        let t = tenant(0);
        let key = |k: u8| format!("edge-key-{k}");
        match op.clone() {
            RateOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            RateOp::Check {
                key: k,
                policy,
                cost,
            } => same(
                op,
                m.check(t, &key(k), policy, cost).await,
                b.check(t, &key(k), policy, cost).await,
            ),
            RateOp::Peek { key: k, policy } => same(
                op,
                m.peek(t, &key(k), policy).await,
                b.peek(t, &key(k), policy).await,
            ),
            RateOp::Purge => same(
                op,
                m.purge_idle(NonZeroU32::MAX).await,
                b.purge_idle(NonZeroU32::MAX).await,
            ),
        }
    }
    .boxed()
}

pub(super) async fn rate_limits_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_rate_limits",
        || proptest::collection::vec(rate_op(), 1..30),
        apply_rate,
    )
    .await
}
