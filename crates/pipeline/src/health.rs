//! Readiness that sees the pipeline: heartbeats of the relay and the consumer (a task that
//! died or stalled fails readiness) and the outbox backlog (degraded above a warning
//! threshold, failed above a critical one). The details never carry driver text or hosts.

use async_trait::async_trait;
use credo_ports::{HealthCheck, HealthStatus, Outbox};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// When a background task last completed a pass. Cheap to clone and to beat.
#[derive(Clone, Debug)]
pub struct Heartbeat(Arc<Beats>);

#[derive(Debug)]
struct Beats {
    /// Gauge set to the Unix time of each beat, if any.
    gauge: Option<&'static str>,
    born: Instant,
    /// Nanoseconds after `born` of the last beat; `u64::MAX` before the first.
    last: AtomicU64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self(Arc::new(Beats {
            gauge: None,
            born: Instant::now(),
            last: AtomicU64::new(u64::MAX),
        }))
    }
}

impl Heartbeat {
    /// A heartbeat that also sets the gauge `metric` to the Unix time of each beat.
    #[must_use]
    pub fn reporting(metric: &'static str) -> Self {
        Self(Arc::new(Beats {
            gauge: Some(metric),
            born: Instant::now(),
            last: AtomicU64::new(u64::MAX),
        }))
    }

    /// Records a completed pass now.
    pub fn beat(&self) {
        let nanos = self.0.born.elapsed().as_nanos().min(u64::MAX as u128 - 1) as u64;
        self.0.last.store(nanos, Ordering::Relaxed);
        if let Some(metric) = self.0.gauge {
            metrics::gauge!(metric).set(credo_ports::telemetry::unix_seconds());
        }
    }

    /// Time since the last beat; `None` before the first.
    #[must_use]
    pub fn since_last(&self) -> Option<Duration> {
        match self.0.last.load(Ordering::Relaxed) {
            u64::MAX => None,
            nanos => Some(
                self.0
                    .born
                    .elapsed()
                    .saturating_sub(Duration::from_nanos(nanos)),
            ),
        }
    }

    /// Time since the heartbeat was made.
    #[must_use]
    pub fn age(&self) -> Duration {
        self.0.born.elapsed()
    }
}

/// `failed` once the task has not completed a pass for `stall_after` (from its start, before
/// the first pass); `ok` otherwise.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// use credo_pipeline::health::{Heartbeat, HeartbeatCheck};
/// use credo_ports::{HealthCheck, HealthStatus};
/// use std::time::Duration;
/// let beat = Heartbeat::default();
/// let check = HeartbeatCheck::new("relay", beat.clone(), Duration::from_secs(60));
/// beat.beat();
/// assert_eq!(check.check().await, HealthStatus::Ok);
/// tokio::time::advance(Duration::from_secs(61)).await;
/// assert!(matches!(check.check().await, HealthStatus::Failed(_)));
/// # });
/// ```
pub struct HeartbeatCheck {
    name: &'static str,
    heartbeat: Heartbeat,
    stall_after: Duration,
}

impl HeartbeatCheck {
    /// A check named `name` (the task: `relay`, `audit-consumer`).
    pub fn new(name: &'static str, heartbeat: Heartbeat, stall_after: Duration) -> Self {
        Self {
            name,
            heartbeat,
            stall_after,
        }
    }
}

#[async_trait]
impl HealthCheck for HeartbeatCheck {
    fn name(&self) -> &str {
        self.name
    }

    async fn check(&self) -> HealthStatus {
        let quiet = self
            .heartbeat
            .since_last()
            .unwrap_or_else(|| self.heartbeat.age());
        if quiet > self.stall_after {
            HealthStatus::Failed(format!(
                "no completed pass for {}s (stopped or stalled; limit {}s)",
                quiet.as_secs(),
                self.stall_after.as_secs()
            ))
        } else {
            HealthStatus::Ok
        }
    }
}

