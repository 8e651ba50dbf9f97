//! Benchmarks of credo-storage (see `benches/`), run by `cargo xtask bench`.
//!
//! Every benchmark group holds our operation as `ours` and its baseline as `baseline` (a raw
//! driver call or the best peer crate doing the same work), measured in the same process and
//! run, so the ratio means something on a shared, noisy machine. `cargo xtask bench` reads
//! criterion's estimates and prints one table of ratios.

use credo_ports::AuditEvent;

/// Whether this is a smoke run: every benchmark runs once on small inputs, to prove it still
/// builds and works, not to measure. True when criterion runs in test mode (the binary got no
/// `--bench`, as under `cargo test --bench '*'`, or got `--test`) or when
/// `CREDO_BENCH_SMOKE=1` (`cargo xtask test`, `cargo xtask bench --smoke`).
#[must_use]
pub fn smoke() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    // Criterion's own rule for test mode, so set-up sizes follow what criterion will run.
    std::env::var("CREDO_BENCH_SMOKE").is_ok_and(|v| v == "1") || !flag("--bench") || flag("--test")
}

/// Whether `CREDO_BENCH_QUICK=1` (`cargo xtask bench --quick`): shorter heavy set-ups.
#[must_use]
pub fn quick() -> bool {
    std::env::var("CREDO_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// `full`, or `small` in a [`smoke`] run.
#[must_use]
pub fn sized<T>(full: T, small: T) -> T {
    if smoke() { small } else { full }
}

/// The function name of our side of a group.
pub const OURS: &str = "ours";
/// The function name of the baseline side of a group.
pub const BASELINE: &str = "baseline";

/// The raw array insert baselines use: the columns a typical event fills, bound as arrays
/// into one `INSERT … SELECT FROM UNNEST` with no validation. With `skip_existing`, ids
/// already stored for the tenant are skipped (`ON CONFLICT DO NOTHING` on the key), as an
/// idempotent consumer needs. Returns the rows inserted.
pub async fn insert_events_raw(
    pool: &sqlx::PgPool,
    events: &[AuditEvent],
    skip_existing: bool,
) -> u64 {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut categories = Vec::with_capacity(n);
    let mut actions = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut subjects = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    for e in events {
        ids.push(e.id.0);
        tenants.push(e.tenant_id.0);
        at.push(e.occurred_at.as_micros());
        categories.push(e.category.as_str());
        actions.push(e.action.as_str());
        actors.push(e.actor.as_deref());
        subjects.push(e.subject_user_id.map(|u| u.0));
        metadata.push(serde_json::Value::Object(e.metadata.clone()));
    }
    macro_rules! insert {
        () => {
            "INSERT INTO audit_events (id, tenant_id, occurred_at, category, action, actor, subject_user_id, metadata)
             SELECT id, tenant, to_timestamp(at / 1e6), category, action, actor, subject, metadata
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::jsonb[])
                  AS b(id, tenant, at, category, action, actor, subject, metadata)"
        };
    }
    const INSERT: &str = insert!();
    const SKIPPING: &str = concat!(insert!(), " ON CONFLICT (tenant_id, id) DO NOTHING");
    sqlx::query(if skip_existing { SKIPPING } else { INSERT })
        .bind(ids)
        .bind(tenants)
        .bind(at)
        .bind(categories)
        .bind(actions)
        .bind(actors)
        .bind(subjects)
        .bind(metadata)
        .execute(pool)
        .await
        .expect("raw array insert")
        .rows_affected()
}

/// Whether a bench that is not a criterion group runs: `cargo bench` passes criterion's flags
/// to every bench, so the first free word that is not a number (a flag's value, as in
/// `--warm-up-time 0.4`) is the filter, and the bench runs when there is none or `name`
/// contains it.
#[must_use]
pub fn selected(name: &str) -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut words = args.iter().filter(|a| !a.starts_with('-'));
    match words.find(|a| a.parse::<f64>().is_err()) {
        None => true,
        Some(f) => name.contains(f.as_str()),
    }
}
