//! Health checks and the readiness report of PRD-020 FR-1 (`/health/live`, `/health/ready`).

use crate::{Clock, Timestamp};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Outcome of one health check.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthStatus {
    /// Working.
    Ok,
    /// Working with a problem that does not stop traffic (e.g. a Kafka topic is missing).
    Degraded(String),
    /// Not working; the service is not ready.
    Failed(String),
}

impl HealthStatus {
    /// The FR-1 spelling: `ok`, `degraded` or `failed`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded(_) => "degraded",
            HealthStatus::Failed(_) => "failed",
        }
    }
}

/// A dependency check exposed by an adapter. Implementations should be cheap (one round-trip).
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Key of this check in the report, e.g. `database`, `redis`, `kafka`.
    fn name(&self) -> &str;
    /// Runs the check. [`Readiness`] bounds it with a timeout.
    async fn check(&self) -> HealthStatus;
}

/// `ready` or `not_ready`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadyStatus {
    /// Every check is ok or degraded: HTTP 200.
    Ready,
    /// Some check failed: HTTP 503.
    NotReady,
}

/// The body of `GET /health/ready`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadinessReport {
    /// `ready` unless a check failed.
    pub status: ReadyStatus,
    /// Check name to `ok` / `degraded` / `failed`.
    pub checks: BTreeMap<String, &'static str>,
    /// Reasons of checks that are not ok (not part of FR-1's example, useful to operators).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// When the report was made.
    pub timestamp: Timestamp,
}

impl ReadinessReport {
    /// 200 when ready, 503 otherwise.
    #[must_use]
    pub fn http_status(&self) -> u16 {
        match self.status {
            ReadyStatus::Ready => 200,
            ReadyStatus::NotReady => 503,
        }
    }

    /// The JSON body.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Aggregates checks into the readiness report; each check is bounded by `timeout` and all run
/// concurrently, so one hung dependency cannot hang the probe.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use credo_ports::{HealthCheck, HealthStatus, Readiness, SystemClock};
///
/// struct Db;
/// #[async_trait::async_trait]
/// impl HealthCheck for Db {
///     fn name(&self) -> &str { "database" }
///     async fn check(&self) -> HealthStatus { HealthStatus::Ok }
/// }
/// let ready = Readiness::new(vec![Arc::new(Db)], Duration::from_secs(2), Arc::new(SystemClock));
/// let report = ready.report().await;
/// assert_eq!(report.http_status(), 200);
/// assert_eq!(report.to_json()["checks"]["database"], "ok");
/// # });
/// ```
pub struct Readiness {
    checks: Vec<Arc<dyn HealthCheck>>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    cache_for: Duration,
    /// The last report and when it was made (monotonic), shared by concurrent probes.
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, ReadinessReport)>>,
    /// Told of every report made (not of cached ones served again).
    observer: Option<ReportObserver>,
}

/// A function told of every readiness report made, e.g. to export it as metrics.
pub type ReportObserver = Arc<dyn Fn(&ReadinessReport) + Send + Sync>;

impl Readiness {
    /// A readiness aggregator over `checks`, each bounded by `timeout`.
    pub fn new(
        checks: Vec<Arc<dyn HealthCheck>>,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            checks,
            timeout,
            clock,
            cache_for: Duration::ZERO,
            last: tokio::sync::Mutex::new(None),
            observer: None,
        }
    }

    /// Serves a report made less than `ttl` ago instead of running the checks again, and lets
    /// probes that arrive while the checks run wait for that one run: a flood of probes reaches
    /// the backends at most once per `ttl`. Zero (the default) runs the checks every time.
    #[must_use]
    pub fn cached_for(mut self, ttl: Duration) -> Self {
        self.cache_for = ttl;
        self
    }

    /// Tells `observer` of every report made from now on.
    #[must_use]
    pub fn observed_by(mut self, observer: ReportObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The report: the cached one while it is fresh ([`cached_for`](Self::cached_for)),
    /// otherwise every check, run now. A check that times out counts as failed.
    #[must_use = "the report is the only outcome of the checks"]
    pub async fn report(&self) -> ReadinessReport {
        if self.cache_for.is_zero() {
            return self.run().await;
        }
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref()
            && at.elapsed() < self.cache_for
        {
            return report.clone();
        }
        let report = self.run().await;
        *last = Some((tokio::time::Instant::now(), report.clone()));
        report
    }

    async fn run(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|c| async move {
            let status = match tokio::time::timeout(self.timeout, c.check()).await {
                Ok(s) => s,
                Err(_) => HealthStatus::Failed(format!("timed out after {:?}", self.timeout)),
            };
            (c.name().to_string(), status)
        });
        let results = futures_util::future::join_all(runs).await;
        let mut checks = BTreeMap::new();
        let mut details = BTreeMap::new();
        let mut status = ReadyStatus::Ready;
        for (name, s) in results {
            match &s {
                HealthStatus::Ok => {}
                HealthStatus::Degraded(r) => {
                    details.insert(name.clone(), r.clone());
                }
                HealthStatus::Failed(r) => {
                    status = ReadyStatus::NotReady;
                    details.insert(name.clone(), r.clone());
                }
            }
            checks.insert(name, s.as_str());
        }
        let report = ReadinessReport {
            status,
            checks,
            details,
            timestamp: self.clock.now(),
        };
        if let Some(observe) = &self.observer {
            observe(&report);
        }
        report
    }
}

