//! A good guest in a host's database: our migrations are recorded in a table of our own
//! (`_credo_storage_migrations`, configurable) and our tables can live in a schema of our own,
//! so a host running its own sqlx migrations (versions 1 and 2 too, a `users` table too) never
//! clashes with us, in either order; and an existing deployment whose versions were recorded in
//! sqlx's default `_sqlx_migrations` upgrades without re-running anything. Each test uses a
//! fresh database. Needs `CREDO_TEST_POSTGRES_URL` (`cargo xtask services env`).

use credo_adapters_postgres::{
    DEFAULT_MIGRATIONS_TABLE, LEGACY_MIGRATIONS_TABLE, MIGRATOR, PgConfig, PgStores,
};
use credo_ports::{NewUser, SystemClock, TenantId};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPool;
use sqlx::{Row, SqlSafeStr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many versions our migrator applies (each has an up and a down script).
fn ours_count() -> usize {
    MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count()
}

/// A database of its own, dropped at the end: `(url of it, admin pool)`.
struct FreshDb {
    admin: PgPool,
    name: String,
    url: String,
}

impl FreshDb {
    async fn new() -> Option<Self> {
        static N: AtomicU32 = AtomicU32::new(0);
        let base = credo_testkit::required("CREDO_TEST_POSTGRES_URL")?;
        let admin = PgPool::connect(&base).await.unwrap();
        let name = format!(
            "credo_mig_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let (head, _) = base.rsplit_once('/').unwrap();
        let url = format!("{head}/{name}");
        Some(Self { admin, name, url })
    }

    async fn drop(self) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// A host service's own migrations: versions 1 and 2, like ours, and a `users` table.
fn host_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "host users".into(),
            MigrationType::Simple,
            "CREATE TABLE users (id BIGINT PRIMARY KEY, login TEXT NOT NULL)".into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "host orders".into(),
            MigrationType::Simple,
            "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id BIGINT REFERENCES users)"
                .into_sql_str(),
            false,
        ),
    ])
}

async fn ours(url: &str, schema: Option<&str>, table: Option<&str>) -> PgStores {
    let mut config = PgConfig::new(url);
    config.schema = schema.map(str::to_string);
    if let Some(t) = table {
        config.migrations_table = t.to_string();
    }
    PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap()
}

/// `(version, checksum, installed_on)` of a migrations table, by version.
async fn recorded(pool: &PgPool, table: &str) -> Vec<(i64, Vec<u8>, String)> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT version, checksum, installed_on::text AS at FROM {table} ORDER BY version"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get("version"), r.get("checksum"), r.get("at")))
    .collect()
}

