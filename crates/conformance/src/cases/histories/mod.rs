//! Concurrent histories: N tasks run random operations at once against one backend; every
//! call's invocation, response and result is recorded, and the history must be linearizable
//! with respect to a sequential spec of the port (see [`crate::linearizability`]).
//!
//! The specs here are written from the port contracts (DESIGN §5) with their own naive logic:
//! they share no code with the adapters nor with the model. Each round uses fresh stores and a
//! fixed clock (time does not move while tasks race), and rounds are seeded, so a failure names
//! the seed that reproduces it.
//!
//! This file holds the list of cases and the shared machinery (the seeded generator and the
//! rounds); each port's operations, spec and case live in a file of their own.

mod audit;
mod consents;
mod outbox;
mod rate_limits;
mod sessions;
mod tokens;
mod users;

use audit::concurrent_audit_log_histories;
use consents::concurrent_consent_histories;
use outbox::concurrent_outbox_histories;
use rate_limits::concurrent_rate_limit_histories;
use sessions::concurrent_session_histories;
use tokens::concurrent_token_histories;
use users::concurrent_user_histories;

use super::cases;
use crate::harness::{Port, Stores};
use crate::linearizability::{Call, History};
use crate::support::Ctx;
use futures_util::future::BoxFuture;
use std::fmt::Debug;
use std::sync::Arc;

pub(super) fn cases() -> Vec<super::Case> {
    let mut v = cases![Port::Users; concurrent_user_histories];
    v.extend(cases![Port::Sessions; concurrent_session_histories, concurrent_token_histories]);
    v.extend(cases![Port::Consents; concurrent_consent_histories]);
    v.extend(cases![Port::Audit; concurrent_audit_log_histories]);
    v.extend(cases![Port::Outbox; concurrent_outbox_histories]);
    v.extend(cases![Port::RateLimits; concurrent_rate_limit_histories]);
    v
}

/// Tasks per round, operations per task, rounds per case.
const TASKS: usize = 4;
const OPS: usize = 6;
const ROUNDS: u64 = 40;

/// xorshift64*: deterministic per seed, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
    fn pick(&mut self, n: u8) -> u8 {
        self.below(u64::from(n)) as u8
    }
}

type Exec<O, R> = fn(Arc<Stores>, O) -> BoxFuture<'static, R>;

/// Judges a round's history (and may read the stores afterwards).
type Verify<O, R> = for<'a> fn(&'a Stores, &'a [Call<O, R>]) -> BoxFuture<'a, Result<(), String>>;

/// Runs `ROUNDS` rounds: fresh stores, `setup`, then `TASKS` tasks released together, each
/// running its `OPS` generated operations in order; then `verify` judges the history.
async fn rounds<O, R>(
    ctx: &Ctx,
    generate: fn(&mut Rng, usize) -> O,
    exec: Exec<O, R>,
    verify: Verify<O, R>,
) -> Result<(), String>
where
    O: Clone + Debug + Send + Sync + 'static,
    R: Clone + Debug + Send + Sync + 'static,
{
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        let history: Arc<History<O, R>> = History::new();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<O>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| generate(&mut rng, task)).collect())
            .collect();
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(task, plan)| {
                let (stores, history, barrier) = (stores.clone(), history.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    for op in plan {
                        let call = exec(stores.clone(), op.clone());
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        let calls = history.calls();
        verify(&stores, &calls)
            .await
            .map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}
