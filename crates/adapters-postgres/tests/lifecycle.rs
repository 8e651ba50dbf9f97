//! The stores' lifecycle against a real server: `close` ends the connections of both pools (a
//! service that shuts down leaves nothing open on the database), and calls and health checks
//! made afterwards fail. Needs `CREDO_TEST_POSTGRES_URL` (`cargo xtask services env`).

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::{HealthStatus, RateLimitPolicy, StoreError, SystemClock, TenantId};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Connections the server holds for `application_name`.
async fn connections(admin: &PgStores, application: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
        .bind(application)
        .fetch_one(admin.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_the_connections_of_both_pools() {
    let Some(url) = credo_testkit::required("CREDO_TEST_POSTGRES_URL") else {
        return;
    };
    let name = format!("credo_close_{}", std::process::id());
    // Same schema, no application name: watches, then drops the schema.
    let mut admin = PgConfig::new(&url);
    admin.schema = Some(name.clone());
    let admin = PgStores::connect(&admin, Arc::new(SystemClock))
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut config = PgConfig::new(format!("{url}{sep}application_name={name}"));
    config.schema = Some(name.clone());
    let stores = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    let limiter = stores.rate_limits();
    let policy = RateLimitPolicy::per(5, Duration::from_secs(1));
    limiter
        .check(TenantId::new(), "k", policy, 1)
        .await
        .unwrap();
    let claim = stores
        .outbox()
        .claim(1, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(claim.records.is_empty());
    assert!(
        connections(&admin, &name).await >= 2,
        "one per pool at least"
    );
    let health = stores.health(Duration::from_secs(2));
    assert_eq!(health.name(), "database");
    assert_eq!(health.check().await, HealthStatus::Ok);

    stores.close().await;
    assert!(matches!(health.check().await, HealthStatus::Failed(_)));
    let result = limiter.check(TenantId::new(), "k", policy, 1).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "after close: {result:?}"
    );
    // The server notices a closed connection a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open = connections(&admin, &name).await;
    while open > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        open = connections(&admin, &name).await;
    }
    assert_eq!(open, 0, "connections left open after close");

    admin.drop_schema().await.unwrap();
    admin.close().await;
}
