//! `credo-admin`, run as the operator runs it: the built binary in a subprocess, configured
//! through `CREDO_*` variables only. The in-memory default needs no server; the PostgreSQL
//! case (feature `postgres`) sets up a dead letter in a schema of its own and walks it
//! through list, show and requeue.

#[cfg(feature = "postgres")]
mod support;

use serde_json::Value;
use std::process::Command;

/// What one run of the binary gave.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs `credo-admin args` with exactly `env` (nothing inherited: the test's own
/// `CREDO_TEST_*` or `DATABASE_URL` must not configure it).
fn admin(env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_credo-admin"))
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("running credo-admin");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn outbox_status_on_the_in_memory_default() {
    let run = admin(&[], &["outbox", "status", "--json"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["depth"], 0);
    assert_eq!(json["dead_letters"], 0);
    assert_eq!(json["oldest_pending_age_seconds"], Value::Null);
    // Text too.
    let run = admin(&[], &["outbox", "status"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("pending:"), "{}", run.stdout);
}

#[test]
fn readiness_on_the_in_memory_default() {
    let run = admin(&[], &["--json", "readiness"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let json = run.json();
    assert_eq!(json["status"], "ready");
    assert_eq!(json["checks"]["memory"], "ok");
    // Nothing runs in credo-admin to answer for a relay.
    assert!(json["checks"].get("relay").is_none(), "{json}");
}

#[test]
fn every_help_has_an_example() {
    let commands: &[&[&str]] = &[
        &[],
        &["outbox"],
        &["outbox", "status"],
        &["dead-letters"],
        &["dead-letters", "list"],
        &["dead-letters", "show"],
        &["dead-letters", "requeue"],
        &["maintenance"],
        &["maintenance", "run"],
        &["readiness"],
        &["migrations"],
        &["migrations", "status"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let run = admin(&[], &args);
        assert_eq!(run.code, Some(0), "{args:?}: {}", run.stderr);
        assert!(run.stdout.contains("Example"), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn a_bad_event_id_is_refused_clearly() {
    let run = admin(&[], &["dead-letters", "show", "not-a-uuid"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("\"not-a-uuid\" is not an event id"),
        "{}",
        run.stderr
    );
    // Well-formed, but no dead letter.
    let id = "0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d";
    let run = admin(&[], &["dead-letters", "show", id]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("error: no dead letter with event id {id}")),
        "{}",
        run.stderr
    );
    let run = admin(&[], &["--json", "dead-letters", "requeue", id]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(run.json()["requeued"], 0);
    assert!(
        run.stderr.contains("is not a dead letter"),
        "{}",
        run.stderr
    );
    let run = admin(&[], &["dead-letters", "list", "--after", "yesterday"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("is not a cursor"), "{}", run.stderr);
}

#[test]
fn a_bad_setting_is_named() {
    let run = admin(&[("CREDO_RELAY_BATCH", "many")], &["outbox", "status"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("relay.batch (CREDO_RELAY_BATCH)"),
        "{}",
        run.stderr
    );
    let run = admin(&[("CREDO_POSTGRES_URLL", "postgres://x")], &["readiness"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("CREDO_POSTGRES_URLL"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn maintenance_and_migrations_on_the_in_memory_default() {
    let run = admin(&[], &["--json", "maintenance", "run"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let jobs = run.json()["jobs"].as_array().cloned().unwrap();
    assert_eq!(jobs.len(), 6, "{jobs:?}");
    assert!(jobs.iter().all(|j| j["outcome"] == "done"), "{jobs:?}");
    let run = admin(
        &[("CREDO_MAINTENANCE_ENABLED", "false")],
        &["--json", "maintenance", "run"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json()["enabled"], false);

    let run = admin(&[], &["--json", "migrations", "status"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json()["migrations"], serde_json::json!([]));
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::{admin, support};

    use credo_storage::postgres::{PgConfig, PgStores};
    use credo_storage::{AuditCategory, AuditEvent, Clock, Disposition, SystemClock, TenantId};
    use credo_testkit::{required, unique_name};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_letter_is_listed_shown_and_requeued() {
        let Some(url) = required("CREDO_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = unique_name("credo_admin");
        let mut c = PgConfig::new(&url);
        c.schema = Some(schema.clone());
        let pg = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
        pg.migrate().await.unwrap();

        // A dead letter, as a relay leaves one: recorded, claimed, rejected for good.
        let mut event = AuditEvent::new(
            TenantId::new(),
            SystemClock.now(),
            AuditCategory::Security,
            "login.failed",
        );
        event.actor = Some("admin-test".into());
        let id = event.id;
        pg.audit().record(event).await.unwrap();
        let outbox = pg.outbox();
        let claim = outbox.claim(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claim.records.len(), 1);
        assert!(
            outbox
                .reject(
                    claim.token,
                    id,
                    "refused by the test sink",
                    Disposition::SetAside
                )
                .await
                .unwrap()
        );
        pg.close().await;

        let id = id.to_string();
        let env = [
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_CONSENTS", "postgres"),
            ("CREDO_BACKENDS_AUDIT", "postgres"),
            ("CREDO_POSTGRES_URL", url.as_str()),
            ("CREDO_POSTGRES_SCHEMA", schema.as_str()),
        ];

        let run = admin(&env, &["--json", "outbox", "status"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["depth"], 0);
        assert_eq!(run.json()["dead_letters"], 1);

        let run = admin(&env, &["--json", "dead-letters", "list"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        let listed = json["dead_letters"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{json}");
        assert_eq!(listed[0]["event_id"], id.as_str());
        assert_eq!(listed[0]["event_type"], "login.failed");
        assert_eq!(listed[0]["reason"], "refused by the test sink");
        assert_eq!(listed[0]["failures"], 1);
        assert_eq!(json["next"], serde_json::Value::Null);

        let run = admin(&env, &["--json", "dead-letters", "show", &id]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        let payload: serde_json::Value =
            serde_json::from_str(json["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["schema_version"], 1);
        assert_eq!(payload["event"]["action"], "login.failed");
        assert_eq!(payload["event"]["actor"], "admin-test");
        let run = admin(&env, &["dead-letters", "show", &id]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("admin-test"), "{}", run.stdout);

        let run = admin(&env, &["--json", "dead-letters", "requeue", &id]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["requeued"], 1);
        // Nothing left to re-queue.
        let run = admin(&env, &["--json", "dead-letters", "requeue", &id]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.json()["not_dead_letters"][0], id.as_str());

        // Maintenance never purges a pending row; no relay ran to publish it.
        let run = admin(&env, &["--json", "maintenance", "run"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let run = admin(&env, &["--json", "outbox", "status"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        assert_eq!(json["depth"], 1, "{json}");
        assert_eq!(json["dead_letters"], 0, "{json}");
        assert!(json["oldest_pending_age_seconds"].is_number(), "{json}");

        let run = admin(&env, &["--json", "migrations", "status"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        assert_eq!(json["backend"], "postgres");
        assert_eq!(json["up_to_date"], true, "{json}");
        let migrations = json["migrations"].as_array().unwrap();
        assert!(migrations.len() >= 6, "{json}");
        assert!(
            migrations.iter().all(|m| m["status"] == "applied"),
            "{json}"
        );

        let run = admin(&env, &["--json", "readiness"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["checks"]["database"], "ok");

        support::drop_schemas(&url, &[&schema]).await;
    }

    /// A schema nothing migrated: every migration is pending, and credo-admin does not
    /// migrate it even when the service's configuration says `migrate = true`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_status_of_an_empty_schema_is_pending() {
        let Some(url) = required("CREDO_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = unique_name("credo_admin");
        let env = [
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_CONSENTS", "postgres"),
            ("CREDO_BACKENDS_AUDIT", "postgres"),
            ("CREDO_POSTGRES_URL", url.as_str()),
            ("CREDO_POSTGRES_SCHEMA", schema.as_str()),
            ("CREDO_POSTGRES_MIGRATE", "true"),
        ];
        let run = admin(&env, &["--json", "migrations", "status"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        assert_eq!(json["up_to_date"], false, "{json}");
        assert!(
            json["migrations"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["status"] == "pending"),
            "{json}"
        );
    }

    /// With the Kafka sink, readiness checks the broker through an admin client only: no
    /// consumer joins the service's group, and no relay or consumer check is reported.
    #[cfg(feature = "kafka")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_with_kafka_checks_the_broker_only() {
        let (Some(url), Some(brokers)) = (
            required("CREDO_TEST_POSTGRES_URL"),
            required("CREDO_TEST_KAFKA_BROKERS"),
        ) else {
            return;
        };
        let schema = unique_name("credo_admin");
        let topic = unique_name("credo_admin");
        let env = [
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_CONSENTS", "postgres"),
            ("CREDO_BACKENDS_AUDIT", "postgres"),
            ("CREDO_BACKENDS_AUDIT_SINK", "kafka"),
            ("CREDO_POSTGRES_URL", url.as_str()),
            ("CREDO_POSTGRES_SCHEMA", schema.as_str()),
            ("CREDO_KAFKA_BROKERS", brokers.as_str()),
            ("CREDO_KAFKA_TOPIC", topic.as_str()),
            ("CREDO_KAFKA_GROUP_ID", topic.as_str()),
        ];
        let run = admin(&env, &["--json", "readiness"]);
        let json = run.json();
        let checks = &json["checks"];
        assert!(checks.get("kafka").is_some(), "{json}\n{}", run.stderr);
        assert!(checks.get("audit-consumer").is_none(), "{json}");
        assert!(checks.get("relay").is_none(), "{json}");
    }
}
