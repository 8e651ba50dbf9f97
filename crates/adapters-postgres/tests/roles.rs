//! Least privilege: the service runs as an application role that owns nothing, granted by
//! `PgStores::grant_app_role`. Every store works through it, and every way of rewriting or
//! erasing the audit trail outside retention is refused by the database itself: each denial
//! below is proven against a real login role. Needs `CREDO_TEST_POSTGRES_URL` (a role that
//! may create roles, as the local test server's is).

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::{
    AuditCategory, AuditEvent, EventId, NewUser, NonZeroU32, RateLimitPolicy, StoreError,
    SystemClock, TenantId, Timestamp,
};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    owner: PgStores,
    app: PgStores,
    role: String,
    schema: String,
}

async fn setup() -> Option<Setup> {
    let url = credo_testkit::required("CREDO_TEST_POSTGRES_URL")?;
    let schema = credo_testkit::unique_name("credo_roles");
    let mut config = PgConfig::new(&url);
    config.schema = Some(schema.clone());
    let owner = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    owner.migrate().await.unwrap();
    let role = credo_testkit::unique_name("credo_app");
    let password = credo_testkit::unique_name("pw");
    owner.create_app_login(&role, &password).await.unwrap();
    // Granting twice changes nothing.
    owner.grant_app_role(&role).await.unwrap();
    // The same server and database, logged in as the new role.
    let mut app_config = PgConfig::new(credo_testkit::url_as(&url, &role, &password));
    app_config.schema = Some(schema);
    let app = PgStores::connect(&app_config, Arc::new(SystemClock))
        .await
        .unwrap();
    Some(Setup {
        owner,
        app,
        role,
        schema: app_config.schema.clone().unwrap_or_default(),
    })
}

impl Setup {
    fn owner_schema(&self) -> Option<String> {
        Some(self.schema.clone())
    }

    async fn teardown(self) {
        self.app.close().await;
        self.owner.drop_schema().await.unwrap();
        self.owner.drop_login(&self.role).await.unwrap();
    }

    /// Runs `sql` as the application role; the server's error code and message.
    async fn refused(&self, sql: &str) -> (String, String) {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(self.app.pool())
            .await
        {
            Ok(_) => panic!("the application role was allowed: {sql}"),
            Err(sqlx::Error::Database(e)) => (
                e.code().unwrap_or_default().into_owned(),
                e.message().to_string(),
            ),
            Err(other) => panic!("{sql}: {other}"),
        }
    }
}

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_micros(ms * 1000)
}

fn event(tenant: TenantId, ms: i64, n: u8) -> AuditEvent {
    let mut e = AuditEvent::new(tenant, at_ms(ms), AuditCategory::Security, "auth.checked");
    e.id = EventId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(ms as u64, &[n; 10]).into_uuid(),
    );
    e
}

