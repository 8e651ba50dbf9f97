//! The partitioned audit log (migration 0008): partitions made ahead take the events minted
//! for them, retention drops whole partitions but never one holding an event still inside
//! retention, the key `(tenant, id)` holds across partitions, and queries by tenant and by
//! subject are served by each partition's indexes. Needs `CREDO_TEST_POSTGRES_URL`.

use credo_adapters_postgres::testing::AUDIT_QUERY_SQL;
use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::page::PageRequest;
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, EventId, NonZeroU32, SystemClock, TenantId, Timestamp,
    UserId,
};
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;
const WEEK: NonZeroU32 = NonZeroU32::new(7).unwrap();

async fn stores(name: &str) -> Option<PgStores> {
    let url = credo_testkit::required("CREDO_TEST_POSTGRES_URL")?;
    let mut config = PgConfig::new(&url);
    config.schema = Some(credo_testkit::unique_name(name));
    let stores = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    Some(stores)
}

fn at_ms(ms: i64) -> Timestamp {
    Timestamp::from_micros(ms * 1000)
}

/// An event minted at `minted_ms` (its UUIDv7 time) that occurred at `occurred_ms`.
fn event(tenant: TenantId, minted_ms: i64, occurred_ms: i64, n: u64) -> AuditEvent {
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    let mut e = AuditEvent::new(
        tenant,
        at_ms(occurred_ms),
        AuditCategory::Security,
        "login.succeeded",
    );
    e.id = EventId::from_uuid(
        uuid::Builder::from_unix_timestamp_millis(minted_ms as u64, &random).into_uuid(),
    );
    e
}

async fn home(stores: &PgStores, id: EventId) -> String {
    sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_events WHERE id = $1")
        .bind(id.0)
        .fetch_one(stores.pool())
        .await
        .unwrap()
}

/// 2026-12-03 (a Thursday; weeks since the epoch start on Thursdays).
const NOW_MS: i64 = 20_790 * DAY_MS + 12 * 3_600_000;