/// Outbox backlog limits: pending rows and the age of the oldest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BacklogThresholds {
    /// Pending rows above which readiness is `degraded` (default 1,000).
    pub depth_warning: u64,
    /// Pending rows above which readiness is `failed` (default 10,000).
    pub depth_critical: u64,
    /// Age of the oldest pending row above which readiness is `degraded` (default 1 min).
    pub age_warning: Duration,
    /// Age of the oldest pending row above which readiness is `failed` (default 10 min).
    pub age_critical: Duration,
}

impl Default for BacklogThresholds {
    fn default() -> Self {
        Self {
            depth_warning: 1_000,
            depth_critical: 10_000,
            age_warning: Duration::from_secs(60),
            age_critical: Duration::from_secs(600),
        }
    }
}

/// The outbox backlog as a readiness check named `outbox`.
pub struct BacklogCheck {
    outbox: Arc<dyn Outbox>,
    limits: BacklogThresholds,
}

impl BacklogCheck {
    /// A check of `outbox` against `limits`.
    pub fn new(outbox: Arc<dyn Outbox>, limits: BacklogThresholds) -> Self {
        Self { outbox, limits }
    }

    /// The status for a depth and oldest age (pure, for tests and tools).
    #[must_use]
    pub fn judge(limits: &BacklogThresholds, depth: u64, oldest: Option<Duration>) -> HealthStatus {
        let age = oldest.unwrap_or_default();
        let text = || format!("{depth} events pending, the oldest {}s old", age.as_secs());
        if depth > limits.depth_critical || age > limits.age_critical {
            HealthStatus::Failed(format!("{} (critical)", text()))
        } else if depth > limits.depth_warning || age > limits.age_warning {
            HealthStatus::Degraded(format!("{} (warning)", text()))
        } else {
            HealthStatus::Ok
        }
    }
}

#[async_trait]
impl HealthCheck for BacklogCheck {
    fn name(&self) -> &str {
        "outbox"
    }

    async fn check(&self) -> HealthStatus {
        let (depth, oldest) = tokio::join!(self.outbox.depth(), self.outbox.oldest_pending_age());
        match (depth, oldest) {
            (Ok(depth), Ok(oldest)) => Self::judge(&self.limits, depth, oldest),
            // The database's own check says why; no driver text here.
            _ => HealthStatus::Failed("the outbox backlog could not be read".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_is_judged_at_its_thresholds() {
        let l = BacklogThresholds::default();
        let s = |depth, age: u64| BacklogCheck::judge(&l, depth, Some(Duration::from_secs(age)));
        assert_eq!(s(0, 0), HealthStatus::Ok);
        assert_eq!(BacklogCheck::judge(&l, 0, None), HealthStatus::Ok);
        assert_eq!(s(1_000, 60), HealthStatus::Ok);
        assert!(matches!(s(1_001, 0), HealthStatus::Degraded(_)));
        assert!(matches!(s(0, 61), HealthStatus::Degraded(_)));
        assert!(matches!(s(10_000, 0), HealthStatus::Degraded(_)));
        assert!(matches!(s(10_001, 0), HealthStatus::Failed(_)));
        assert!(matches!(s(0, 601), HealthStatus::Failed(_)));
        assert_eq!(s(u64::MAX, u64::MAX).as_str(), "failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_stops_beating_fails_after_the_limit() {
        let beat = Heartbeat::default();
        let check = HeartbeatCheck::new("relay", beat.clone(), Duration::from_secs(60));
        // Starting: no pass yet, within the limit.
        assert_eq!(check.check().await, HealthStatus::Ok);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(check.check().await, HealthStatus::Failed(_)));
        beat.beat();
        assert_eq!(check.check().await, HealthStatus::Ok);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(check.check().await, HealthStatus::Ok);
        tokio::time::advance(Duration::from_secs(1)).await;
        let HealthStatus::Failed(why) = check.check().await else {
            panic!("a stalled task must fail");
        };
        assert!(why.contains("61s"), "{why}");
    }
}
