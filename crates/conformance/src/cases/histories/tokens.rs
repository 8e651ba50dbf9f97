//! Concurrent token-revocation histories and the purge: revocations start expired, tasks
//! renew, read and purge.

use super::{OPS, ROUNDS, Rng, TASKS};
use crate::cases::tenant;
use crate::harness::Stores;
use crate::linearizability::{History, Spec, check};
use crate::support::Ctx;
use futures_util::future::BoxFuture;
use std::fmt::Debug;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
enum TokenOp {
    Revoke(u8),
    IsRevoked(u8),
    Purge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum TokenRet {
    Done,
    Revoked(bool),
    Purged(u64),
    Err(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Token {
    Expired,
    Live,
    Gone,
}

/// Three revocations that expired just before the round starts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct TokenSpec {
    tokens: [Token; 3],
}

impl Spec for TokenSpec {
    type Op = TokenOp;
    type Ret = TokenRet;
    fn step(&self, op: &TokenOp, ret: &TokenRet) -> Option<Self> {
        let mut next = self.clone();
        match (op, ret) {
            (TokenOp::Revoke(j), TokenRet::Done) => next.tokens[*j as usize] = Token::Live,
            (TokenOp::IsRevoked(j), TokenRet::Revoked(r)) => {
                if *r != (self.tokens[*j as usize] == Token::Live) {
                    return None;
                }
            }
            // A purge's successors come from `successors`; a failed purge matches nothing.
            _ => return None,
        }
        Some(next)
    }

    /// A purge removes some of the expired revocations and counts them: a sweep over keys
    /// (Redis) may share them with a concurrent sweep, and keys may also have expired by TTL.
    /// Live revocations are never touched. Expired and removed ones read alike (not revoked).
    fn successors(&self, op: &TokenOp, ret: &TokenRet) -> Vec<Self> {
        let (TokenOp::Purge, TokenRet::Purged(n)) = (op, ret) else {
            return self.step(op, ret).into_iter().collect();
        };
        let expired: Vec<usize> = (0..3)
            .filter(|&i| self.tokens[i] == Token::Expired)
            .collect();
        let mut out = Vec::new();
        for mask in 0u8..(1 << expired.len()) {
            if u64::from(mask.count_ones()) != *n {
                continue;
            }
            let mut next = self.clone();
            for (bit, &i) in expired.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    next.tokens[i] = Token::Gone;
                }
            }
            out.push(next);
        }
        out
    }
}

fn token_op(rng: &mut Rng, _task: usize) -> TokenOp {
    let j = rng.pick(3);
    match rng.below(6) {
        0..=1 => TokenOp::Revoke(j),
        2..=3 => TokenOp::IsRevoked(j),
        _ => TokenOp::Purge,
    }
}

fn token_jti(j: u8) -> String {
    format!("history-jti-{j}")
}

fn exec_token(s: Arc<Stores>, op: TokenOp) -> BoxFuture<'static, TokenRet> {
    Box::pin(async move {
        let Ok(st) = s.sessions() else {
            return TokenRet::Err("no store");
        };
        let t = tenant(0);
        match op {
            TokenOp::Revoke(j) => {
                let exp = s.now().saturating_add(Duration::from_secs(3600));
                match st.revoke_token(t, &token_jti(j), exp).await {
                    Ok(()) => TokenRet::Done,
                    Err(e) => TokenRet::Err(e.kind()),
                }
            }
            TokenOp::IsRevoked(j) => match st.is_token_revoked(t, &token_jti(j)).await {
                Ok(r) => TokenRet::Revoked(r),
                Err(e) => TokenRet::Err(e.kind()),
            },
            TokenOp::Purge => match st.purge_expired(NonZeroU32::MAX).await {
                Ok(n) => TokenRet::Purged(n),
                Err(e) => TokenRet::Err(e.kind()),
            },
        }
    })
}

pub(super) async fn concurrent_token_histories(ctx: &Ctx) -> Result<(), String> {
    for seed in 0..ROUNDS {
        let stores = Arc::new(ctx.fresh().await?);
        // Revocations that expire 1 µs from now, then the clock steps past them.
        let st = stores.sessions()?;
        for j in 0..3 {
            let exp = stores.now().saturating_add(Duration::from_micros(1));
            crate::cases::ok(
                "setup",
                st.revoke_token(tenant(0), &token_jti(j), exp).await,
            )?;
        }
        stores
            .clock
            .set(stores.now().saturating_add(Duration::from_micros(2)));
        let history: Arc<History<TokenOp, TokenRet>> = History::new();
        let mut rng = Rng::new(seed + 1);
        let plans: Vec<Vec<TokenOp>> = (0..TASKS)
            .map(|task| (0..OPS).map(|_| token_op(&mut rng, task)).collect())
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
                        let call = exec_token(stores.clone(), op.clone());
                        history.record(task, op, call).await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("task failed: {e}"))?;
        }
        let init = TokenSpec {
            tokens: [Token::Expired; 3],
        };
        check(&init, &history.calls()).map_err(|e| format!("round seed {}: {e}", seed + 1))?;
    }
    Ok(())
}
