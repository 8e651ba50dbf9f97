//! PostgreSQL hot paths beside raw `sqlx` doing the same work on the same pool: a user read by
//! id (the same SELECT, decoded by hand), a consent grant (the same upsert and outbox insert in
//! one transaction), a rate-limit check of an existing key (beside one hand-written upsert
//! doing the GCRA step in SQL), a session read by id (the same SELECT, decoded by hand), a
//! session create (beside one plain INSERT ... RETURNING) and a 1,000-event `append_batch`
//! (beside the raw UNNEST array insert and beside COPY). Needs `CREDO_TEST_POSTGRES_URL`.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_bench::{BASELINE, OURS, insert_events_raw};
use credo_ports::{
    AuditCategory, AuditEvent, Clock, ConsentId, Device, EncodedEvent, GrantConsent, NewSession,
    NewUser, RateLimitPolicy, SessionId, SessionStatus, SystemClock, TenantId, UserId,
};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::Row;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setup() -> Option<(tokio::runtime::Runtime, PgStores)> {
    let url = credo_testkit::required("CREDO_TEST_POSTGRES_URL")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stores = rt.block_on(async {
        let mut c = PgConfig::new(url);
        c.schema = Some(format!("credo_bench_{}", std::process::id()));
        let s = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
        s.drop_schema().await.unwrap();
        s.migrate().await.unwrap();
        s
    });
    Some((rt, stores))
}

/// Group `name`: `iters` sequential awaits of `ours`, then as many of `baseline`.
fn side_by_side<O, OF, B, BF>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    ours: O,
    baseline: B,
) where
    O: Fn() -> OF,
    OF: Future<Output = ()>,
    B: Fn() -> BF,
    BF: Future<Output = ()>,
{
    let mut g = c.benchmark_group(name);
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| sequential(rt, iters, &ours))
    });
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| sequential(rt, iters, &baseline))
    });
    g.finish();
}

fn sequential<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, op: &F) -> Duration
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            op().await;
        }
        started.elapsed()
    })
}

fn events(tenant: TenantId, n: usize) -> Vec<AuditEvent> {
    let now = SystemClock.now();
    (0..n)
        .map(|i| {
            let mut e = AuditEvent::new(tenant, now, AuditCategory::Security, "auth.login_failed");
            e.actor = Some("client:web".into());
            e.metadata.insert("n".into(), i.into());
            e
        })
        .collect()
}

