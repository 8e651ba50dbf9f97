//! A password rotated without a restart: the URL comes from a file (a container secret,
//! `PgConfig::from_url_file`); once the password changes in the database and the file, the
//! connections the pool opens from then on use the new one. A pool given the URL inline keeps
//! the old password and fails, which shows that the test can fail. Needs
//! `CREDO_TEST_POSTGRES_URL` (a role that may create roles).

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::{NewUser, StoreError, SystemClock, TenantId};
use std::sync::Arc;
use std::time::Duration;

async fn terminate(owner: &PgStores, role: &str) {
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(role)
        .execute(owner.pool())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_reaches_new_connections_without_a_restart() {
    let Some(url) = credo_testkit::required("CREDO_TEST_POSTGRES_URL") else {
        return;
    };
    let schema = credo_testkit::unique_name("credo_rotation");
    let role = credo_testkit::unique_name("credo_rot");
    let mut owner_config = PgConfig::new(&url);
    owner_config.schema = Some(schema.clone());
    let owner = PgStores::connect(&owner_config, Arc::new(SystemClock))
        .await
        .unwrap();
    owner.migrate().await.unwrap();
    // Odd characters too: the file holds the URL as written, percent-encoded.
    let (first, second) = ("first pass/1", "second:pass@2");
    owner.create_app_login(&role, first).await.unwrap();
    let url_with = |p: &str| credo_testkit::url_as(&url, &role, p);

    let dir = std::env::temp_dir().join(credo_testkit::unique_name("credo_secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("postgres-url");
    std::fs::write(&file, format!("{}\n", url_with(first))).unwrap();
    let mut config = PgConfig::from_url_file(&file).unwrap();
    config.schema = Some(schema.clone());
    config.url_refresh = Duration::from_millis(100);
    config.acquire_timeout = Duration::from_secs(2);
    let rotating = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let mut inline = PgConfig::new(url_with(first));
    inline.schema = Some(schema.clone());
    inline.acquire_timeout = Duration::from_secs(2);
    let fixed = PgStores::connect(&inline, Arc::new(SystemClock))
        .await
        .unwrap();
    let tenant = TenantId::new();
    let create = |stores: &PgStores, n: u32| {
        let users = stores.users();
        async move {
            users
                .create(NewUser::new(tenant, &format!("u{n}@example.com"), "A", "B"))
                .await
        }
    };
    create(&rotating, 1).await.unwrap();
    create(&fixed, 2).await.unwrap();

    // Rotate: the database first, then the secret (written whole, as a platform does).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {role} PASSWORD '{second}'"
    )))
    .execute(owner.pool())
    .await
    .unwrap();
    credo_testkit::replace_file(&file, url_with(second));
    // Every open connection goes, so the next call must open a new one.
    terminate(&owner, &role).await;
    let mut n = 10;
    let took = credo_testkit::succeeds_within(
        Duration::from_secs(10),
        "the rotated password never reached the pool",
        || {
            n += 1;
            create(&rotating, n)
        },
    )
    .await;
    eprintln!("new connections used the rotated password {took:?} after the file changed");
    // The inline URL still holds the old password: its new connections are refused, and the
    // error shows neither password.
    terminate(&owner, &role).await;
    let err = create(&fixed, 99).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let text = err.to_string();
    assert!(
        !text.contains(first)
            && !text.contains(second)
            && !text.contains(&credo_testkit::percent_encode_all(first)),
        "{text}"
    );

    rotating.close().await;
    fixed.close().await;
    owner.drop_schema().await.unwrap();
    owner.drop_login(&role).await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
