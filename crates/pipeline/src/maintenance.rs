//! The maintenance runner: the purges no store runs by itself (expired sessions and token
//! revocations, idle rate-limit keys, published outbox rows, audit events past their
//! retention), each as a [`Job`] on its own interval.
//!
//! - Bounded: a job purges in batches of [`MaintenanceConfig::batch`] rows with a pause
//!   between them, so no statement runs long and foreground calls keep their latency. The
//!   stores recheck each row as they delete it, so a row a concurrent write made live again
//!   stays.
//! - One instance at a time: a job runs only while this instance holds its lease
//!   ([`JobLeases`], on the backend the job purges), renewed between batches. An instance that
//!   crashes mid-job stops renewing; its lease ends and the next instance whose interval
//!   comes round takes the job over.
//! - Observable: per job, rows removed, run time, failures and the time of the last success
//!   (metrics named in [`credo_ports::telemetry`]), a log line per run, and a readiness check
//!   ([`MaintenanceCheck`]) that is `degraded` while a job keeps failing.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use credo_adapters_inmemory::InMemoryStores;
//! use credo_pipeline::maintenance::{Job, Maintenance, MaintenanceConfig};
//! use credo_ports::SystemClock;
//!
//! let stores = InMemoryStores::new(Arc::new(SystemClock));
//! let every = Duration::from_secs(300);
//! let jobs = vec![
//!     Job::sessions(stores.sessions(), stores.leases(), every),
//!     Job::rate_limits(stores.rate_limits(), stores.leases(), every),
//! ];
//! let maintenance = Maintenance::new(jobs, MaintenanceConfig::default()).unwrap();
//! for report in maintenance.run_once().await {
//!     assert!(report.outcome.is_ok(), "{}: {:?}", report.job, report.outcome);
//! }
//! # });
//! ```

use crate::{is_stopped, pause_unless_stopped};
use async_trait::async_trait;
use credo_ports::leases::{MAX_LEASE, MIN_LEASE};
use credo_ports::partitions::AuditPartitions;
use credo_ports::{
    AuditCategory, AuditLog, Clock, HealthCheck, HealthStatus, JobLeases, NonZeroU32, Outbox,
    RateLimitStore, SessionStore, StoreError, StoreResult, telemetry,
};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How every job runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MaintenanceConfig {
    /// Rows one purge statement (or script) removes at most.
    pub batch: NonZeroU32,
    /// Pause between two batches of one job.
    pub pause: Duration,
    /// Lease of a running job, renewed between batches: how long a crashed instance keeps
    /// its job from the others. Longer than one batch plus the pause.
    pub lease: Duration,
    /// This instance's name in the leases (default: `instance-<random uuid>`).
    pub holder: String,
    /// Failed runs in a row after which [`MaintenanceCheck`] is `degraded`.
    pub failing_after: u32,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            // Measured (crates/bench/benches/maintenance.rs): foreground p99 on the purged
            // table stays within 10 % of its quiet value; 1,000 / 100 ms made it 1.24×.
            batch: NonZeroU32::new(500).expect("positive"),
            pause: Duration::from_millis(400),
            lease: Duration::from_secs(60),
            holder: format!("instance-{}", uuid::Uuid::new_v4()),
            failing_after: 3,
        }
    }
}

