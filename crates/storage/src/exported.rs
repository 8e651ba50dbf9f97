//! Metrics the facade exports beside the stores' own: each readiness check's last result,
//! the last time the service was ready, and the connection pools' sizes (sampled with each
//! readiness report).

use credo_ports::telemetry::{self, PoolStats};
use credo_ports::{ReadinessReport, ReadyStatus, ReportObserver};
use std::sync::Arc;

/// The pools whose sizes are sampled with each report.
#[derive(Clone, Default)]
pub(crate) struct Pools {
    #[cfg(feature = "postgres")]
    pub(crate) postgres: Option<credo_adapters_postgres::PgStores>,
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<credo_adapters_redis::RedisStores>,
}

impl Pools {
    fn sample(&self) {
        #[cfg(feature = "postgres")]
        if let Some(pg) = &self.postgres {
            for stats in pg.pool_stats() {
                export("postgres", stats);
            }
        }
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis {
            export("redis", r.pool_stats());
        }
    }
}

#[allow(dead_code)] // unused when neither postgres nor redis is compiled in
fn export(backend: &'static str, stats: PoolStats) {
    for (state, n) in [
        ("max", stats.max),
        ("open", stats.open),
        ("idle", stats.idle),
        ("in_use", stats.in_use()),
    ] {
        metrics::gauge!(
            telemetry::POOL_CONNECTIONS,
            "backend" => backend, "pool" => stats.pool, "state" => state
        )
        .set(f64::from(n));
    }
}

/// Exports every report made: `credo_readiness_check_status{check}` (0 ok, 1 degraded,
/// 2 failed), `credo_readiness_last_ready_timestamp_seconds`, and the pools' sizes.
pub(crate) fn observer(pools: Pools) -> ReportObserver {
    Arc::new(move |report: &ReadinessReport| {
        for (check, status) in &report.checks {
            let value = match *status {
                "ok" => 0.0,
                "degraded" => 1.0,
                _ => 2.0,
            };
            metrics::gauge!(telemetry::READINESS_CHECK_STATUS, "check" => check.clone()).set(value);
        }
        if report.status == ReadyStatus::Ready {
            metrics::gauge!(telemetry::READINESS_LAST_READY).set(telemetry::unix_seconds());
        }
        pools.sample();
    })
}

/// Registers, at zero, the counters alerts watch that only move on a failure (so that
/// `increase()` has a series to read from the start, and a scrape shows them).
pub(crate) fn initialize<'a>(kafka: bool, jobs: impl Iterator<Item = &'a str>) {
    for op in ["write", "check"] {
        metrics::counter!(telemetry::REVOKED_TOKEN_FAILURES, "operation" => op).increment(0);
    }
    metrics::counter!(telemetry::OUTBOX_DEAD_LETTERED).increment(0);
    metrics::counter!(telemetry::RELAY_FAILURES).increment(0);
    if kafka {
        metrics::counter!(telemetry::KAFKA_PRODUCE_ERRORS).increment(0);
        metrics::counter!(telemetry::CONSUMER_DEAD_LETTERED).increment(0);
    }
    for job in jobs {
        let job = job.to_string();
        metrics::counter!(telemetry::MAINTENANCE_FAILURES, "job" => job.clone()).increment(0);
        metrics::counter!(telemetry::MAINTENANCE_REMOVED, "job" => job).increment(0);
    }
}
