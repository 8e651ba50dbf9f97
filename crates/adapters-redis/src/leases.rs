//! Maintenance job leases in Redis: one hash per job (`{prefix}:{lease}:<job>`) holding the
//! holder and the end of its lease, taken and renewed by one script.

use crate::RedisStores;
use crate::lua::with_time_cmp;
use async_trait::async_trait;
use credo_ports::leases::{validate_lease, validate_names};
use credo_ports::{JobLeases, StoreResult};
use fred::types::scripts::Script;
use std::sync::LazyLock;
use std::time::Duration;

/// Takes the lease unless another holder's has not ended. KEYS: lease. ARGV: holder, now,
/// until (µs, store clock), physical expiry (ms).
static ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/lease_acquire.lua")));
/// Deletes the lease if `holder` has it. KEYS: lease. ARGV: holder.
static RELEASE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/lease_release.lua")));

/// A key outlives its lease by this much, so that the stores' clock, not Redis's, says when a
/// lease ends; the key's own expiry only clears leases nobody renews.
const KEY_GRACE: Duration = Duration::from_secs(1);

/// Redis [`JobLeases`], timed on the stores' clock like the sessions.
pub struct RedisLeases {
    r: RedisStores,
}

impl RedisLeases {
    pub(crate) fn new(r: RedisStores) -> Self {
        Self { r }
    }

    fn key(&self, job: &str) -> String {
        format!("{}:{{lease}}:{job}", self.r.prefix)
    }
}

#[async_trait]
impl JobLeases for RedisLeases {
    async fn acquire(&self, job: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        validate_lease(job, holder, ttl)?;
        let now = self.r.clock.now();
        let until = now.saturating_add(ttl);
        let px = (ttl + KEY_GRACE).as_millis().to_string();
        let got: i64 = self
            .r
            .eval(
                &ACQUIRE,
                vec![self.key(job)],
                vec![
                    holder.to_string(),
                    now.as_micros().to_string(),
                    until.as_micros().to_string(),
                    px,
                ],
            )
            .await?;
        Ok(got == 1)
    }

    async fn release(&self, job: &str, holder: &str) -> StoreResult<()> {
        validate_names(job, holder)?;
        let _: i64 = self
            .r
            .eval(&RELEASE, vec![self.key(job)], vec![holder.to_string()])
            .await?;
        Ok(())
    }
}