#[tokio::test]
async fn partitions_made_ahead_take_the_events_minted_for_them() {
    let Some(stores) = stores("credo_partitions_ahead").await else {
        return;
    };
    let (log, parts) = (stores.audit_log(), stores.audit_partitions());
    let tenant = TenantId::new();
    let week = 7 * DAY_MS;
    let period_start = NOW_MS.div_euclid(week) * week;
    // Minted two weeks ahead (a clock ahead of the others) before any partition exists.
    let early = event(tenant, NOW_MS + 2 * week, NOW_MS, 1);
    let old = event(tenant, NOW_MS - 30 * DAY_MS, NOW_MS - 30 * DAY_MS, 2);
    log.append_batch(&[early.clone(), old.clone()])
        .await
        .unwrap();
    assert_eq!(home(&stores, early.id).await, "audit_events_default");

    assert_eq!(parts.create_ahead(at_ms(NOW_MS), WEEK, 2).await.unwrap(), 3);
    let made = parts.partitions().await.unwrap();
    let ranges: Vec<_> = made.iter().map(|p| (p.from, p.until)).collect();
    assert_eq!(
        ranges,
        (0..3)
            .map(|k| (
                at_ms(period_start + k * week),
                at_ms(period_start + (k + 1) * week)
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(made[0].name, "audit_events_p20261203");
    // The early event moved into its partition; the old one stays in the catch-all.
    assert_eq!(home(&stores, early.id).await, made[2].name);
    assert_eq!(home(&stores, old.id).await, "audit_events_default");
    // Again: nothing to make. A longer horizon with a new period length fills only the gap.
    assert_eq!(parts.create_ahead(at_ms(NOW_MS), WEEK, 2).await.unwrap(), 0);
    let day = NonZeroU32::new(1).unwrap();
    assert_eq!(parts.create_ahead(at_ms(NOW_MS), day, 22).await.unwrap(), 2);
    assert_eq!(parts.partitions().await.unwrap().len(), 5);

    // New events route by their id; a redelivery is skipped in whichever partition it is.
    let now_event = event(tenant, NOW_MS, NOW_MS, 3);
    let outcome = log
        .append_batch(&[now_event.clone(), early.clone(), old.clone()])
        .await
        .unwrap();
    assert_eq!((outcome.inserted, outcome.duplicates), (1, 2));
    assert_eq!(home(&stores, now_event.id).await, made[0].name);
    assert_eq!(log.get(tenant, early.id).await.unwrap(), Some(early));
    let all = log
        .query(tenant, AuditQuery::default(), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 3);
    stores.drop_schema().await.unwrap();
}

#[tokio::test]
async fn retention_drops_whole_partitions_but_not_one_with_a_later_event() {
    let Some(stores) = stores("credo_partitions_drop").await else {
        return;
    };
    let (log, parts) = (stores.audit_log(), stores.audit_partitions());
    let tenant = TenantId::new();
    let week = 7 * DAY_MS;
    let start = NOW_MS.div_euclid(week) * week;
    assert_eq!(parts.create_ahead(at_ms(NOW_MS), WEEK, 3).await.unwrap(), 4);
    let mut events = Vec::new();
    for k in 0..4 {
        for n in 0..50 {
            let minted = start + k * week + n * 1000;
            events.push(event(tenant, minted, minted, (k * 100 + n) as u64));
        }
    }
    // Minted in the second week, but it occurred in the fourth (a backdated id): that week
    // must outlive a cutoff at the end of the third.
    let late = event(tenant, start + week + 1, start + 3 * week + 5, 999);
    events.push(late.clone());
    log.append_batch(&events).await.unwrap();

    let cutoff = at_ms(start + 3 * week);
    let one = NonZeroU32::new(1).unwrap();
    assert_eq!(parts.drop_before(cutoff, one).await.unwrap(), 1);
    assert_eq!(
        parts
            .drop_before(cutoff, NonZeroU32::new(10).unwrap())
            .await
            .unwrap(),
        1,
        "the first week went with the call before; the second holds a later event; the third goes"
    );
    assert_eq!(parts.drop_before(cutoff, one).await.unwrap(), 0);
    let left: Vec<_> = parts
        .partitions()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.from)
        .collect();
    assert_eq!(left, vec![at_ms(start + week), at_ms(start + 3 * week)]);
    // Exactly the events of the two kept weeks are left.
    let n = log.count(tenant, AuditQuery::default()).await.unwrap();
    assert_eq!(n, 101);
    assert!(log.get(tenant, late.id).await.unwrap().is_some());
    // Row purges take what partitions keep back, and then the week can go.
    log.purge_before(
        at_ms(start + 3 * week + 10),
        None,
        NonZeroU32::new(1000).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(parts.drop_before(cutoff, one).await.unwrap(), 1);
    stores.drop_schema().await.unwrap();
}

/// The node types of an `EXPLAIN (FORMAT JSON)` plan, with the relation each reads.
fn nodes(plan: &serde_json::Value, out: &mut Vec<(String, String)>) {
    if let Some(kind) = plan["Node Type"].as_str() {
        let rel = plan["Relation Name"].as_str().unwrap_or("").to_string();
        out.push((kind.to_string(), rel));
    }
    if let Some(children) = plan["Plans"].as_array() {
        for c in children {
            nodes(c, out);
        }
    }
}

#[tokio::test]
async fn queries_by_tenant_and_subject_read_each_partitions_indexes() {
    let Some(stores) = stores("credo_partitions_plan").await else {
        return;
    };
    let (log, parts) = (stores.audit_log(), stores.audit_partitions());
    let week = 7 * DAY_MS;
    let start = NOW_MS.div_euclid(week) * week;
    parts.create_ahead(at_ms(NOW_MS), WEEK, 3).await.unwrap();
    let tenants: Vec<_> = (0..40).map(|_| TenantId::new()).collect();
    let subjects: Vec<_> = (0..20).map(|_| UserId::new()).collect();
    let mut n = 0u64;
    for k in 0..4 {
        let mut batch = Vec::new();
        for i in 0..4000i64 {
            n += 1;
            let minted = start + k * week + i * 100_000;
            let mut e = event(tenants[(i % 40) as usize], minted, minted, n);
            e.subject_user_id = Some(subjects[(i % 20) as usize]);
            batch.push(e);
        }
        log.append_batch(&batch).await.unwrap();
    }
    sqlx::query("ANALYZE audit_events")
        .execute(stores.pool())
        .await
        .unwrap();
    // The statement the adapter runs, planned for a tenant and then a tenant and subject.
    for subject in [None, Some(subjects[3])] {
        let mut tx = stores.pool().begin().await.unwrap();
        // A custom plan, as the adapter's first executions get.
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await
            .unwrap();
        let explain = format!("EXPLAIN (FORMAT JSON) {AUDIT_QUERY_SQL}");
        let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
            .bind(tenants[7].0)
            .bind(subject.map(|s: UserId| s.0))
            .bind(None::<&str>)
            .bind(None::<&str>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .bind(None::<chrono::DateTime<chrono::Utc>>)
            .bind(None::<uuid::Uuid>)
            .bind(51i64)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let mut found = Vec::new();
        nodes(&plan[0]["Plan"], &mut found);
        let scans: Vec<_> = found
            .iter()
            .filter(|(_, rel)| rel.starts_with("audit_events_p"))
            .collect();
        assert_eq!(scans.len(), 4, "one scan per partition: {found:?}");
        assert!(
            scans.iter().all(|(kind, _)| kind.starts_with("Index")),
            "every partition is read by an index for {subject:?}: {found:?}"
        );
    }
    stores.drop_schema().await.unwrap();
}