impl MaintenanceConfig {
    /// `InvalidInput` naming the field: a lease outside the leases' bounds or not longer than
    /// the pause, an empty holder, or `failing_after` of 0.
    pub fn validate(&self) -> StoreResult<()> {
        if !(MIN_LEASE..=MAX_LEASE).contains(&self.lease) {
            return Err(StoreError::invalid(
                "lease",
                format!("must be between {MIN_LEASE:?} and {MAX_LEASE:?}"),
            ));
        }
        if self.pause >= self.lease {
            return Err(StoreError::invalid(
                "pause",
                "must be shorter than the lease, which is renewed between batches",
            ));
        }
        credo_ports::validate::text("holder", &self.holder)?;
        if self.failing_after == 0 {
            return Err(StoreError::invalid("failing_after", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a job purges.
enum Purge {
    Sessions(Arc<dyn SessionStore>),
    RateLimits(Arc<dyn RateLimitStore>),
    Outbox {
        outbox: Arc<dyn Outbox>,
        keep: Duration,
        clock: Arc<dyn Clock>,
    },
    Audit {
        log: Arc<dyn AuditLog>,
        category: AuditCategory,
        keep: Duration,
        clock: Arc<dyn Clock>,
    },
    AuditPartitions {
        partitions: Arc<dyn AuditPartitions>,
        layout: PartitionLayout,
        keep: Duration,
        clock: Arc<dyn Clock>,
    },
}

/// The partitions the `audit-partitions` job keeps made ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionLayout {
    /// Days per partition.
    pub period_days: NonZeroU32,
    /// Partitions made past the one holding now.
    pub ahead: u32,
}

/// One purge on its interval, under its lease.
pub struct Job {
    name: String,
    interval: Duration,
    leases: Arc<dyn JobLeases>,
    purge: Purge,
    failures_in_a_row: AtomicU32,
    last_success: Mutex<Option<Instant>>,
}

impl Job {
    fn new(name: String, interval: Duration, leases: Arc<dyn JobLeases>, purge: Purge) -> Self {
        Self {
            name,
            interval,
            leases,
            purge,
            failures_in_a_row: AtomicU32::new(0),
            last_success: Mutex::new(None),
        }
    }

    /// `sessions`: expired sessions and token revocations.
    pub fn sessions(
        store: Arc<dyn SessionStore>,
        leases: Arc<dyn JobLeases>,
        interval: Duration,
    ) -> Self {
        Self::new("sessions".into(), interval, leases, Purge::Sessions(store))
    }

    /// `rate-limits`: state of idle keys.
    pub fn rate_limits(
        store: Arc<dyn RateLimitStore>,
        leases: Arc<dyn JobLeases>,
        interval: Duration,
    ) -> Self {
        Self::new(
            "rate-limits".into(),
            interval,
            leases,
            Purge::RateLimits(store),
        )
    }

    /// `outbox`: rows published more than `keep` ago (pending rows and dead letters stay).
    pub fn outbox(
        outbox: Arc<dyn Outbox>,
        leases: Arc<dyn JobLeases>,
        interval: Duration,
        keep: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            "outbox".into(),
            interval,
            leases,
            Purge::Outbox {
                outbox,
                keep,
                clock,
            },
        )
    }

    /// `audit-<category>`: events of `category` that occurred more than `keep` ago.
    pub fn audit(
        log: Arc<dyn AuditLog>,
        leases: Arc<dyn JobLeases>,
        interval: Duration,
        category: AuditCategory,
        keep: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            format!("audit-{}", category.as_str()),
            interval,
            leases,
            Purge::Audit {
                log,
                category,
                keep,
                clock,
            },
        )
    }

    /// `audit-partitions`: makes the audit log's partitions `layout.ahead` periods ahead, then
    /// drops whole partitions whose events all occurred more than `keep` ago (the longest
    /// retention of any category: a partition holds every category). Its count of removed
    /// items is partitions, not rows.
    pub fn audit_partitions(
        partitions: Arc<dyn AuditPartitions>,
        leases: Arc<dyn JobLeases>,
        interval: Duration,
        layout: PartitionLayout,
        keep: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            "audit-partitions".into(),
            interval,
            leases,
            Purge::AuditPartitions {
                partitions,
                layout,
                keep,
                clock,
            },
        )
    }

    /// The job's name: in its lease, its metrics' `job` label and its log lines.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often it runs.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Failed runs since the last successful one.
    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row.load(Ordering::Relaxed)
    }

    /// Time since the last successful run of this instance, if any.
    pub fn since_last_success(&self) -> Option<Duration> {
        self.last_success.lock().map(|at| at.elapsed())
    }

