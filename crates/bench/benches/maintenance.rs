//! Foreground latency while maintenance purges (PostgreSQL). One process, one database, same
//! run: the p99 of session reads and touches (the purged table) with no purge running, then
//! while the `sessions` job removes 1,000,000 expired sessions with the default batch (500)
//! and pause (400 ms), then with no purge again. Target: p99 during the purge at most 1.10×
//! the p99 without. Needs `CREDO_TEST_POSTGRES_URL`; `CREDO_BENCH_QUICK=1` purges 200,000. A
//! smoke run (`credo_bench::smoke`: `cargo test`, `cargo xtask test`) purges 1,000 with 50 live
//! sessions and short quiet phases, and writes no report: its figures mean nothing.
//!
//! Not a criterion group: criterion keeps per-sample means, and the target is on single
//! calls' p99. Prints its own table and writes `target/bench/extra/maintenance.json`, which
//! `cargo xtask bench` adds to its report.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_pipeline::maintenance::{Job, JobOutcome, Maintenance, MaintenanceConfig};
use credo_ports::{
    Device, NewSession, SessionId, SessionStatus, SessionStore, SystemClock, TenantId, UserId,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Concurrent foreground callers (a service's handlers).
const CALLERS: usize = 4;
const TARGET: f64 = 1.10;

struct Phase {
    latencies: Vec<Duration>,
}

impl Phase {
    fn pct(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[i]
    }
}

/// Runs the callers until `done` is set (or for `at_least`), each reading and touching live
/// sessions in turn; returns every call's latency, sorted.
async fn foreground(
    sessions: Arc<dyn SessionStore>,
    live: Arc<Vec<(TenantId, SessionId)>>,
    done: Arc<AtomicBool>,
    at_least: Duration,
) -> Phase {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CALLERS {
        let (sessions, live, done) = (sessions.clone(), live.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = c;
            while !(done.load(Ordering::Relaxed) && started.elapsed() >= at_least) {
                let (tenant, id) = live[i % live.len()];
                let t = Instant::now();
                if i % 2 == 0 {
                    sessions.get(tenant, id).await.unwrap();
                } else {
                    sessions.touch(tenant, id).await.unwrap();
                }
                out.push(t.elapsed());
                i += CALLERS;
            }
            out
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    latencies.sort();
    Phase { latencies }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    if !credo_bench::selected("maintenance/foreground_p99_while_purging") {
        return;
    }
    let Some(url) = credo_testkit::required("CREDO_TEST_POSTGRES_URL") else {
        return;
    };
    let (quick, smoke) = (credo_bench::quick(), credo_bench::smoke());
    let expired: i64 = env_u64("CREDO_BENCH_MAINTENANCE_ROWS")
        .map(|n| n as i64)
        .unwrap_or(match (smoke, quick) {
            (true, _) => 1_000,
            (_, true) => 200_000,
            _ => 1_000_000,
        });
    // Created one by one: 2,000 take seconds in a debug build.
    let live_sessions = if smoke { 50 } else { 2_000 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut c = PgConfig::new(url);
        c.schema = Some(format!("credo_bench_maint_{}", std::process::id()));
        // Seeding a million rows is one long statement.
        c.statement_timeout = Duration::from_secs(300);
        let pg = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
        pg.drop_schema().await.unwrap();
        pg.migrate().await.unwrap();
        let sessions = pg.sessions();
        let tenant = TenantId::new();
        let mut live = Vec::with_capacity(live_sessions);
        for _ in 0..live_sessions {
            let s = sessions
                .create(NewSession {
                    id: SessionId::new(),
                    tenant_id: tenant,
                    user_id: UserId::new(),
                    client_id: "web".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::Active,
                    device: Device::default(),
                    expires_at: credo_ports::Clock::now(&SystemClock)
                        .saturating_add(Duration::from_secs(86_400)),
                })
                .await
                .unwrap();
            live.push((tenant, s.id));
        }
        let live = Arc::new(live);
        let seeding = Instant::now();
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, user_id, client_id, scopes, status, created_at,
                                   expires_at, last_seen_at, version)
             SELECT gen_random_uuid(), $1, gen_random_uuid(), 'web', '{openid}', 'active',
                    now() - interval '2 days', now() - interval '1 day' + g * interval '1 microsecond',
                    now() - interval '2 days', 1
             FROM generate_series(1, $2) AS g",
        )
        .bind(tenant.0)
        .bind(expired)
        .execute(pg.pool())
        .await
        .unwrap();
        sqlx::query("VACUUM ANALYZE sessions")
            .execute(pg.pool())
            .await
            .unwrap();
        eprintln!(
            "seeded {expired} expired sessions in {:.1} s",
            seeding.elapsed().as_secs_f64()
        );

        let quiet = match (smoke, quick) {
            (true, _) => Duration::from_millis(300),
            (_, true) => Duration::from_secs(10),
            _ => Duration::from_secs(20),
        };
        let before = foreground(
            sessions.clone(),
            live.clone(),
            Arc::new(AtomicBool::new(true)),
            quiet,
        )
        .await;

        let job = Job::sessions(sessions.clone(), pg.leases(), Duration::from_secs(3600));
        // The defaults, unless the environment says otherwise (to explore other settings).
        let mut config = MaintenanceConfig::default();
        if let Some(batch) = env_u64("CREDO_BENCH_MAINTENANCE_BATCH") {
            config.batch = std::num::NonZeroU32::new(batch as u32).expect("a positive batch");
        }
        if let Some(pause) = env_u64("CREDO_BENCH_MAINTENANCE_PAUSE_MS") {
            config.pause = Duration::from_millis(pause);
        }
        let (batch, pause) = (config.batch, config.pause);
        let maintenance = Maintenance::new(vec![job], config).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let purge_done = done.clone();
        let purging = tokio::spawn(async move {
            let started = Instant::now();
            let report = maintenance.run_once().await.remove(0);
            purge_done.store(true, Ordering::Relaxed);
            (report, started.elapsed())
        });
        let during = foreground(sessions.clone(), live.clone(), done, Duration::ZERO).await;
        let (report, took) = purging.await.unwrap();
        let removed = match report.outcome {
            Ok(JobOutcome::Done { removed, .. }) => removed,
            other => panic!("purge: {other:?}"),
        };
        assert_eq!(removed, expired as u64);

        let after = foreground(sessions, live, Arc::new(AtomicBool::new(true)), quiet).await;
        pg.drop_schema().await.unwrap();

        let mut quiet_calls = before.latencies.clone();
        quiet_calls.extend(&after.latencies);
        quiet_calls.sort();
        let without = Phase {
            latencies: quiet_calls,
        };
        let ratio = during.pct(0.99).as_secs_f64() / without.pct(0.99).as_secs_f64();
        let status = if ratio <= TARGET { "met" } else { "MISSED" };
        println!(
            "\nmaintenance: {removed} expired sessions purged in {:.1} s ({:.0} rows/s; batch {batch}, pause {} ms)",
            took.as_secs_f64(),
            removed as f64 / took.as_secs_f64(),
            pause.as_millis()
        );
        println!(
            "| foreground (get + touch, {CALLERS} callers) | calls | p50 | p99 | p99 ratio | target |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, phase) in [
            ("no purge (before)", &before),
            ("no purge (after)", &after),
            ("no purge (both)", &without),
        ] {
            println!(
                "| {name} | {} | {} | {} | | |",
                phase.latencies.len(),
                ms(phase.pct(0.5)),
                ms(phase.pct(0.99))
            );
        }
        println!(
            "| while purging | {} | {} | {} | {ratio:.2}× | ≤ {TARGET:.2}× {status} |",
            during.latencies.len(),
            ms(during.pct(0.5)),
            ms(during.pct(0.99))
        );
        if smoke {
            // A smoke run's figures would overwrite a real run's in the report.
            return;
        }
        let extra = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/extra");
        std::fs::create_dir_all(&extra).unwrap();
        let row = serde_json::json!({
            "operation": "maintenance/foreground_p99_while_purging",
            "purged": removed,
            "batch": batch.get(),
            "pause_ms": pause.as_millis() as u64,
            "purge_seconds": took.as_secs_f64(),
            "quiet_p50_ns": without.pct(0.5).as_nanos() as f64,
            "quiet_p99_ns": without.pct(0.99).as_nanos() as f64,
            "purging_p50_ns": during.pct(0.5).as_nanos() as f64,
            "purging_p99_ns": during.pct(0.99).as_nanos() as f64,
            "p99_ratio": ratio,
            "target": TARGET,
            "met": ratio <= TARGET,
        });
        std::fs::write(
            extra.join("maintenance.json"),
            serde_json::to_string_pretty(&row).unwrap(),
        )
        .unwrap();
    });
}
