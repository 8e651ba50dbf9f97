//! PostgreSQL hot paths beside raw `sqlx` doing the same work on the same pool: a user read by
//! id (the same SELECT, decoded by hand), a consent grant (the same upsert and outbox insert in
//! one transaction) and a 1,000-event `append_batch` (beside the raw UNNEST array insert and
//! beside COPY). Needs `CREDO_TEST_POSTGRES_URL`.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_bench::{BASELINE, OURS, insert_events_raw};
use credo_ports::{
    AuditCategory, AuditEvent, Clock, ConsentId, EncodedEvent, GrantConsent, NewUser, SystemClock,
    TenantId, UserId,
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

criterion_group!(benches, user_get, consent_grant, append_batch);
criterion_main!(benches);
