use crate::map_err;
use async_trait::async_trait;
use credo_ports::rate_limit::{gcra, validate_clock, validate_key};
use credo_ports::{
    Clock, Decision, RateLimitPolicy, RateLimitStore, StoreResult, TenantId, Timestamp,
};
use sqlx::PgPool;
use std::num::NonZeroU32;
use std::sync::Arc;

/// PostgreSQL GCRA [`RateLimitStore`] for single-database deployments: the key's row is locked
/// (`FOR UPDATE`) while the shared [`gcra`] step runs, so concurrent checks serialize per key.
pub struct PgRateLimitStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgRateLimitStore {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

#[async_trait]
impl RateLimitStore for PgRateLimitStore {
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Upsert-then-lock: the row exists (an idle TAT equals "no state") and is ours until commit.
        let tat: i64 = sqlx::query_scalar(
            "INSERT INTO rate_limits (tenant_id, key, tat_us) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, key) DO UPDATE SET tat_us = rate_limits.tat_us
             RETURNING tat_us",
        )
        .bind(tenant.0)
        .bind(key)
        .bind(now.as_micros())
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let (decision, new_tat) = gcra(&policy, Some(Timestamp::from_micros(tat)), now, cost);
        if let Some(t) = new_tat {
            sqlx::query("UPDATE rate_limits SET tat_us = $3 WHERE tenant_id = $1 AND key = $2")
                .bind(tenant.0)
                .bind(key)
                .bind(t.as_micros())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
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
        let tat: Option<i64> =
            sqlx::query_scalar("SELECT tat_us FROM rate_limits WHERE tenant_id = $1 AND key = $2")
                .bind(tenant.0)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(gcra(&policy, tat.map(Timestamp::from_micros), now, 1).0)
    }

    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        validate_key(key)?;
        sqlx::query("DELETE FROM rate_limits WHERE tenant_id = $1 AND key = $2")
            .bind(tenant.0)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let now = self.clock.now().as_micros();
        let r = sqlx::query(
            // Condition repeated outside: a key a concurrent check just used is kept.
            "DELETE FROM rate_limits WHERE (tenant_id, key) IN
                 (SELECT tenant_id, key FROM rate_limits WHERE tat_us <= $1 LIMIT $2)
                 AND tat_us <= $1",
        )
        .bind(now)
        .bind(i64::from(limit.get()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected())
    }
}
