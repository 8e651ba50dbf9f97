//! The partitioned audit log (PostgreSQL), against the unpartitioned one of schema version 7,
//! in one run on one server:
//!
//! - **retention**: 10,000,000 events past retention removed by dropping their ten weekly
//!   partitions, against the batched `DELETE` of `purge_before` (the maintenance job's default
//!   batch, without its pause) on the same rows in an unpartitioned log; time and WAL written;
//! - **inserts**: `append_batch` of 1,000 events per call into each log, holding those rows.
//!
//! Needs `CREDO_TEST_POSTGRES_URL`. `CREDO_BENCH_PARTITION_ROWS` sets the row count;
//! `CREDO_BENCH_QUICK=1` uses 1,000,000; a smoke run (`credo_bench::smoke`) 20,000, and writes
//! no report. Not a criterion group (one retention run is the measurement): prints its own
//! table and writes `target/bench/extra/audit_partitions.json`.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_pipeline::MaintenanceConfig;
use credo_ports::{AuditCategory, AuditEvent, AuditLog, EventId, SystemClock, TenantId, Timestamp};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

const NAME: &str = "audit/partitions";
const DAY_MS: i64 = 86_400_000;
const WEEKS: i64 = 10;
/// Thursday 2020-01-02: weeks counted from the epoch start on Thursdays.
const BASE_MS: i64 = 18_263 * DAY_MS;
const UNPARTITION: &str =
    include_str!("../../adapters-postgres/migrations/0008_audit_partitions.down.sql");

async fn open(url: &str, name: &str) -> PgStores {
    let mut c = PgConfig::new(url);
    c.schema = Some(format!("credo_bench_{name}_{}", std::process::id()));
    // Filling millions of rows is one long statement.
    c.statement_timeout = Duration::from_secs(3_600);
    let pg = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
    pg.drop_schema().await.unwrap();
    pg.migrate().await.unwrap();
    pg
}

/// `rows` events minted evenly over the ten weeks, filled by the server.
async fn fill(pg: &PgStores, rows: i64) -> Duration {
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO audit_events (id, tenant_id, occurred_at, category, action, actor,
                                   subject_user_id, decision, request_id, metadata)
         SELECT (lpad(to_hex(ms), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0') || '8'
                 || lpad(to_hex(g), 15, '0'))::uuid,
                ('00000000-0000-4000-8000-' || lpad(to_hex(g % 100), 12, '0'))::uuid,
                to_timestamp(ms / 1000.0),
                (ARRAY['compliance', 'security', 'operations'])[1 + g % 3],
                'auth.login_succeeded', 'client-1',
                ('00000000-0000-4000-9000-' || lpad(to_hex(g % 10000), 12, '0'))::uuid,
                'allow', 'req-' || g, jsonb_build_object('n', g)
         FROM generate_series(0, $3 - 1) AS g,
              LATERAL (SELECT $1::bigint + g * $2::bigint / $3::bigint AS ms) AS t",
    )
    .bind(BASE_MS)
    .bind(WEEKS * 7 * DAY_MS)
    .bind(rows)
    .execute(pg.pool())
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE audit_events")
        .execute(pg.pool())
        .await
        .unwrap();
    started.elapsed()
}

async fn wal(pg: &PgStores) -> i64 {
    sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
        .fetch_one(pg.pool())
        .await
        .unwrap()
}

/// Bytes on disk of the log, its indexes and TOAST, over every partition.
async fn log_bytes(pg: &PgStores) -> i64 {
    sqlx::query_scalar(
        "SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits
         WHERE inhparent = 'audit_events'::regclass",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap()
}

async fn count(pg: &PgStores) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_events")
        .fetch_one(pg.pool())
        .await
        .unwrap()
}

/// `batches` calls of 1,000 new events minted in week 5; rows per second.
async fn inserts(log: &dyn AuditLog, batches: usize, round: u64) -> f64 {
    let tenant = TenantId::new();
    let mut all = Vec::new();
    for b in 0..batches {
        let events: Vec<_> = (0..1_000u64)
            .map(|i| {
                let n = (round << 40) | ((b as u64) << 16) | i;
                let ms = BASE_MS + 5 * 7 * DAY_MS + (n % 86_400_000) as i64;
                let mut random = [0u8; 10];
                random[2..].copy_from_slice(&n.to_be_bytes());
                let mut e = AuditEvent::new(
                    tenant,
                    Timestamp::from_micros(ms * 1000),
                    AuditCategory::Security,
                    "auth.login_succeeded",
                );
                e.id = EventId::from_uuid(
                    uuid::Builder::from_unix_timestamp_millis(ms as u64, &random).into_uuid(),
                );
                e.actor = Some("client-1".into());
                e.metadata.insert("n".into(), serde_json::json!(n));
                e
            })
            .collect();
        all.push(events);
    }
    let started = Instant::now();
    for events in &all {
        assert_eq!(log.append_batch(events).await.unwrap().inserted, 1_000);
    }
    (batches * 1_000) as f64 / started.elapsed().as_secs_f64()
}

fn mb(bytes: i64) -> String {
    format!("{:.0} MB", bytes as f64 / 1e6)
}

