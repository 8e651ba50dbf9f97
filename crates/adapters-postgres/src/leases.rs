//! Maintenance job leases in a table: one row per job, taken by an upsert that only
//! overwrites an ended lease or the holder's own, so of many instances one holds each job.

use crate::time::to_db;
use crate::{LeaseClock, map_err};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use credo_ports::leases::{validate_lease, validate_names};
use credo_ports::{Clock, JobLeases, StoreResult};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// PostgreSQL [`JobLeases`] (table `maintenance_leases`), timed like the outbox's claims: on
/// the database's clock by default ([`LeaseClock`]), so instances whose clocks disagree still
/// agree on when a lease ends.
pub struct PgLeases {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    lease_clock: LeaseClock,
}

impl PgLeases {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>, lease_clock: LeaseClock) -> Self {
        Self {
            pool,
            clock,
            lease_clock,
        }
    }

    /// `NULL` lets the statement use the server's `now()`.
    fn now(&self) -> Option<DateTime<Utc>> {
        match self.lease_clock {
            LeaseClock::Database => None,
            LeaseClock::Store => Some(to_db(self.clock.now())),
        }
    }
}

#[async_trait]
impl JobLeases for PgLeases {
    async fn acquire(&self, job: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        validate_lease(job, holder, ttl)?;
        // The conflict branch's WHERE keeps another holder's running lease: no row comes back.
        let row: Option<(String,)> = sqlx::query_as(
            "WITH now AS (SELECT coalesce($3::timestamptz, now()) AS t)
             INSERT INTO maintenance_leases AS l (job, holder, held_until)
             SELECT $1, $2, t + make_interval(secs => $4::double precision / 1e6) FROM now
             ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder,
                                             held_until = EXCLUDED.held_until
             WHERE l.holder = EXCLUDED.holder OR l.held_until <= (SELECT t FROM now)
             RETURNING l.holder",
        )
        .bind(job)
        .bind(holder)
        .bind(self.now())
        .bind(ttl.as_micros() as i64)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.is_some())
    }

    async fn release(&self, job: &str, holder: &str) -> StoreResult<()> {
        validate_names(job, holder)?;
        sqlx::query("DELETE FROM maintenance_leases WHERE job = $1 AND holder = $2")
            .bind(job)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
