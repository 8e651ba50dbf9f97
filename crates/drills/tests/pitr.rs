//! Point-in-time recovery drill (seed PRD-020 FR-3; the SLO/DR plan's RPO): a workload
//! through the ports on a PostgreSQL cluster archiving WAL into an encrypted pgBackRest
//! repository; a full backup; more writes; a differential backup; more writes; a recorded
//! target time; more writes; the cluster destroyed; a restore to the target. The state read
//! back through the ports equals the state at the target: nothing committed before it is
//! lost, nothing committed after it is there.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_drills::{PgBackRest, Snapshot, Workload};
use credo_ports::{ManualClock, Timestamp, UserId};
use credo_testkit::PrivatePostgres;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn connect(pg: &PrivatePostgres, clock: Arc<ManualClock>) -> PgStores {
    PgStores::connect(&PgConfig::new(pg.url()), clock)
        .await
        .unwrap()
}

async fn scalar(stores: &PgStores, sql: &'static str) -> String {
    sqlx::query_scalar::<_, String>(sql)
        .fetch_one(stores.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Required in CI (`CREDO_TEST_REQUIRE=all`); `cargo xtask drill` installs it.
fn pgbackrest_installed() -> bool {
    if credo_testkit::system::which("pgbackrest").is_some() {
        return true;
    }
    credo_testkit::skip::<()>("pgbackrest is not installed (cargo xtask drill installs it)");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_recovery_restores_the_state_at_the_target() {
    if !pgbackrest_installed() {
        return;
    }
    let (backrest, settings) = PgBackRest::prepare();
    let settings: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let Some(pg) = PrivatePostgres::start_with(&settings) else {
        return;
    };
    backrest.attach(&pg);
    // The stores' clock stands still, so sessions and rate limits read back the same after
    // the restore; the target is on the database's clock.
    let now = Timestamp::from_secs(1_800_000_000);
    let clock = Arc::new(ManualClock::new(now));
    let stores = connect(&pg, clock.clone()).await;
    stores.migrate().await.unwrap();

    let mut workload = Workload::new(3);
    let mut before_target: Vec<UserId> = workload.write(&stores, 300, now).await.unwrap();
    let full = backrest.run(&["--type=full", "backup"]);
    before_target.extend(workload.write(&stores, 100, now).await.unwrap());
    let diff = backrest.run(&["--type=diff", "backup"]);
    before_target.extend(workload.write(&stores, 100, now).await.unwrap());
    // Every write above has returned, so it is committed before this instant.
    let target = scalar(
        &stores,
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    )
    .await;
    let at_target = Snapshot::read(&stores, &workload).await.unwrap();
    let workload_at_target = workload.clone();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after_target: Vec<UserId> = workload.write(&stores, 100, now).await.unwrap();
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(stores.pool())
        .await
        .unwrap();
    // `check` switches to a new WAL segment and waits until it is archived: the writes after
    // the target are in the repository, so recovery can see where the target ends.
    backrest.run(&["check"]);
    let verify = backrest.run(&["verify"]);
    let repository_bytes = backrest.repository_bytes();
    stores.close().await;

    // The disaster: the server gone, its data directory with it.
    pg.stop();
    pg.wipe_data();
    let started = Instant::now();
    let restore = backrest.run(&[
        "--type=time",
        &format!("--target={target}"),
        "--target-action=promote",
        "restore",
    ]);
    pg.resume();
    let stores = connect(&pg, clock.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while scalar(&stores, "SELECT pg_is_in_recovery()::text").await != "false" {
        assert!(Instant::now() < deadline, "still in recovery after 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = started.elapsed();

    let restored = Snapshot::read(&stores, &workload_at_target).await.unwrap();
    let present: HashSet<UserId> = restored.users.iter().map(|u| u.id).collect();
    let lost = before_target
        .iter()
        .filter(|u| !present.contains(u))
        .count();
    let resurrected = after_target.iter().filter(|u| present.contains(u)).count();
    let differences = restored.differences(&at_target);
    // The restored cluster takes writes again (promoted, not left read-only).
    let mut more = workload_at_target.clone();
    more.write(&stores, 1, now).await.unwrap();
    stores.close().await;

    let rows = restored.rows();
    let secs = recovered.as_secs_f64();
    let bytes_per_sec = database_bytes as f64 / secs;
    let hundred_gb = 100.0 * 1e9 / bytes_per_sec;
    println!("PITR drill ({}):", backrest.version());
    println!(
        "  workload: {} users before the target (300 in the full backup, 100 in the differential, 100 in WAL only), {} after",
        before_target.len(),
        after_target.len()
    );
    println!(
        "  backups: full {full:.2?}, differential {diff:.2?}, verify {verify:.2?}; repository {:.1} MB (compressed, AES-256); database {:.1} MB",
        repository_bytes as f64 / 1e6,
        database_bytes as f64 / 1e6
    );
    println!(
        "  restore to {target}: files {restore:.2?}, to promoted {recovered:.2?}; {rows} rows read back ({:.0} rows/s)",
        rows as f64 / secs
    );
    println!(
        "  committed before the target and lost: {lost}; committed after it and present: {resurrected}"
    );
    println!(
        "  RTO extrapolated to 100 GB at this rate ({:.1} MB/s, one process): {:.1} h; at this \
         size fixed costs dominate, so this is pessimistic for the copy and optimistic for WAL \
         replay, which grows with the writes since the last backup",
        bytes_per_sec / 1e6,
        hundred_gb / 3600.0
    );
    assert_eq!(
        lost, 0,
        "transactions committed before the target were lost"
    );
    assert_eq!(
        resurrected, 0,
        "transactions committed after the target came back"
    );
    assert!(
        differences.is_empty(),
        "restored state differs: {differences:#?}"
    );
    assert!(
        backrest.info().contains("\"type\":\"diff\""),
        "{}",
        backrest.info()
    );
}