fn main() {
    if !credo_bench::selected(NAME) {
        return;
    }
    let Some(url) = credo_testkit::required("CREDO_TEST_POSTGRES_URL") else {
        return;
    };
    let (quick, smoke) = (credo_bench::quick(), credo_bench::smoke());
    let rows: i64 = std::env::var("CREDO_BENCH_PARTITION_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(match (smoke, quick) {
            (true, _) => 20_000,
            (_, true) => 1_000_000,
            _ => 10_000_000,
        });
    let insert_batches = if smoke { 2 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let parted = open(&url, "parted").await;
        let flat = open(&url, "flat").await;
        sqlx::raw_sql(UNPARTITION).execute(flat.pool()).await.unwrap();
        let week = NonZeroU32::new(7).unwrap();
        let made = parted
            .audit_partitions()
            .create_ahead(Timestamp::from_micros(BASE_MS * 1000), week, WEEKS as u32 - 1)
            .await
            .unwrap();
        assert_eq!(made, WEEKS as u32);
        let fill_parted = fill(&parted, rows).await;
        let bytes_per_event = log_bytes(&parted).await as f64 / rows as f64;
        let fill_flat = fill(&flat, rows).await;
        println!(
            "filled {rows} events: partitioned {:.1} s, unpartitioned {:.1} s; {bytes_per_event:.0} bytes per event on disk with its indexes",
            fill_parted.as_secs_f64(),
            fill_flat.as_secs_f64()
        );

        // Inserts, alternating logs so that neither has the warmer cache throughout.
        let (mut into_parted, mut into_flat) = (Vec::new(), Vec::new());
        for round in 0..2 {
            into_parted.push(inserts(&*parted.audit_log(), insert_batches, round * 2).await);
            into_flat.push(inserts(&*flat.audit_log(), insert_batches, round * 2 + 1).await);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (ins_parted, ins_flat) = (mean(&into_parted), mean(&into_flat));
        let total = count(&parted).await;
        assert_eq!(total, count(&flat).await);

        let cutoff = Timestamp::from_micros((BASE_MS + WEEKS * 7 * DAY_MS) * 1000);
        let wal0 = wal(&parted).await;
        let started = Instant::now();
        let dropped = parted
            .audit_partitions()
            .drop_before(cutoff, NonZeroU32::new(1_000).unwrap())
            .await
            .unwrap();
        let drop_time = started.elapsed();
        let drop_wal = wal(&parted).await - wal0;
        assert_eq!(dropped, WEEKS as u64);
        assert_eq!(count(&parted).await, 0);

        let batch = MaintenanceConfig::default().batch;
        let log = flat.audit_log();
        let wal0 = wal(&flat).await;
        let started = Instant::now();
        let (mut deleted, mut statements) = (0u64, 0u64);
        loop {
            let n = log.purge_before(cutoff, None, batch).await.unwrap();
            deleted += n;
            statements += 1;
            if n < u64::from(batch.get()) {
                break;
            }
        }
        let delete_time = started.elapsed();
        let delete_wal = wal(&flat).await - wal0;
        assert_eq!(deleted as i64, total);
        let with_pause =
            delete_time + MaintenanceConfig::default().pause * (statements.saturating_sub(1) as u32);
        parted.drop_schema().await.unwrap();
        flat.drop_schema().await.unwrap();

        let speedup = delete_time.as_secs_f64() / drop_time.as_secs_f64();
        println!("\n{NAME}: {total} events past retention ({rows} filled, the rest inserted)");
        println!("| retention | time | rows/s | WAL written |");
        println!("|---|---|---|---|");
        println!(
            "| drop {dropped} weekly partitions | {:.3} s | {:.0} | {} |",
            drop_time.as_secs_f64(),
            total as f64 / drop_time.as_secs_f64(),
            mb(drop_wal)
        );
        println!(
            "| batched DELETE, {statements} statements of {batch} (no pause) | {:.1} s | {:.0} | {} |",
            delete_time.as_secs_f64(),
            total as f64 / delete_time.as_secs_f64(),
            mb(delete_wal)
        );
        println!(
            "drop is {speedup:.0}× faster; the maintenance job, pausing {} ms between batches, would take {:.1} h to delete them",
            MaintenanceConfig::default().pause.as_millis(),
            with_pause.as_secs_f64() / 3600.0
        );
        println!(
            "| inserts (append_batch, 1,000 per call) | partitioned | unpartitioned | ratio |\n|---|---|---|---|\n| rows/s into a log of {rows} | {ins_parted:.0} | {ins_flat:.0} | {:.2}× |",
            ins_parted / ins_flat
        );
        if smoke {
            return;
        }
        let extra =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench/extra");
        std::fs::create_dir_all(&extra).unwrap();
        let row = serde_json::json!({
            "operation": NAME,
            "rows": total,
            "bytes_per_event": bytes_per_event,
            "partitions_dropped": dropped,
            "drop_seconds": drop_time.as_secs_f64(),
            "drop_wal_bytes": drop_wal,
            "delete_seconds": delete_time.as_secs_f64(),
            "delete_statements": statements,
            "delete_batch": batch.get(),
            "delete_wal_bytes": delete_wal,
            "delete_with_pause_seconds": with_pause.as_secs_f64(),
            "insert_rows_per_s_partitioned": ins_parted,
            "insert_rows_per_s_unpartitioned": ins_flat,
            "insert_ratio": ins_parted / ins_flat,
        });
        std::fs::write(
            extra.join("audit_partitions.json"),
            serde_json::to_string_pretty(&row).unwrap(),
        )
        .unwrap();
    });
}
