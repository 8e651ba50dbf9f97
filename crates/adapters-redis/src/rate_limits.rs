use crate::lua::with_time_cmp;
use crate::{RedisStores, TimeSource};
use async_trait::async_trait;
use credo_ports::rate_limit::{validate_clock, validate_key};
use credo_ports::{Decision, RateLimitPolicy, RateLimitStore, StoreResult, TenantId};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

/// GCRA in integer microseconds, the mirror of `credo_ports::rate_limit::gcra`. Lua numbers
/// are doubles: every value stays below 2^53 (policies are bounded), and divisions are
/// corrected to exact integer quotients.
/// KEYS: key. ARGV: now ('' = Redis TIME), emission interval, tolerance, cost, consume (1|0),
/// grace_ms. Returns {allowed, remaining, reset_after, retry_after}.
pub(crate) const GCRA_LUA: &str = include_str!("lua/gcra.lua");

static GCRA: LazyLock<Script> = LazyLock::new(|| Script::from_lua(GCRA_LUA));

/// Deletes a rate-limit key whose TAT is not after now. KEYS: key. ARGV: now ('' = TIME).
static PURGE_IDLE: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/purge_idle.lua")));

/// Redis GCRA [`RateLimitStore`]: one string key per `(tenant, key)` holding the TAT, updated
/// by one script; the key expires once idle (TAT plus a grace).
pub struct RedisRateLimitStore {
    r: RedisStores,
}

impl RedisRateLimitStore {
    pub(crate) fn new(r: RedisStores) -> Self {
        Self { r }
    }

    /// The script's `now`: empty for the server's `TIME` (trusted to be within
    /// [`credo_ports::rate_limit::CLOCK_LIMIT_US`]), else the injected clock, checked.
    fn now_arg(&self) -> StoreResult<String> {
        match self.r.rate_limit_time {
            TimeSource::Server => Ok(String::new()),
            TimeSource::Clock => {
                let now = self.r.clock.now();
                validate_clock(now)?;
                Ok(now.as_micros().to_string())
            }
        }
    }

    /// Purges compare exactly (as strings), so any clock works.
    fn purge_now_arg(&self) -> String {
        match self.r.rate_limit_time {
            TimeSource::Server => String::new(),
            TimeSource::Clock => self.r.clock.now().as_micros().to_string(),
        }
    }

    async fn gcra(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
        consume: bool,
    ) -> StoreResult<Decision> {
        let args = vec![
            self.now_arg()?,
            policy.emission_interval_us().to_string(),
            policy.tolerance_us().to_string(),
            cost.to_string(),
            if consume { "1" } else { "0" }.to_string(),
            self.r.grace_ms.max(1).to_string(),
        ];
        let (allowed, remaining, reset_after, retry_after): (i64, i64, i64, i64) = self
            .r
            .eval(
                self.r.mutant.gcra(&GCRA),
                vec![self.r.key(tenant, "rl", key)],
                args,
            )
            .await?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        Ok(Decision {
            allowed: allowed == 1,
            limit: policy.limit,
            remaining: remaining.clamp(0, i64::from(u32::MAX)) as u32,
            reset_after: us(reset_after),
            retry_after: us(retry_after),
        })
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision> {
        policy.validate(cost)?;
        validate_key(key)?;
        self.gcra(tenant, key, policy, cost, true).await
    }

    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision> {
        policy.validate(1)?;
        validate_key(key)?;
        self.gcra(tenant, key, policy, 1, false).await
    }

    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        validate_key(key)?;
        let _: i64 = self
            .r
            .pool
            .del(self.r.key(tenant, "rl", key))
            .await
            .map_err(|e| self.r.errors.map(e))?;
        Ok(())
    }

    /// Idle keys also expire by themselves (TAT plus the grace); this sweeps them now.
    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let pattern = format!("{}:{{t:*}}:rl:*", self.r.prefix);
        let purged = self
            .r
            .purge_scan(pattern, limit.get() as usize, |key| async move {
                let deleted: i64 = self
                    .r
                    .eval(&PURGE_IDLE, vec![key], vec![self.purge_now_arg()])
                    .await?;
                Ok((deleted == 1).then_some(()))
            })
            .await?;
        Ok(purged.len() as u64)
    }
}
