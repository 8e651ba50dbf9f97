//! Concurrent rate-limit histories: 3 per second with a burst of 3, costs 1 or 2, at a clock
//! that stands still.

use super::{Rng, rounds};
use crate::cases::tenant;
use crate::harness::Stores;
use crate::linearizability::{Spec, check_partitioned};
use crate::support::Ctx;
use credo_ports::{RateLimitPolicy, StoreResult};
use futures_util::future::BoxFuture;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
enum RateOp {
    Check(u8, u32),
    Peek(u8),
    Reset(u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum RateRet {
    Decision(bool, u32),
    Done,
    Err(&'static str),
}

fn history_policy() -> RateLimitPolicy {
    RateLimitPolicy::per(3, Duration::from_secs(1))
}

/// With time standing still, a GCRA key is just capacity used: 3 units, spent by admitted
/// requests, never by denied ones, given back whole by a reset.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct RateSpec {
    used: u32,
}

impl Spec for RateSpec {
    type Op = RateOp;
    type Ret = RateRet;
    fn step(&self, op: &RateOp, ret: &RateRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match op {
            RateOp::Check(_, cost) => {
                if self.used + cost <= 3 {
                    next.used += cost;
                    RateRet::Decision(true, 3 - next.used)
                } else {
                    RateRet::Decision(false, 3 - self.used)
                }
            }
            RateOp::Peek(_) => {
                if self.used < 3 {
                    RateRet::Decision(true, 3 - self.used - 1)
                } else {
                    RateRet::Decision(false, 0)
                }
            }
            RateOp::Reset(_) => {
                next.used = 0;
                RateRet::Done
            }
        };
        (expected == *ret).then_some(next)
    }
}

fn rate_op(rng: &mut Rng, _task: usize) -> RateOp {
    let key = rng.pick(2);
    match rng.below(10) {
        0..=6 => RateOp::Check(key, 1 + rng.below(2) as u32),
        7..=8 => RateOp::Peek(key),
        _ => RateOp::Reset(key),
    }
}

fn exec_rate(s: Arc<Stores>, op: RateOp) -> BoxFuture<'static, RateRet> {
    Box::pin(async move {
        let Ok(rl) = s.rate_limits() else {
            return RateRet::Err("no store");
        };
        let t = tenant(0);
        let key = |k: u8| format!("history-{k}");
        let decision = |r: StoreResult<credo_ports::Decision>| match r {
            Ok(d) => RateRet::Decision(d.allowed, d.remaining),
            Err(e) => RateRet::Err(e.kind()),
        };
        match op {
            RateOp::Check(k, cost) => decision(rl.check(t, &key(k), history_policy(), cost).await),
            RateOp::Peek(k) => decision(rl.peek(t, &key(k), history_policy()).await),
            RateOp::Reset(k) => match rl.reset(t, &key(k)).await {
                Ok(()) => RateRet::Done,
                Err(e) => RateRet::Err(e.kind()),
            },
        }
    })
}

pub(super) async fn concurrent_rate_limit_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, rate_op, exec_rate, |_, calls| {
        Box::pin(async move {
            check_partitioned(
                calls,
                |op: &RateOp| match op {
                    RateOp::Check(k, _) | RateOp::Peek(k) | RateOp::Reset(k) => *k,
                },
                |_| RateSpec::default(),
            )
        })
    })
    .await
}