    /// One batch. The cutoffs are taken now, so a long job does not purge by a stale one.
    async fn purge(&self, limit: NonZeroU32) -> StoreResult<u64> {
        match &self.purge {
            Purge::Sessions(s) => s.purge_expired(limit).await,
            Purge::RateLimits(r) => r.purge_idle(limit).await,
            Purge::Outbox {
                outbox,
                keep,
                clock,
            } => {
                outbox
                    .purge_published(clock.now().saturating_sub(*keep), limit)
                    .await
            }
            Purge::Audit {
                log,
                category,
                keep,
                clock,
            } => {
                log.purge_before(clock.now().saturating_sub(*keep), Some(*category), limit)
                    .await
            }
            Purge::AuditPartitions {
                partitions,
                layout,
                keep,
                clock,
            } => {
                let now = clock.now();
                partitions
                    .create_ahead(now, layout.period_days, layout.ahead)
                    .await?;
                partitions
                    .drop_before(now.saturating_sub(*keep), limit)
                    .await
            }
        }
    }
}

/// What one run of a job did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobOutcome {
    /// Purged until a batch came back short.
    Done {
        /// Rows removed.
        removed: u64,
        /// Purge calls made.
        batches: u32,
    },
    /// Another instance holds the job's lease; nothing was done.
    Busy,
    /// The stop signal came between two batches.
    Stopped {
        /// Rows removed before it.
        removed: u64,
    },
    /// The lease could not be renewed (another instance took it after it ended): the job
    /// stopped so as never to run twice at once.
    LeaseLost {
        /// Rows removed before it.
        removed: u64,
    },
}

/// One job's run.
#[derive(Debug)]
pub struct JobReport {
    /// The job's name.
    pub job: String,
    /// What it did, or the store error that ended it.
    pub outcome: StoreResult<JobOutcome>,
    /// How long it took.
    pub took: Duration,
}

/// The jobs and how they run. [`run`](Maintenance::run) runs each on its interval until
/// stopped; [`run_once`](Maintenance::run_once) runs every job once now.
pub struct Maintenance {
    jobs: Vec<Arc<Job>>,
    config: MaintenanceConfig,
}

impl Maintenance {
    /// `InvalidInput` for a bad config, an interval of 0 or two jobs with one name.
    pub fn new(jobs: Vec<Job>, config: MaintenanceConfig) -> StoreResult<Self> {
        config.validate()?;
        let mut names = std::collections::HashSet::new();
        for job in &jobs {
            if job.interval.is_zero() {
                return Err(StoreError::invalid(
                    "interval",
                    format!("job {}: 0", job.name),
                ));
            }
            if !names.insert(job.name.clone()) {
                return Err(StoreError::invalid(
                    "jobs",
                    format!("job {} given twice", job.name),
                ));
            }
        }
        Ok(Self {
            jobs: jobs.into_iter().map(Arc::new).collect(),
            config,
        })
    }