async fn both_keep_working(db: &FreshDb, host: &PgPool, stores: &PgStores) {
    // Run again: nothing pending on either side, nothing unknown to either.
    host_migrator().run(host).await.unwrap();
    stores.migrate().await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO users (id, login) VALUES (1, 'host'); INSERT INTO orders VALUES (1, 1)",
    )
    .execute(host)
    .await
    .unwrap();
    let tenant = TenantId::new();
    let user = stores
        .users()
        .create(NewUser::new(tenant, "ada@example.com", "Ada", "L"))
        .await
        .unwrap();
    assert_eq!(
        stores
            .users()
            .get(tenant, user.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        user.id
    );
    let hosts: i64 = sqlx::query_scalar("SELECT count(*) FROM public.users")
        .fetch_one(host)
        .await
        .unwrap();
    assert_eq!(hosts, 1, "{}", db.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosts_sqlx_migrations_and_ours_never_clash_in_either_order() {
    for host_first in [true, false] {
        let Some(db) = FreshDb::new().await else {
            return;
        };
        let host = PgPool::connect(&db.url).await.unwrap();
        // Not the role's name: `"$user"` heads the host's search_path, so a schema named like
        // the role would take the host's unqualified names (see docs/configuration.md).
        let stores = ours(&db.url, Some("credo_storage"), None).await;
        if host_first {
            host_migrator().run(&host).await.unwrap();
            stores.migrate().await.unwrap();
        } else {
            stores.migrate().await.unwrap();
            host_migrator().run(&host).await.unwrap();
        }
        both_keep_working(&db, &host, &stores).await;
        // Each side's table holds its own versions only.
        let host_rows = recorded(&host, "public._sqlx_migrations").await;
        assert_eq!(host_rows.len(), 2);
        assert!(host_rows.iter().all(|(v, c, _)| {
            host_migrator()
                .iter()
                .any(|m| m.version == *v && *m.checksum == **c)
        }));
        let our_rows = recorded(&host, &format!("credo_storage.{DEFAULT_MIGRATIONS_TABLE}")).await;
        assert_eq!(our_rows.len(), ours_count());
        assert!(our_rows.iter().all(|(v, c, _)| {
            MIGRATOR
                .iter()
                .any(|m| m.version == *v && *m.checksum == **c)
        }));
        stores.close().await;
        host.close().await;
        db.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_schema_the_migrations_tables_do_not_clash_either() {
    let Some(db) = FreshDb::new().await else {
        return;
    };
    let host = PgPool::connect(&db.url).await.unwrap();
    // The host's tables under other names, both sides in `public`.
    let renamed = Migrator::with_migrations(vec![Migration::new(
        1,
        "host things".into(),
        MigrationType::Simple,
        "CREATE TABLE host_things (id BIGINT PRIMARY KEY)".into_sql_str(),
        false,
    )]);
    renamed.run(&host).await.unwrap();
    let stores = ours(&db.url, None, None).await;
    stores.migrate().await.unwrap();
    renamed.run(&host).await.unwrap();
    stores.migrate().await.unwrap();
    assert_eq!(recorded(&host, "_sqlx_migrations").await.len(), 1);
    assert_eq!(
        recorded(&host, DEFAULT_MIGRATIONS_TABLE).await.len(),
        ours_count()
    );
    stores.close().await;
    host.close().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_adopts_our_rows_from_sqlx_migrations_and_reruns_nothing() {
    for schema in [None, Some("credo")] {
        let Some(db) = FreshDb::new().await else {
            return;
        };
        // The previous release: our versions recorded in `_sqlx_migrations`.
        let before = ours(&db.url, schema, Some(LEGACY_MIGRATIONS_TABLE)).await;
        before.migrate().await.unwrap();
        let tenant = TenantId::new();
        let user = before
            .users()
            .create(NewUser::new(tenant, "grace@example.com", "Grace", "H"))
            .await
            .unwrap();
        let legacy = match schema {
            Some(s) => format!("{s}.{LEGACY_MIGRATIONS_TABLE}"),
            None => LEGACY_MIGRATIONS_TABLE.to_string(),
        };
        // A row that is not ours (another program's, in the same table): never copied.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {legacy} (version, description, success, checksum, execution_time)
             VALUES (20240101, 'not ours', true, '\\x00', 1)"
        )))
        .execute(before.pool())
        .await
        .unwrap();
        let old_rows = recorded(before.pool(), &legacy).await;
        before.close().await;

        // This release, default table: adopts instead of re-running (migration 0001 would
        // fail on the existing tables if it ran again).
        let after = ours(&db.url, schema, None).await;
        after.migrate().await.unwrap();
        let ours_table = match schema {
            Some(s) => format!("{s}.{DEFAULT_MIGRATIONS_TABLE}"),
            None => DEFAULT_MIGRATIONS_TABLE.to_string(),
        };
        let new_rows = recorded(after.pool(), &ours_table).await;
        let expected: Vec<_> = old_rows
            .iter()
            .filter(|(v, ..)| *v != 20240101)
            .cloned()
            .collect();
        assert_eq!(new_rows, expected, "the same versions, checksums and times");
        assert_eq!(
            recorded(after.pool(), &legacy).await,
            old_rows,
            "legacy rows untouched"
        );
        assert_eq!(
            after
                .users()
                .get(tenant, user.id)
                .await
                .unwrap()
                .unwrap()
                .email,
            "grace@example.com"
        );
        // Idempotent from then on.
        after.migrate().await.unwrap();
        assert_eq!(recorded(after.pool(), &ours_table).await, new_rows);
        after.close().await;
        db.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_migrations_table_is_used() {
    let Some(db) = FreshDb::new().await else {
        return;
    };
    let stores = ours(&db.url, Some("auth"), Some("auth_storage_versions")).await;
    stores.migrate().await.unwrap();
    assert_eq!(
        recorded(stores.pool(), "auth.auth_storage_versions")
            .await
            .len(),
        ours_count()
    );
    let exists: bool = sqlx::query_scalar(
        "SELECT to_regclass('auth._credo_storage_migrations') IS NOT NULL
             OR to_regclass('public._credo_storage_migrations') IS NOT NULL",
    )
    .fetch_one(stores.pool())
    .await
    .unwrap();
    assert!(!exists);
    stores.close().await;
    db.drop().await;
}

/// Migration 0004 and the re-key after it: users written under the previous key rule (trim
/// and lower case only) are found by every spelling the email policy folds together; a user
/// whose new key another user of the tenant holds keeps its old key and is logged by id; the
/// work runs once and says how much it did.
#[tokio::test(flavor = "current_thread")]
async fn email_keys_of_earlier_rows_are_recomputed_once() {
    let Some(db) = FreshDb::new().await else {
        return;
    };
    let stores = ours(&db.url, None, None).await;
    stores.migrate().await.unwrap();
    let tenant = TenantId::new();
    // Rows as the previous release wrote them: key = trimmed and lower-cased, not normalized.
    let old_rows = [
        ("Jose\u{301}@Example.com", "jose\u{301}@example.com"),
        ("ＡＤＡ@example.com", "ａｄａ@example.com"),
        // Full-width B: under the policy the same address as the next row.
        ("Ｂob@example.com", "ｂob@example.com"),
        ("bob@example.com", "bob@example.com"),
    ];
    let mut ids = Vec::new();
    for (email, key) in old_rows {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO users (id, tenant_id, email, email_key, email_verified, first_name,
                                last_name, status, created_at, updated_at, version)
             VALUES ($1, $2, $3, $4, false, 'A', 'B', 'active', now(), now(), 1)",
        )
        .bind(id)
        .bind(tenant.0)
        .bind(email)
        .bind(key)
        .execute(stores.pool())
        .await
        .unwrap();
        ids.push(id);
    }
    // As if 0004 had just run on this database.
    sqlx::query("CREATE TABLE email_rekey_pending (since timestamptz NOT NULL DEFAULT now())")
        .execute(stores.pool())
        .await
        .unwrap();
    let logs = credo_testkit::CapturedLogs::start(tracing::Level::INFO);
    stores.migrate().await.unwrap();
    let logs = logs.text();
    let summary = logs
        .lines()
        .find(|l| l.contains("email keys recomputed"))
        .expect(&logs);
    assert!(summary.contains("updated=2 collisions=1"), "{summary}");
    let warned = logs.lines().find(|l| l.contains("WARN")).expect(&logs);
    assert!(warned.contains(&ids[2].to_string()), "{warned}");
    assert!(
        !warned.contains("ob@example.com"),
        "by id, never by address: {warned}"
    );
    let users = stores.users();
    let found = |email: &'static str| {
        let users = users.clone();
        async move {
            users
                .find_by_email(tenant, email)
                .await
                .unwrap()
                .map(|u| u.id.0)
        }
    };
    assert_eq!(
        found("jos\u{e9}@example.com").await,
        Some(ids[0]),
        "NFC finds the NFD row"
    );
    assert_eq!(found("JOSE\u{301}@EXAMPLE.COM").await, Some(ids[0]));
    assert_eq!(
        found("ada@example.com").await,
        Some(ids[1]),
        "full-width folded"
    );
    assert_eq!(found("bob@example.com").await, Some(ids[3]));
    let keys: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT id, email_key FROM users ORDER BY email")
            .fetch_all(stores.pool())
            .await
            .unwrap();
    let key_of = |id| keys.iter().find(|(i, _)| *i == id).unwrap().1.clone();
    assert_eq!(
        key_of(ids[2]),
        "ｂob@example.com",
        "the colliding row keeps its key"
    );
    let pending: bool = sqlx::query_scalar("SELECT to_regclass('email_rekey_pending') IS NOT NULL")
        .fetch_one(stores.pool())
        .await
        .unwrap();
    assert!(!pending, "the re-key runs once");
    // A later start does not touch keys again.
    sqlx::query("UPDATE users SET email_key = 'sentinel' WHERE id = $1")
        .bind(ids[1])
        .execute(stores.pool())
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT email_key FROM users WHERE id = $1")
            .bind(ids[1])
            .fetch_one(stores.pool())
            .await
            .unwrap(),
        "sentinel"
    );
    stores.close().await;
    db.drop().await;
}

/// A database error during the re-key (anything but two users holding one address) fails the
/// start and leaves the re-key pending, so the next start does it; nothing is half-counted.
#[tokio::test(flavor = "current_thread")]
async fn a_database_error_during_the_rekey_fails_the_start_and_leaves_it_pending() {
    let Some(db) = FreshDb::new().await else {
        return;
    };
    let stores = ours(&db.url, None, None).await;
    stores.migrate().await.unwrap();
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, email, email_key, email_verified, first_name,
                            last_name, status, created_at, updated_at, version)
         VALUES ($1, $2, 'Ｃarol@example.com', 'ｃarol@example.com', false, 'A', 'B', 'active',
                 now(), now(), 1)",
    )
    .bind(id)
    .bind(TenantId::new().0)
    .execute(stores.pool())
    .await
    .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE email_rekey_pending (since timestamptz NOT NULL DEFAULT now());
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'disk full, say' USING ERRCODE = '53100'; END $$;
         CREATE TRIGGER refuse BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(stores.pool())
    .await
    .unwrap();
    let err = stores.migrate().await.unwrap_err();
    assert_ne!(err.kind(), "Conflict", "{err}");
    let state = || async {
        let pending: bool =
            sqlx::query_scalar("SELECT to_regclass('email_rekey_pending') IS NOT NULL")
                .fetch_one(stores.pool())
                .await
                .unwrap();
        let key: String = sqlx::query_scalar("SELECT email_key FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(stores.pool())
            .await
            .unwrap();
        (pending, key)
    };
    assert_eq!(state().await, (true, "ｃarol@example.com".to_string()));
    sqlx::raw_sql("DROP TRIGGER refuse ON users")
        .execute(stores.pool())
        .await
        .unwrap();
    let logs = credo_testkit::CapturedLogs::start(tracing::Level::INFO);
    stores.migrate().await.unwrap();
    assert!(
        logs.text().contains("updated=1 collisions=0"),
        "{}",
        logs.text()
    );
    assert_eq!(state().await, (false, "carol@example.com".to_string()));
    stores.close().await;
    db.drop().await;
}
