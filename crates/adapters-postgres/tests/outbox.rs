//! The PostgreSQL outbox beyond what the conformance suite can see: rows written by the schema
//! version 1 (the bare event, before the envelope) are relayed after the migration and come back
//! on the way down; leases run on the database's clock, whatever the hosts' clocks say. Needs
//! `CREDO_TEST_POSTGRES_URL` (`cargo xtask services env`).

use credo_adapters_postgres::{MIGRATOR, PgConfig, PgStores};
use credo_pipeline::{DirectSink, OutboxRelay, RelayConfig};
use credo_ports::{
    AuditCategory, AuditEvent, Clock, Disposition, EncodedEvent, ManualClock, SystemClock,
    TenantId, Timestamp, UserId,
};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

async fn fresh_schema(name: &str, clock: Arc<dyn Clock>) -> Option<PgStores> {
    let url = credo_testkit::required("CREDO_TEST_POSTGRES_URL")?;
    let mut config = PgConfig::new(url);
    config.schema = Some(format!("credo_pg_{name}_{}", std::process::id()));
    let stores = PgStores::connect(&config, clock).await.unwrap();
    stores.drop_schema().await.unwrap();
    Some(stores)
}

fn event(tenant: TenantId, subject: Option<UserId>, n: u32) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant,
        Timestamp::from_micros(1_800_000_000_123_457 + i64::from(n)),
        AuditCategory::Compliance,
        "consent.granted",
    );
    e.subject_user_id = subject;
    e.purpose = Some("marketing".into());
    e.metadata.insert("n".into(), n.into());
    e.metadata
        .insert("nested".into(), serde_json::json!({"a": [1, 2.5, "x"]}));
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_rows_are_relayed_after_the_migration_and_restored_on_the_way_down() {
    let Some(stores) = fresh_schema("v1rows", Arc::new(SystemClock)).await else {
        return;
    };
    let pool = stores.pool().clone();
    let schema = format!("credo_pg_v1rows_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .unwrap();
    MIGRATOR.run_to(1, &pool).await.unwrap();

    // What version 1 wrote: the serde form of the event in `payload` (jsonb).
    let (tenant, subject) = (TenantId::new(), UserId::new());
    let events: Vec<AuditEvent> = (0..6)
        .map(|n| event(tenant, (n % 3 != 0).then_some(subject), n))
        .collect();
    for (n, e) in events.iter().enumerate() {
        sqlx::query(
            "INSERT INTO outbox (event_id, tenant_id, event_type, payload, enqueued_at, published_at)
             VALUES ($1, $2, $3, $4, now(), CASE WHEN $5 THEN now() END)",
        )
        .bind(e.id.0)
        .bind(e.tenant_id.0)
        .bind(&e.action)
        .bind(serde_json::to_value(e).unwrap())
        .bind(n == 5) // the last one was published already
        .execute(&pool)
        .await
        .unwrap();
    }

    stores.migrate().await.unwrap();
    let outbox = stores.outbox();
    assert_eq!(outbox.depth().await.unwrap(), 5);
    // The routing fields were filled from the old payload.
    let claim = outbox.claim(10, Duration::from_secs(60)).await.unwrap();
    let messages: Vec<EncodedEvent> = claim.records.iter().map(|r| r.message.clone()).collect();
    assert_eq!(messages.len(), 5);
    for (m, e) in messages.iter().zip(&events) {
        assert_eq!(
            (
                m.id,
                m.tenant_id,
                m.subject,
                m.event_type.as_str(),
                m.schema_version
            ),
            (e.id, e.tenant_id, e.subject_user_id, "consent.granted", 1)
        );
        assert_eq!(
            &m.decode().unwrap(),
            e,
            "the wrapped payload decodes to the event"
        );
    }
    outbox
        .release(
            claim.token,
            &messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        )
        .await
        .unwrap();

    // A row that is not JSON has no version-1 form: the way down refuses until it is gone.
    let poison = EncodedEvent {
        payload: "not json".into(),
        ..EncodedEvent::encode(&event(tenant, None, 99))
    };
    stores.enqueue_raw(&poison).await.unwrap();
    // On a connection of its own: a failed migration leaves sqlx's session-level migration
    // lock held until that connection closes.
    let mut conn = pool.acquire().await.unwrap().detach();
    let refused = MIGRATOR.undo(&mut conn, 1).await.unwrap_err().to_string();
    assert!(refused.contains("envelope is not JSON"), "{refused}");
    sqlx::Connection::close(conn).await.unwrap();
    sqlx::query("DELETE FROM outbox WHERE event_id = $1")
        .bind(poison.id.0)
        .execute(&pool)
        .await
        .unwrap();

    // Down to version 1: pending rows hold the bare event again.
    MIGRATOR.undo(&pool, 1).await.unwrap();
    let payload: serde_json::Value = sqlx::query("SELECT payload FROM outbox WHERE event_id = $1")
        .bind(events[2].id.0)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("payload");
    assert_eq!(payload, serde_json::to_value(&events[2]).unwrap());

    // Up again, and the relay takes them to the log.
    stores.migrate().await.unwrap();
    let relay = OutboxRelay::new(
        stores.outbox(),
        Arc::new(DirectSink::new(stores.audit_log())),
        RelayConfig::default(),
    )
    .unwrap();
    assert_eq!(relay.drain().await.unwrap(), 5);
    let log = stores.audit_log();
    for e in &events[..5] {
        assert_eq!(log.get(tenant, e.id).await.unwrap().as_ref(), Some(e));
    }
    assert_eq!(log.get(tenant, events[5].id).await.unwrap(), None);
    stores.drop_schema().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_run_on_the_database_clock_whatever_the_hosts_say() {
    // Two instances whose clocks are an hour behind and an hour ahead of the database's.
    let behind = Arc::new(ManualClock::new(Timestamp::from_micros(
        SystemClock.now().as_micros() - 3_600_000_000,
    )));
    let ahead = Arc::new(ManualClock::new(Timestamp::from_micros(
        SystemClock.now().as_micros() + 3_600_000_000,
    )));
    let Some(a) = fresh_schema("leaseclock", behind).await else {
        return;
    };
    a.migrate().await.unwrap();
    let b = a.with_clock(ahead);
    let tenant = TenantId::new();
    for n in 0..4 {
        a.audit()
            .record(event(tenant, Some(UserId::new()), n))
            .await
            .unwrap();
    }
    let lease = Duration::from_millis(1500);
    let mine = a.outbox().claim(2, lease).await.unwrap();
    assert_eq!(mine.records.len(), 2);
    // On its own clock, `b` is an hour past the lease; on the database's it is not.
    let theirs = b.outbox().claim(10, lease).await.unwrap();
    assert_eq!(theirs.records.len(), 2, "only the unheld rows");
    // A retry delay runs on the database's clock too.
    assert!(
        b.outbox()
            .reject(
                theirs.token,
                theirs.records[0].message.id,
                "refused",
                Disposition::RetryAfter(lease)
            )
            .await
            .unwrap()
    );
    assert!(
        b.outbox()
            .claim(10, lease)
            .await
            .unwrap()
            .records
            .is_empty()
    );
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    let after = b.outbox().claim(10, lease).await.unwrap();
    assert_eq!(
        after.records.len(),
        4,
        "both leases and the retry delay lapsed on the database's clock: {after:?}"
    );
    a.drop_schema().await.unwrap();
}