    /// The jobs, in the order given.
    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.iter().map(|j| &**j)
    }

    /// A readiness check named `maintenance` over these jobs.
    pub fn health(&self) -> MaintenanceCheck {
        MaintenanceCheck {
            jobs: self.jobs.clone(),
            failing_after: self.config.failing_after,
        }
    }

    /// Runs every job once, one after the other (an operator's "run now", and tests).
    pub async fn run_once(&self) -> Vec<JobReport> {
        let (_keep, stop) = watch::channel(false);
        let mut out = Vec::with_capacity(self.jobs.len());
        for job in &self.jobs {
            out.push(run_job(job, &self.config, &stop).await);
        }
        out
    }

    /// Runs each job on its interval (the first run at once) until `stop` turns true or its
    /// sender is dropped; a job in progress stops between two batches.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let mut tasks = tokio::task::JoinSet::new();
        for job in self.jobs.clone() {
            let (this, mut stop) = (self.clone(), stop.clone());
            tasks.spawn(async move {
                while !is_stopped(&stop) {
                    run_job(&job, &this.config, &stop).await;
                    if !pause_unless_stopped(job.interval, &mut stop).await {
                        return;
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn run_job(job: &Job, config: &MaintenanceConfig, stop: &watch::Receiver<bool>) -> JobReport {
    let started = Instant::now();
    let outcome = purge_under_lease(job, config, stop).await;
    let took = started.elapsed();
    let label = job.name.clone();
    match &outcome {
        Ok(JobOutcome::Busy) => {
            tracing::debug!(job = %job.name, "maintenance: another instance holds the job");
        }
        Ok(done) => {
            let removed = match done {
                JobOutcome::Done { removed, .. }
                | JobOutcome::Stopped { removed }
                | JobOutcome::LeaseLost { removed } => *removed,
                JobOutcome::Busy => 0,
            };
            metrics::counter!(telemetry::MAINTENANCE_REMOVED, "job" => label.clone())
                .increment(removed);
            metrics::histogram!(telemetry::MAINTENANCE_RUN_SECONDS, "job" => label.clone())
                .record(took);
            if let JobOutcome::Done { batches, .. } = done {
                job.failures_in_a_row.store(0, Ordering::Relaxed);
                *job.last_success.lock() = Some(Instant::now());
                metrics::gauge!(telemetry::MAINTENANCE_LAST_SUCCESS, "job" => label)
                    .set(telemetry::unix_seconds());
                tracing::info!(job = %job.name, removed, batches, took_ms = took.as_millis() as u64, "maintenance: job done");
            } else {
                tracing::warn!(job = %job.name, removed, outcome = ?done, "maintenance: job cut short");
            }
        }
        Err(e) => {
            let n = job.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!(telemetry::MAINTENANCE_FAILURES, "job" => label).increment(1);
            tracing::warn!(job = %job.name, failures_in_a_row = n, kind = e.kind(), error = %e, "maintenance: job failed");
        }
    }
    JobReport {
        job: job.name.clone(),
        outcome,
        took,
    }
}

async fn purge_under_lease(
    job: &Job,
    config: &MaintenanceConfig,
    stop: &watch::Receiver<bool>,
) -> StoreResult<JobOutcome> {
    let leases = &job.leases;
    if !leases
        .acquire(&job.name, &config.holder, config.lease)
        .await?
    {
        return Ok(JobOutcome::Busy);
    }
    let result = purge_batches(job, config, stop).await;
    // A release that fails leaves the lease to end by itself.
    if let Err(e) = leases.release(&job.name, &config.holder).await {
        tracing::debug!(job = %job.name, error = %e, "maintenance: lease not released");
    }
    result
}

async fn purge_batches(
    job: &Job,
    config: &MaintenanceConfig,
    stop: &watch::Receiver<bool>,
) -> StoreResult<JobOutcome> {
    let mut stop = stop.clone();
    let (mut removed, mut batches) = (0u64, 0u32);
    loop {
        let n = job.purge(config.batch).await?;
        removed += n;
        batches += 1;
        if n < u64::from(config.batch.get()) {
            return Ok(JobOutcome::Done { removed, batches });
        }
        if !pause_unless_stopped(config.pause, &mut stop).await {
            return Ok(JobOutcome::Stopped { removed });
        }
        if !job
            .leases
            .acquire(&job.name, &config.holder, config.lease)
            .await?
        {
            return Ok(JobOutcome::LeaseLost { removed });
        }
    }
}

/// Readiness of the maintenance jobs (`maintenance`): `degraded` while a job has failed
/// [`MaintenanceConfig::failing_after`] runs in a row (the details name the jobs, never the
/// error's text), else `ok`. Maintenance never makes a service unready.
pub struct MaintenanceCheck {
    jobs: Vec<Arc<Job>>,
    failing_after: u32,
}

#[async_trait]
impl HealthCheck for MaintenanceCheck {
    fn name(&self) -> &str {
        "maintenance"
    }

    async fn check(&self) -> HealthStatus {
        let failing: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.failures_in_a_row() >= self.failing_after)
            .map(|j| {
                format!(
                    "{} ({} failed runs in a row)",
                    j.name,
                    j.failures_in_a_row()
                )
            })
            .collect();
        if failing.is_empty() {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded(format!("maintenance failing: {}", failing.join(", ")))
        }
    }
}
