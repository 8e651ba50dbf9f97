//! PostgreSQL stopped mid-run: operations fail with `Unavailable` within the configured
//! timeouts (no panic, no hang), and once the server is back the same store objects work
//! again without being rebuilt. Runs against a private cluster this test starts and stops, so
//! it never disturbs the shared test server.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::{HealthStatus, NewUser, StoreError, SystemClock, TenantId};
use credo_testkit::PrivatePostgres;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_postgres_mid_run_yields_unavailable_then_recovers() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let mut config = PgConfig::new(pg.url());
    config.acquire_timeout = Duration::from_secs(2);
    config.statement_timeout = Duration::from_secs(2);
    config.max_connections = 4;
    let stores = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    let users = stores.users();
    let tenant = TenantId::new();

    // Four workers create and read users in a loop while the server goes away and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let (oks, unavailable, slowest_ms) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut workers = Vec::new();
    for w in 0..4 {
        let (users, stop, oks, unavailable, slowest) = (
            users.clone(),
            stop.clone(),
            oks.clone(),
            unavailable.clone(),
            slowest_ms.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                let r = users
                    .create(NewUser::new(
                        tenant,
                        &format!("w{w}-{i}@example.com"),
                        "F",
                        "L",
                    ))
                    .await;
                slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                match r {
                    Ok(_) => oks.fetch_add(1, Ordering::Relaxed),
                    Err(StoreError::Unavailable(_)) => unavailable.fetch_add(1, Ordering::Relaxed),
                    Err(e) => panic!("expected Ok or Unavailable, got {e:?}"),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = oks.load(Ordering::Relaxed);
    assert!(before > 0, "no successful writes before the stop");

    tokio::task::block_in_place(|| pg.stop());
    let stopped_at = Instant::now();

    // While it is down, every call fails fast and retryably.
    let t = Instant::now();
    let down = users.get(tenant, credo_ports::UserId::new()).await;
    let first_error = t.elapsed();
    assert!(
        matches!(&down, Err(StoreError::Unavailable(_))),
        "while down: {down:?}"
    );
    assert!(down.unwrap_err().is_retryable());
    assert!(
        first_error < Duration::from_secs(6),
        "an operation hung {first_error:?} with a 2 s acquire timeout"
    );
    let health = stores.health(Duration::from_secs(1));
    let t = Instant::now();
    let status = health.check().await;
    assert!(
        matches!(status, HealthStatus::Failed(_)),
        "health while down: {status:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "health check took {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = unavailable.load(Ordering::Relaxed);
    assert!(
        during > 0,
        "workers saw no Unavailable while the server was down"
    );

    tokio::task::block_in_place(|| pg.resume());
    let restarted = Instant::now();

    // The same store object works again: no rebuild, no reconnect call.
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(10) {
        if users.count(tenant).await.is_ok() {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = recovered.expect("store did not recover within 10 s of the restart");
    assert_eq!(
        health.check().await,
        HealthStatus::Ok,
        "health after the restart"
    );
    let after_restart = oks.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a worker panicked");
    }
    let total_ok = oks.load(Ordering::Relaxed);
    assert!(
        total_ok > after_restart,
        "workers did not resume writing after the restart"
    );
    let count = users.count(tenant).await.unwrap();
    // A commit whose acknowledgement was lost in the crash may be stored too: never fewer.
    let failed = unavailable.load(Ordering::Relaxed);
    assert!(
        (total_ok..=total_ok + failed).contains(&count),
        "{count} stored for {total_ok} acknowledged and {failed} failed creates"
    );
    println!(
        "postgres fault: down for {:.1?}; first error after {first_error:?}; {during} Unavailable while down; \
         slowest call {} ms (acquire/statement timeout 2 s); recovered {recovered:?} after restart; \
         {total_ok} creates acknowledged and {count} stored",
        restarted - stopped_at,
        slowest_ms.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn tls_required_against_a_plain_server_is_unavailable_not_a_panic() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let mut config = PgConfig::new(format!("{}?sslmode=require", pg.url()));
    config.acquire_timeout = Duration::from_secs(2);
    let stores = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let r = stores.users().count(TenantId::new()).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let mut bad = PgConfig::new(
        "postgres://u:pw@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    );
    bad.acquire_timeout = Duration::from_secs(1);
    match PgStores::connect(&bad, Arc::new(SystemClock)).await {
        Ok(s) => assert!(matches!(
            s.users().count(TenantId::new()).await,
            Err(StoreError::Unavailable(_))
        )),
        Err(e) => assert_eq!(e.kind(), "InvalidInput", "{e}"),
    }
    let shown = format!("{bad:?}");
    assert!(!shown.contains(":pw@"), "{shown}");
}