fn user_get(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let users = pg.users();
    let tenant = TenantId::new();
    let user = rt
        .block_on(users.create(NewUser::new(tenant, "ada@example.com", "Ada", "L")))
        .unwrap();
    let pool = pg.pool().clone();
    let (users, pool, id) = (&users, &pool, user.id);
    side_by_side(
        c,
        &rt,
        "postgres.user.get",
        move || async move {
            black_box(users.get(tenant, id).await.unwrap());
        },
        move || async move {
            let row = sqlx::query(
                "SELECT id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version
                 FROM users WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(pool)
            .await
            .unwrap()
            .unwrap();
            let v: (uuid::Uuid, String, bool, String, i64) = (
                row.get("id"),
                row.get("email"),
                row.get("email_verified"),
                row.get("status"),
                row.get("version"),
            );
            black_box(v);
        },
    );
    rt.block_on(pg.drop_schema()).unwrap();
}

fn consent_grant(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let consents = pg.consents();
    let pool = pg.pool().clone();
    let (tenant, user) = (TenantId::new(), UserId::new());
    // Both sides renew one existing grant each: the upsert's update path plus an outbox row.
    let grant = move |purpose: &str| GrantConsent {
        id: ConsentId::new(),
        tenant_id: tenant,
        user_id: user,
        purpose: purpose.into(),
        expires_at: None,
    };
    let (consents, pool) = (&consents, &pool);
    side_by_side(
        c,
        &rt,
        "postgres.consent.grant",
        move || async move {
            black_box(consents.grant(grant("marketing")).await.unwrap());
        },
        move || async move {
            let g = grant("analytics");
            let mut tx = pool.begin().await.unwrap();
            let row = sqlx::query(
                "INSERT INTO consents (id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version)
                 VALUES ($1, $2, $3, $4, now(), NULL, NULL, 1)
                 ON CONFLICT (tenant_id, user_id, purpose) DO UPDATE
                     SET granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at,
                         revoked_at = NULL, version = consents.version + 1
                 RETURNING id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version",
            )
            .bind(g.id.0)
            .bind(g.tenant_id.0)
            .bind(g.user_id.0)
            .bind(&g.purpose)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            let v: (uuid::Uuid, String, i64) =
                (row.get("id"), row.get("purpose"), row.get("version"));
            let mut e = AuditEvent::new(
                tenant,
                SystemClock.now(),
                AuditCategory::Compliance,
                "consent.granted",
            );
            e.subject_user_id = Some(user);
            e.purpose = Some(v.1.clone());
            e.decision = Some("granted".into());
            // The same row our outbox writes: the encoded envelope and its columns.
            let m = EncodedEvent::encode(&e);
            sqlx::query(
                "INSERT INTO outbox (event_id, tenant_id, subject_user_id, event_type, schema_version,
                                     envelope, enqueued_at, traceparent)
                 VALUES ($1, $2, $3, $4, $5, $6, now(), $7) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(m.id.0)
            .bind(m.tenant_id.0)
            .bind(m.subject.map(|u| u.0))
            .bind(&m.event_type)
            .bind(m.schema_version as i32)
            .bind(&m.payload)
            .bind(m.traceparent.map(|t| t.to_string()))
            .execute(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            black_box(v);
        },
    );
    rt.block_on(pg.drop_schema()).unwrap();
}

fn append_batch(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let audit = pg.audit_log();
    let pool = pg.pool().clone();
    let tenant = TenantId::new();
    let timed = |f: &dyn Fn(Vec<AuditEvent>) -> Duration, iters: u64| {
        (0..iters)
            .map(|_| f(events(tenant, 1_000)))
            .sum::<Duration>()
    };
    let ours = |batch: Vec<AuditEvent>| {
        rt.block_on(async {
            let started = Instant::now();
            let o = audit.append_batch(&batch).await.unwrap();
            assert_eq!(o.inserted, 1_000);
            started.elapsed()
        })
    };
    let copy = |batch: Vec<AuditEvent>| {
        rt.block_on(async {
            let started = Instant::now();
            let mut text = String::with_capacity(batch.len() * 200);
            for e in &batch {
                use std::fmt::Write;
                let _ = writeln!(
                    text,
                    "{}\t{}\t{}\t{}\t{}\t{}\t\\N\t\\N\t\\N\t\\N\t\\N\t{}",
                    e.id.0,
                    e.tenant_id.0,
                    e.occurred_at.to_rfc3339(),
                    e.category.as_str(),
                    e.action,
                    e.actor.as_deref().unwrap_or("\\N"),
                    serde_json::Value::Object(e.metadata.clone()),
                );
            }
            let mut conn = pool.acquire().await.unwrap();
            let mut copy = conn
                .copy_in_raw(
                    "COPY audit_events (id, tenant_id, occurred_at, category, action, actor, subject_user_id, purpose, decision, reason, request_id, metadata) FROM STDIN",
                )
                .await
                .unwrap();
            copy.send(text.as_bytes()).await.unwrap();
            assert_eq!(copy.finish().await.unwrap(), 1_000);
            started.elapsed()
        })
    };
    let unnest = |batch: Vec<AuditEvent>| {
        rt.block_on(async {
            let started = Instant::now();
            assert_eq!(insert_events_raw(&pool, &batch, false).await, 1_000);
            started.elapsed()
        })
    };
    let mut g = c.benchmark_group("postgres.audit.append_batch_1000.vs_unnest");
    g.sample_size(10);
    g.bench_function(OURS, |b| b.iter_custom(|iters| timed(&ours, iters)));
    g.bench_function(BASELINE, |b| b.iter_custom(|iters| timed(&unnest, iters)));
    g.finish();
    let mut g = c.benchmark_group("postgres.audit.append_batch_1000.vs_copy");
    g.sample_size(10);
    g.bench_function(OURS, |b| b.iter_custom(|iters| timed(&ours, iters)));
    g.bench_function(BASELINE, |b| b.iter_custom(|iters| timed(&copy, iters)));
    g.finish();
    rt.block_on(pg.drop_schema()).unwrap();
}

/// Generous enough that every check is admitted, on both sides.
const POLICY: RateLimitPolicy = RateLimitPolicy {
    limit: 1_000_000,
    period: Duration::from_secs(1),
    burst: 1_000_000,
};

/// The raw GCRA step as one statement: insert the key's TAT, or move an existing one forward
/// when the check is admitted (`DO UPDATE ... WHERE`: a denied check updates nothing and
/// returns no row). $3 now, $4 emission interval × cost, $5 tolerance, all in µs.
const RAW_GCRA: &str =
    "INSERT INTO rate_limits AS r (tenant_id, key, tat_us) VALUES ($1, $2, $3 + $4)
     ON CONFLICT (tenant_id, key) DO UPDATE SET tat_us = GREATEST(r.tat_us, $3) + $4
         WHERE GREATEST(r.tat_us, $3) + $4 - $5 <= $3
     RETURNING tat_us";

/// One raw check of `key`: whether it was admitted, and the requests still admitted after it.
async fn raw_check(pool: &sqlx::PgPool, tenant: TenantId, key: &str) -> (bool, i64) {
    let now = SystemClock.now().as_micros();
    let (t, tau) = (POLICY.emission_interval_us(), POLICY.tolerance_us());
    let tat: Option<i64> = sqlx::query_scalar(RAW_GCRA)
        .bind(tenant.0)
        .bind(key)
        .bind(now)
        .bind(t)
        .bind(tau)
        .fetch_optional(pool)
        .await
        .unwrap();
    match tat {
        Some(tat) => (true, ((tau - (tat - now)) / t).max(0)),
        None => (false, 0),
    }
}

fn rate_limit_check(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let limits = pg.rate_limits();
    let pool = pg.pool().clone();
    let tenant = TenantId::new();
    // Both keys exist before timing: every timed check takes the update path.
    rt.block_on(async {
        assert!(
            limits
                .check(tenant, "login:ours", POLICY, 1)
                .await
                .unwrap()
                .allowed
        );
        assert!(raw_check(&pool, tenant, "login:raw").await.0);
    });
    let (limits, pool) = (&limits, &pool);
    side_by_side(
        c,
        &rt,
        "postgres.rate_limit.check",
        move || async move {
            black_box(limits.check(tenant, "login:ours", POLICY, 1).await.unwrap());
        },
        move || async move {
            black_box(raw_check(pool, tenant, "login:raw").await);
        },
    );
    rt.block_on(pg.drop_schema()).unwrap();
}

fn new_session(tenant: TenantId, user: UserId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user,
        client_id: "web".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: SystemClock.now().saturating_add(Duration::from_secs(3600)),
    }
}

/// Every column of a session row, decoded by hand (what our store decodes into a `Session`).
type RawSession = (
    (
        uuid::Uuid,
        uuid::Uuid,
        uuid::Uuid,
        String,
        Vec<String>,
        String,
    ),
    (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ),
    (Ts, Ts, Ts, Option<Ts>, Option<Ts>, i64),
);
type Ts = chrono::DateTime<chrono::Utc>;

fn raw_session(r: &sqlx::postgres::PgRow) -> RawSession {
    (
        (
            r.get("id"),
            r.get("tenant_id"),
            r.get("user_id"),
            r.get("client_id"),
            r.get("scopes"),
            r.get("status"),
        ),
        (
            r.get("user_agent"),
            r.get("ip_address"),
            r.get("device_id"),
            r.get("device_name"),
        ),
        (
            r.get("created_at"),
            r.get("expires_at"),
            r.get("last_seen_at"),
            r.get("last_refreshed_at"),
            r.get("revoked_at"),
            r.get("version"),
        ),
    )
}

fn session_get(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let sessions = pg.sessions();
    let tenant = TenantId::new();
    let session = rt
        .block_on(sessions.create(new_session(tenant, UserId::new())))
        .unwrap();
    let pool = pg.pool().clone();
    let (sessions, pool, id) = (&sessions, &pool, session.id);
    side_by_side(
        c,
        &rt,
        "postgres.session.get",
        move || async move {
            black_box(sessions.get(tenant, id).await.unwrap().unwrap());
        },
        move || async move {
            let row = sqlx::query(
                "SELECT * FROM sessions WHERE tenant_id = $1 AND id = $2 AND expires_at > $3",
            )
            .bind(tenant.0)
            .bind(id.0)
            .bind(chrono::Utc::now())
            .fetch_optional(pool)
            .await
            .unwrap()
            .unwrap();
            black_box(raw_session(&row));
        },
    );
    rt.block_on(pg.drop_schema()).unwrap();
}

/// Ours: create (a transaction: the user's advisory lock, an insert that may only replace an
/// expired session of the same id). Baseline: one plain `INSERT ... RETURNING *` of the same
/// row, decoded by hand.
fn session_create(c: &mut Criterion) {
    let Some((rt, pg)) = setup() else { return };
    let sessions = pg.sessions();
    let pool = pg.pool().clone();
    let (tenant, user) = (TenantId::new(), UserId::new());
    let (sessions, pool) = (&sessions, &pool);
    side_by_side(
        c,
        &rt,
        "postgres.session.create",
        move || async move {
            black_box(sessions.create(new_session(tenant, user)).await.unwrap());
        },
        move || async move {
            let s = new_session(tenant, user);
            let now = chrono::Utc::now();
            let expires =
                chrono::DateTime::from_timestamp_micros(s.expires_at.as_micros()).unwrap();
            let row = sqlx::query(
                "INSERT INTO sessions (id, tenant_id, user_id, client_id, scopes, status, user_agent, ip_address,
                                       device_id, device_name, created_at, expires_at, last_seen_at, version)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, 1)
                 RETURNING *",
            )
            .bind(s.id.0)
            .bind(s.tenant_id.0)
            .bind(s.user_id.0)
            .bind(&s.client_id)
            .bind(&s.scopes)
            .bind(s.status.as_str())
            .bind(s.device.user_agent.as_deref())
            .bind(s.device.ip_address.as_deref())
            .bind(s.device.device_id.as_deref())
            .bind(s.device.device_name.as_deref())
            .bind(now)
            .bind(expires)
            .fetch_one(pool)
            .await
            .unwrap();
            black_box(raw_session(&row));
        },
    );
    rt.block_on(pg.drop_schema()).unwrap();
}

criterion_group!(
    benches,
    user_get,
    consent_grant,
    rate_limit_check,
    session_get,
    session_create,
    append_batch
);
criterion_main!(benches);
