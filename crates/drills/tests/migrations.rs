//! Migration rollback drill (the runbook's "migration rollback"): on a cluster of its own,
//! every migration is rolled back and applied again, one version at a time from the newest,
//! and the schema (`pg_dump --schema-only`) is the same after each round trip; then all the
//! way down to an empty schema and up again. A down script that forgets an index, a column
//! or a constraint fails here.

use credo_adapters_postgres::MIGRATOR;
use credo_testkit::PrivatePostgres;
use std::process::Command;
use std::time::Instant;

fn schema_dump(pg: &PrivatePostgres) -> String {
    let bin = credo_testkit::system::pg_bin(None).expect("PostgreSQL binaries");
    let out = Command::new(bin.join("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "-h",
            "127.0.0.1",
            "-U",
            "credo",
        ])
        .args(["-p", &pg.port().to_string(), "postgres"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump (15.14 and later) fences its output with a random `\restrict` key per run.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first lines that differ, position by position, for a readable failure.
fn diff(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    let mut out = Vec::new();
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied(), b.get(i).copied());
        if x != y {
            out.push(format!("line {}: {x:?} became {y:?}", i + 1));
        }
        if out.len() == 12 {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_migration_rolls_back_and_reapplies_to_the_same_schema() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let started = Instant::now();
    MIGRATOR.run(&pool).await.unwrap();
    let full = schema_dump(&pg);
    let versions: Vec<i64> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    assert!(versions.len() >= 6, "{versions:?}");
    let mut trips = 0;
    for (i, &version) in versions.iter().enumerate().rev() {
        let below = if i == 0 { 0 } else { versions[i - 1] };
        MIGRATOR
            .undo(&pool, below)
            .await
            .unwrap_or_else(|e| panic!("down from {version}: {e}"));
        if below > 0 {
            assert_ne!(
                schema_dump(&pg),
                full,
                "rolling back {version} changed nothing"
            );
        }
        MIGRATOR
            .run(&pool)
            .await
            .unwrap_or_else(|e| panic!("up to {version}: {e}"));
        let again = schema_dump(&pg);
        assert!(
            again == full,
            "after down and up through {version}: {:#?}",
            diff(&full, &again)
        );
        trips += 1;
    }
    // All the way down: nothing of ours is left but the (empty) migrations table.
    MIGRATOR.undo(&pool, 0).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [MIGRATOR.table_name.to_string()],
        "left after undoing everything"
    );
    MIGRATOR.run(&pool).await.unwrap();
    let rebuilt = schema_dump(&pg);
    assert!(
        rebuilt == full,
        "down to 0 and up: {:#?}",
        diff(&full, &rebuilt)
    );
    pool.close().await;
    println!(
        "migrations drill: {} migrations, {trips} single-version round trips and one full one, schema identical each time ({:.2?})",
        versions.len(),
        started.elapsed()
    );
}
