//! The runbooks of `docs/runbooks/` cannot rot silently: every page has its four parts and is
//! listed in the index, every runbook an alert rule names exists, and every command block
//! marked `sh runbook` runs, page by page in one bash session each (`set -euo pipefail`),
//! against the servers of `cargo xtask services` with `credo-admin` on the `PATH` and the
//! configuration a service of that deployment would have: PostgreSQL as a login of the
//! application role (`PgStores::grant_app_role`) and Redis as the adapter's ACL user
//! (`credo_adapters_redis::acl`), so a step that only an owner or admin may run fails.

mod support;

use credo_storage::postgres::{PgConfig, PgStores};
use credo_storage::{AuditCategory, AuditEvent, Clock, Disposition, SystemClock, TenantId};
use credo_testkit::unique_name;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn runbooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/runbooks")
}

/// Every runbook page (not the index), sorted, with its text.
fn pages() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(runbooks_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| !p.ends_with("README.md"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The blocks fenced with the info string `sh runbook`, in order.
fn runbook_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == "```sh runbook" => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed runbook block");
    blocks
}

#[test]
fn every_page_has_its_parts_and_every_alert_its_page() {
    let pages = pages();
    let names: BTreeSet<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    // The conditions the seeds name, and the maintenance alerts.
    for wanted in [
        "kafka-outbox-backlog.md",
        "database-connections.md",
        "database-recovery.md",
        "redis-loss.md",
        "dead-letters.md",
        "rate-limits.md",
        "migration-rollback.md",
        "maintenance.md",
    ] {
        assert!(names.contains(wanted), "no runbook {wanted}");
    }
    let index = std::fs::read_to_string(runbooks_dir().join("README.md")).unwrap();
    for (name, text) in &pages {
        for part in [
            "## Symptoms",
            "## Diagnosis",
            "## Remedy",
            "## Verification",
        ] {
            assert!(text.contains(part), "{name}: no {part:?}");
        }
        // redis-cli exits 0 on an error reply (a NOPERM too) unless given -e: without it,
        // neither `set -e` nor this test could see a refused step.
        for line in runbook_blocks(text).iter().flat_map(|b| b.lines()) {
            assert!(
                !line.contains("redis-cli") || line.contains("redis-cli -e "),
                "{name}: `{line}` lacks redis-cli's -e"
            );
        }
        assert!(
            !runbook_blocks(text).is_empty(),
            "{name}: no executed block"
        );
        assert!(
            index.contains(&format!("({name})")),
            "the index lacks {name}"
        );
    }
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/prometheus/credo-storage.rules.yml"),
    )
    .unwrap();
    let named: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook: docs/runbooks/"))
        .collect();
    assert!(named.len() >= 5, "{named:?}");
    for page in named {
        assert!(
            names.contains(page),
            "an alert names docs/runbooks/{page}, which is missing"
        );
    }
}

#[test]
fn blocks_are_read_in_order_and_only_when_marked() {
    let text = "a\n```sh runbook\none\n```\n```sh\nnot me\n```\n```sh runbook\ntwo\nthree\n```\n";
    assert_eq!(runbook_blocks(text), ["one\n", "two\nthree\n"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runbook_block_runs_against_the_local_servers() {
    let Some((pg, redis, kafka)) = support::servers() else {
        return;
    };
    let schema = unique_name("credo_runbooks");
    let prefix = unique_name("credo_runbooks");
    let topic = unique_name("credo.runbooks");
    // The deployment's database, migrated as the service would, with one dead letter for
    // the dead-letter page to find.
    let mut c = PgConfig::new(&pg);
    c.schema = Some(schema.clone());
    let stores = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
    stores.migrate().await.unwrap();
    let event = AuditEvent::new(
        TenantId::new(),
        SystemClock.now(),
        AuditCategory::Security,
        "auth.login",
    );
    let event_id = event.id.to_string();
    stores.audit().record(event.clone()).await.unwrap();
    let outbox = stores.outbox();
    let claim = outbox.claim(10, Duration::from_secs(60)).await.unwrap();
    assert!(
        outbox
            .reject(claim.token, event.id, "too large", Disposition::SetAside)
            .await
            .unwrap()
    );
    // PostgreSQL as production runs the service: a login role with the application role's
    // grants (`PgStores::grant_app_role`), owning nothing.
    let pg_role = unique_name("credo_runbooks_svc");
    let pg_password = unique_name("pw");
    stores
        .create_app_login(&pg_role, &pg_password)
        .await
        .unwrap();
    let pg_as_service = credo_testkit::url_as(&pg, &pg_role, &pg_password);
    // The topics, as `ensure_topics` makes them at the service's start.
    let mut k = credo_storage::kafka::KafkaConfig::new(&kafka).single_node_dev();
    k.topic = topic.clone();
    k.dlq_topic = format!("{topic}.dlq");
    credo_storage::kafka::ensure_topics(&k).await.unwrap();

    // Redis as production runs the service: the adapter's ACL user
    // (`credo_adapters_redis::acl`), so a step that needs more than that rule fails here.
    let redis_user = format!("credo_runbooks_{}", std::process::id());
    let redis_password = unique_name("pw");
    use credo_storage::redis::acl;
    acl::set_user(
        &redis,
        &redis_user,
        &acl::rules(&redis_password, &prefix).unwrap(),
    )
    .await
    .unwrap();
    let redis_as_service = credo_testkit::url_as(&redis, &redis_user, &redis_password);

    let admin = Path::new(env!("CARGO_BIN_EXE_credo-admin"));
    let path = format!(
        "{}:{}",
        admin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        ("CREDO_BACKENDS_USERS", "postgres".into()),
        ("CREDO_BACKENDS_CONSENTS", "postgres".into()),
        ("CREDO_BACKENDS_AUDIT", "postgres".into()),
        ("CREDO_BACKENDS_SESSIONS", "redis".into()),
        ("CREDO_BACKENDS_RATE_LIMITS", "redis".into()),
        ("CREDO_BACKENDS_AUDIT_SINK", "kafka".into()),
        ("CREDO_POSTGRES_URL", pg_as_service),
        ("CREDO_POSTGRES_SCHEMA", schema.clone()),
        ("PGOPTIONS", format!("-c search_path={schema}")),
        ("CREDO_REDIS_URL", redis_as_service),
        ("CREDO_REDIS_KEY_PREFIX", prefix.clone()),
        ("CREDO_KAFKA_BROKERS", kafka.clone()),
        ("CREDO_KAFKA_TOPIC", topic.clone()),
        ("CREDO_KAFKA_DLQ_TOPIC", format!("{topic}.dlq")),
        ("CREDO_KAFKA_REPLICATION", "1".into()),
        ("CREDO_KAFKA_MIN_INSYNC_REPLICAS", "1".into()),
        ("EVENT_ID", event_id),
    ];
    let mut ran = Vec::new();
    let mut failed = None;
    for (name, text) in pages() {
        let script = format!("set -euo pipefail\n{}", runbook_blocks(&text).join("\n"));
        let started = Instant::now();
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()),
            )
            .output()
            .unwrap();
        if !out.status.success() {
            failed = Some(format!(
                "{name}: a runbook block failed ({}):\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
            break;
        }
        ran.push(format!("{name} ({:.1?})", started.elapsed()));
    }
    acl::del_user(&redis, &redis_user).await.unwrap();
    stores.drop_login(&pg_role).await.unwrap();
    stores.close().await;
    support::drop_schemas(&pg, &[&schema]).await;
    if let Some(failure) = failed {
        panic!("{failure}");
    }
    println!("runbook blocks run: {}", ran.join(", "));
}