/// The body of `GET /health/live`: needs no I/O.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
    /// When it was made.
    pub timestamp: Timestamp,
}

impl Liveness {
    /// The liveness body at the clock's now.
    #[must_use]
    pub fn now(clock: &dyn Clock) -> Self {
        Self {
            status: "ok",
            timestamp: clock.now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    struct Fixed(&'static str, HealthStatus, Duration);

    #[async_trait]
    impl HealthCheck for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        async fn check(&self) -> HealthStatus {
            tokio::time::sleep(self.2).await;
            self.1.clone()
        }
    }

    fn readiness(checks: Vec<Fixed>) -> Readiness {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_765_533_600)));
        let checks = checks
            .into_iter()
            .map(|c| Arc::new(c) as Arc<dyn HealthCheck>)
            .collect();
        Readiness::new(checks, Duration::from_millis(50), clock)
    }

    #[tokio::test(start_paused = true)]
    async fn degraded_is_ready_failed_or_hung_is_not() {
        let r = readiness(vec![
            Fixed("database", HealthStatus::Ok, Duration::ZERO),
            Fixed(
                "kafka",
                HealthStatus::Degraded("topic missing".into()),
                Duration::ZERO,
            ),
        ])
        .report()
        .await;
        assert_eq!(r.http_status(), 200);
        let json = r.to_json();
        assert_eq!(json["status"], "ready");
        assert_eq!(json["checks"]["kafka"], "degraded");
        assert_eq!(json["timestamp"], "2025-12-12T10:00:00.000000Z");

        let r = readiness(vec![
            Fixed("database", HealthStatus::Ok, Duration::ZERO),
            Fixed("redis", HealthStatus::Ok, Duration::from_secs(3600)),
        ])
        .report()
        .await;
        assert_eq!(r.http_status(), 503);
        assert_eq!(r.to_json()["status"], "not_ready");
        assert_eq!(r.to_json()["checks"]["redis"], "failed");
        assert!(r.details["redis"].contains("timed out"));
    }

    #[test]
    fn liveness_needs_no_io() {
        let c = ManualClock::new(Timestamp::EPOCH);
        let json = serde_json::to_value(Liveness::now(&c)).unwrap();
        assert_eq!(json["status"], "ok");
    }

    struct Counting(Arc<std::sync::atomic::AtomicUsize>);

    #[async_trait]
    impl HealthCheck for Counting {
        fn name(&self) -> &str {
            "database"
        }
        async fn check(&self) -> HealthStatus {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(10)).await;
            HealthStatus::Ok
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_probes_runs_the_checks_once_per_ttl() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_765_533_600)));
        let ready = Arc::new(
            Readiness::new(
                vec![Arc::new(Counting(runs.clone()))],
                Duration::from_secs(2),
                clock,
            )
            .cached_for(Duration::from_secs(1)),
        );
        let probes = (0..100).map(|_| {
            let ready = ready.clone();
            tokio::spawn(async move { ready.report().await.http_status() })
        });
        for probe in probes {
            assert_eq!(probe.await.unwrap(), 200);
        }
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        let _ = ready.report().await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(600)).await;
        let _ = ready.report().await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_ttl_every_probe_runs_the_checks() {
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_765_533_600)));
        let ready = Readiness::new(
            vec![Arc::new(Counting(runs.clone()))],
            Duration::from_secs(2),
            clock,
        );
        let _ = ready.report().await;
        let _ = ready.report().await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
