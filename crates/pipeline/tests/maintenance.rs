//! The maintenance runner over the in-memory stores: batches to completion, one instance per
//! job, a crashed holder's job taken over, a lease lost mid-job, stop between batches, and the
//! readiness check of a job that keeps failing.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_pipeline::maintenance::{Job, JobOutcome, Maintenance, MaintenanceConfig};
use credo_ports::{
    Decision, HealthCheck, HealthStatus, JobLeases, ManualClock, NonZeroU32, RateLimitPolicy,
    RateLimitStore, StoreError, StoreResult, TenantId, Timestamp,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const T0: Timestamp = Timestamp::from_secs(1_800_000_000);
const HOUR: Duration = Duration::from_secs(3600);
/// One check keeps a key busy for 20 minutes.
const SLOW: RateLimitPolicy = RateLimitPolicy {
    limit: 3,
    period: HOUR,
    burst: 3,
};

fn config(holder: &str, batch: u32) -> MaintenanceConfig {
    let mut c = MaintenanceConfig::default();
    c.batch = NonZeroU32::new(batch).unwrap();
    c.pause = Duration::from_millis(1);
    c.holder = holder.into();
    c
}

/// Stores with `n` rate-limit keys that are idle an hour later (the clock is moved there).
async fn idle_keys(n: usize) -> (Arc<ManualClock>, InMemoryStores) {
    let clock = Arc::new(ManualClock::new(T0));
    let stores = InMemoryStores::new(clock.clone());
    let rl = stores.rate_limits();
    for i in 0..n {
        rl.check(TenantId::new(), &format!("ip:{i}"), SLOW, 1)
            .await
            .unwrap();
    }
    clock.advance(HOUR);
    (clock, stores)
}

fn rate_limit_job(stores: &InMemoryStores) -> Job {
    Job::rate_limits(stores.rate_limits(), stores.leases(), HOUR)
}

#[tokio::test]
async fn a_job_purges_in_batches_until_nothing_is_left() {
    let (_clock, stores) = idle_keys(25).await;
    let m = Maintenance::new(vec![rate_limit_job(&stores)], config("a", 10)).unwrap();
    let reports = m.run_once().await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].job, "rate-limits");
    assert_eq!(
        reports[0].outcome.as_ref().unwrap(),
        &JobOutcome::Done {
            removed: 25,
            batches: 3
        }
    );
    assert_eq!(stores.footprint().rate_limit_keys, 0);
    assert_eq!(m.jobs().next().unwrap().failures_in_a_row(), 0);
    assert!(m.jobs().next().unwrap().since_last_success().is_some());
    // The lease was given back: another instance can run the job at once.
    assert!(
        stores
            .leases()
            .acquire("rate-limits", "b", Duration::from_secs(1))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_instance_skips_a_job_another_holds_and_takes_it_once_that_lease_ends() {
    let (clock, stores) = idle_keys(5).await;
    // An instance took the job, then crashed: it never renews nor releases.
    assert!(
        stores
            .leases()
            .acquire("rate-limits", "crashed", Duration::from_secs(60))
            .await
            .unwrap()
    );
    let m = Maintenance::new(vec![rate_limit_job(&stores)], config("b", 10)).unwrap();
    assert_eq!(
        m.run_once().await[0].outcome.as_ref().unwrap(),
        &JobOutcome::Busy
    );
    assert_eq!(stores.footprint().rate_limit_keys, 5);
    assert_eq!(m.jobs().next().unwrap().failures_in_a_row(), 0);
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        m.run_once().await[0].outcome.as_ref().unwrap(),
        &JobOutcome::Done {
            removed: 5,
            batches: 1
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_at_once_run_a_job_once() {
    let (_clock, stores) = idle_keys(200).await;
    let a = Maintenance::new(vec![rate_limit_job(&stores)], config("a", 10)).unwrap();
    let b = Maintenance::new(vec![rate_limit_job(&stores)], config("b", 10)).unwrap();
    let (ra, rb) = tokio::join!(a.run_once(), b.run_once());
    let mut outcomes = [
        ra[0].outcome.as_ref().unwrap().clone(),
        rb[0].outcome.as_ref().unwrap().clone(),
    ];
    outcomes.sort_by_key(|o| matches!(o, JobOutcome::Busy));
    // One ran to the end while the other found the lease taken (or, if the first had
    // already finished, found nothing left).
    match &outcomes[..] {
        [
            JobOutcome::Done {
                removed: 200,
                batches: 21,
            },
            JobOutcome::Busy
            | JobOutcome::Done {
                removed: 0,
                batches: 1,
            },
        ] => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(stores.footprint().rate_limit_keys, 0);
}

/// A rate limiter whose purges fail while `failing` is set, and which (once) lets another
/// holder take the job's lease after the first batch, as an instance whose lease ended
/// during a long pause would see.
struct Faulty {
    inner: Arc<dyn RateLimitStore>,
    failing: AtomicU32,
    steal_after_first: Option<(Arc<dyn JobLeases>, Arc<ManualClock>)>,
    calls: AtomicU32,
}

#[async_trait]
impl RateLimitStore for Faulty {
    async fn check(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
        cost: u32,
    ) -> StoreResult<Decision> {
        self.inner.check(tenant, key, policy, cost).await
    }
    async fn peek(
        &self,
        tenant: TenantId,
        key: &str,
        policy: RateLimitPolicy,
    ) -> StoreResult<Decision> {
        self.inner.peek(tenant, key, policy).await
    }
    async fn reset(&self, tenant: TenantId, key: &str) -> StoreResult<()> {
        self.inner.reset(tenant, key).await
    }
    async fn purge_idle(&self, limit: NonZeroU32) -> StoreResult<u64> {
        if self.failing.load(Ordering::Relaxed) == 1 {
            return Err(StoreError::Unavailable(
                "connection to db.internal:5432 refused for user credo".into(),
            ));
        }
        let n = self.inner.purge_idle(limit).await?;
        if self.calls.fetch_add(1, Ordering::Relaxed) == 0
            && let Some((leases, clock)) = &self.steal_after_first
        {
            clock.advance(Duration::from_secs(120));
            assert!(
                leases
                    .acquire("rate-limits", "other", Duration::from_secs(60))
                    .await?
            );
        }
        Ok(n)
    }
}

#[tokio::test]
async fn a_job_whose_lease_was_taken_meanwhile_stops() {
    let (clock, stores) = idle_keys(30).await;
    let faulty = Arc::new(Faulty {
        inner: stores.rate_limits(),
        failing: AtomicU32::new(0),
        steal_after_first: Some((stores.leases(), clock.clone())),
        calls: AtomicU32::new(0),
    });
    let job = Job::rate_limits(faulty, stores.leases(), HOUR);
    let m = Maintenance::new(vec![job], config("a", 10)).unwrap();
    assert_eq!(
        m.run_once().await[0].outcome.as_ref().unwrap(),
        &JobOutcome::LeaseLost { removed: 10 }
    );
    // The lease stays with its new holder: a's release did not end it.
    assert!(
        !stores
            .leases()
            .acquire("rate-limits", "a", Duration::from_secs(1))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_job_that_keeps_failing_degrades_readiness_without_the_errors_text() {
    let (_clock, stores) = idle_keys(3).await;
    let faulty = Arc::new(Faulty {
        inner: stores.rate_limits(),
        failing: AtomicU32::new(1),
        steal_after_first: None,
        calls: AtomicU32::new(0),
    });
    let job = Job::rate_limits(faulty.clone(), stores.leases(), HOUR);
    let m = Maintenance::new(vec![job], config("a", 10)).unwrap();
    let check = m.health();
    assert_eq!(check.name(), "maintenance");
    for run in 1..=3 {
        assert_eq!(check.check().await, HealthStatus::Ok, "before run {run}");
        let report = m.run_once().await;
        assert_eq!(
            report[0].outcome.as_ref().unwrap_err().kind(),
            "Unavailable"
        );
    }
    match check.check().await {
        HealthStatus::Degraded(details) => {
            assert_eq!(
                details,
                "maintenance failing: rate-limits (3 failed runs in a row)"
            );
        }
        other => panic!("{other:?}"),
    }
    faulty.failing.store(0, Ordering::Relaxed);
    m.run_once().await;
    assert_eq!(check.check().await, HealthStatus::Ok);
    assert_eq!(stores.footprint().rate_limit_keys, 0);
}

/// Waits (in paused time) until the stores hold `keys` rate-limit keys, at most `within`.
async fn keys_become(stores: &InMemoryStores, keys: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while stores.footprint().rate_limit_keys != keys {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} keys, not {keys}",
            stores.footprint().rate_limit_keys
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn run_repeats_each_job_on_its_interval_and_stops_between_batches() {
    let (clock, stores) = idle_keys(4).await;
    let mut c = config("a", 2);
    c.pause = Duration::from_secs(5);
    let m = Maintenance::new(vec![rate_limit_job(&stores)], c).unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Arc::new(m).run(stopped));
    // The first run starts at once: two full batches, then (after the pause) a short one.
    keys_become(&stores, 0, Duration::from_secs(6)).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    // Keys that go idle later are purged by the next run, an interval later, not before.
    let rl = stores.rate_limits();
    for i in 0..5 {
        rl.check(TenantId::new(), &format!("later:{i}"), SLOW, 1)
            .await
            .unwrap();
    }
    clock.advance(HOUR);
    tokio::time::sleep(HOUR - Duration::from_secs(60)).await;
    assert_eq!(
        stores.footprint().rate_limit_keys,
        5,
        "purged before the interval"
    );
    // Its first batch, then a stop during the pause that follows: the run ends there.
    keys_become(&stores, 3, Duration::from_secs(120)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("stopped within its pause")
        .unwrap();
    assert_eq!(
        stores.footprint().rate_limit_keys,
        3,
        "no batch after the stop"
    );
}

#[test]
fn bad_settings_are_refused_naming_the_field() {
    let stores = InMemoryStores::new(Arc::new(ManualClock::new(T0)));
    let field = |c: MaintenanceConfig, jobs: Vec<Job>| match Maintenance::new(jobs, c) {
        Err(StoreError::InvalidInput { field, .. }) => field,
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("accepted"),
    };
    let mut c = config("a", 1);
    c.lease = Duration::ZERO;
    assert_eq!(field(c, vec![]), "lease");
    let mut c = config("a", 1);
    c.pause = c.lease;
    assert_eq!(field(c, vec![]), "pause");
    assert_eq!(field(config("", 1), vec![]), "holder");
    let mut c = config("a", 1);
    c.failing_after = 0;
    assert_eq!(field(c, vec![]), "failing_after");
    let zero = Job::sessions(stores.sessions(), stores.leases(), Duration::ZERO);
    assert_eq!(field(config("a", 1), vec![zero]), "interval");
    let twice = vec![rate_limit_job(&stores), rate_limit_job(&stores)];
    assert_eq!(field(config("a", 1), twice), "jobs");
}

#[test]
fn runs_report_removed_rows_run_time_last_success_and_failures_per_job() {
    use credo_ports::telemetry;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                let (_clock, stores) = idle_keys(7).await;
                let faulty = Arc::new(Faulty {
                    inner: stores.rate_limits(),
                    failing: AtomicU32::new(1),
                    steal_after_first: None,
                    calls: AtomicU32::new(0),
                });
                let job = Job::rate_limits(faulty.clone(), stores.leases(), HOUR);
                let m = Maintenance::new(vec![job], config("a", 5)).unwrap();
                m.run_once().await;
                faulty.failing.store(0, Ordering::Relaxed);
                m.run_once().await;
            });
    });
    let mut seen = std::collections::HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<_> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        assert_eq!(labels, ["job=rate-limits"], "{}", key.key().name());
        seen.insert(key.key().name().to_string(), value);
    }
    assert_eq!(seen[telemetry::MAINTENANCE_REMOVED], DebugValue::Counter(7));
    assert_eq!(
        seen[telemetry::MAINTENANCE_FAILURES],
        DebugValue::Counter(1)
    );
    match &seen[telemetry::MAINTENANCE_RUN_SECONDS] {
        DebugValue::Histogram(runs) => assert_eq!(runs.len(), 1),
        other => panic!("{other:?}"),
    }
    match &seen[telemetry::MAINTENANCE_LAST_SUCCESS] {
        DebugValue::Gauge(at) => assert!(at.into_inner() > 1.7e9, "{at:?}"),
        other => panic!("{other:?}"),
    }
}