/// 2020-01-02, a Thursday: weeks since the epoch start on Thursdays.
const OLD_MS: i64 = 18_263 * 86_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_runs_every_store() {
    let Some(s) = setup().await else {
        return;
    };
    let app = &s.app;
    let tenant = TenantId::new();
    let user = app
        .users()
        .create(NewUser::new(tenant, "a@example.com", "A", "B"))
        .await
        .unwrap();
    assert!(app.users().get(tenant, user.id).await.unwrap().is_some());
    app.rate_limits()
        .check(
            tenant,
            "ip:1",
            RateLimitPolicy::per(5, Duration::from_secs(60)),
            1,
        )
        .await
        .unwrap();
    assert!(
        app.leases()
            .acquire("job", "me", Duration::from_secs(5))
            .await
            .unwrap()
    );
    // The user's audit event went through the outbox; the relay's claim and ack work too.
    let claim = app
        .outbox()
        .claim(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(claim.records.len(), 1);
    let ids: Vec<_> = claim.records.iter().map(|r| r.message.id).collect();
    app.outbox().ack(claim.token, &ids).await.unwrap();

    // The log: append, read, partitions made and dropped, retention, all as the app role.
    let log = app.audit_log();
    let parts = app.audit_partitions();
    let week = NonZeroU32::new(7).unwrap();
    assert_eq!(parts.create_ahead(at_ms(OLD_MS), week, 1).await.unwrap(), 2);
    let old: Vec<_> = (0..3).map(|n| event(tenant, OLD_MS + 1000, n)).collect();
    let stray = event(tenant, OLD_MS - 86_400_000, 9);
    log.append_batch(&[old.clone(), vec![stray.clone()]].concat())
        .await
        .unwrap();
    let a_year_later = at_ms(OLD_MS + 365 * 86_400_000);
    assert_eq!(
        parts
            .drop_before(a_year_later, NonZeroU32::new(10).unwrap())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        log.purge_before(a_year_later, None, NonZeroU32::new(10).unwrap())
            .await
            .unwrap(),
        1,
        "the event in the catch-all goes row by row"
    );
    assert!(log.get(tenant, stray.id).await.unwrap().is_none());
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_role_cannot_rewrite_or_erase_the_audit_trail() {
    let Some(s) = setup().await else {
        return;
    };
    let tenant = TenantId::new();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let recent = event(tenant, now_ms, 1);
    s.app.audit_log().append_batch(&[recent]).await.unwrap();
    s.owner
        .audit_partitions()
        .create_ahead(at_ms(OLD_MS), NonZeroU32::new(7).unwrap(), 0)
        .await
        .unwrap();

    let denied = |(code, message): (String, String), expect: &str| {
        assert_eq!(code, "42501", "{message}");
        assert!(message.contains(expect), "{message}");
    };
    denied(
        s.refused("UPDATE audit_events SET action = 'forged'").await,
        "permission denied for table audit_events",
    );
    denied(
        s.refused("DELETE FROM audit_events").await,
        "permission denied for table audit_events",
    );
    denied(
        s.refused("TRUNCATE audit_events").await,
        "permission denied for table audit_events",
    );
    denied(
        s.refused("DELETE FROM audit_events_default").await,
        "permission denied for table audit_events_default",
    );
    denied(
        s.refused("UPDATE audit_events_default SET action = 'forged'")
            .await,
        "permission denied for table audit_events_default",
    );
    denied(
        s.refused("DROP TABLE audit_events_p20200102").await,
        "must be owner of table audit_events_p20200102",
    );
    denied(
        s.refused("ALTER TABLE audit_events DETACH PARTITION audit_events_default")
            .await,
        "must be owner of table audit_events",
    );
    denied(
        s.refused("ALTER TABLE audit_events DISABLE TRIGGER ALL")
            .await,
        "must be owner of table audit_events",
    );
    denied(
        s.refused("UPDATE audit_retention_floor SET min_age = interval '0'")
            .await,
        "permission denied for table audit_retention_floor",
    );
    denied(
        s.refused("CREATE TABLE shadow (id int)").await,
        "permission denied for schema",
    );
    denied(
        s.refused("SELECT credo_audit_floor_check(now())").await,
        "permission denied for function credo_audit_floor_check",
    );
    // The retention paths refuse what is inside the floor (one day by default).
    denied(
        s.refused("SELECT credo_audit_purge(now(), NULL, 1000)")
            .await,
        "may not delete audit events younger than 1 day",
    );
    denied(
        s.refused("SELECT credo_audit_partition_drop('audit_events_p20200102', now())")
            .await,
        "may not delete audit events younger than 1 day",
    );
    let err = s
        .app
        .audit_log()
        .purge_before(at_ms(now_ms + 1), None, NonZeroU32::new(1000).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(c) if c.to_string().contains("audit_retention_floor")),
        "{err}"
    );
    // And they take nothing but time partitions.
    let (code, message) = s
        .refused("SELECT credo_audit_partition_drop('users', now() - interval '3 days')")
        .await;
    assert_eq!(code, "22023", "{message}");
    let (code, message) = s
        .refused("SELECT credo_audit_partition_create('users; DROP TABLE users', '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff')")
        .await;
    assert_eq!(code, "22023", "{message}");
    // Nothing was lost on the way.
    assert_eq!(
        s.owner.row_counts().await.unwrap()["audit_events"],
        1,
        "the recent event survived every attempt"
    );
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_role_acts_as_the_configured_role() {
    let Some(s) = setup().await else {
        return;
    };
    // The owner's login, acting as the application role: its grants, not the owner's.
    let url = credo_testkit::required("CREDO_TEST_POSTGRES_URL").unwrap();
    let mut config = PgConfig::new(&url);
    config.schema = s.owner_schema();
    config.role = Some(s.role.clone());
    let acting = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let who: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(acting.pool())
        .await
        .unwrap();
    assert_eq!(who, s.role);
    let err = sqlx::query("DELETE FROM audit_events")
        .execute(acting.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    acting
        .users()
        .create(NewUser::new(TenantId::new(), "b@example.com", "B", "C"))
        .await
        .unwrap();
    acting.close().await;
    let mut bad = PgConfig::new(&url);
    bad.role = Some("Robert'); DROP".into());
    assert!(matches!(
        PgStores::connect(&bad, Arc::new(SystemClock)).await,
        Err(StoreError::InvalidInput { .. })
    ));
    s.teardown().await;
}
