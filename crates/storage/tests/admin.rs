//! `credo-admin`, run as the operator runs it: the built binary in a subprocess, configured
//! through `CREDO_*` variables only. The in-memory default needs no server; the PostgreSQL
//! cases (feature `postgres`) set up a dead letter in a schema of their own and walk it
//! through list, show and requeue, and migrate a schema up, down and up again; the Kafka
//! cases (feature `kafka`) rebuild an audit log from its topic, walk a message of the
//! dead-letter topic through list, show and requeue, and purge that topic.

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
        &["dead-letters", "purge"],
        &["maintenance"],
        &["maintenance", "run"],
        &["readiness"],
        &["migrations"],
        &["migrations", "status"],
        &["migrations", "up"],
        &["migrations", "down"],
        &["audit"],
        &["audit", "rebuild"],
        &["kafka-dead-letters"],
        &["kafka-dead-letters", "list"],
        &["kafka-dead-letters", "show"],
        &["kafka-dead-letters", "requeue"],
        &["kafka-dead-letters", "purge"],
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

/// The new commands refuse, with exit 2 and what to set, what the in-memory default cannot
/// do; or, in a build without the cargo feature they need, name the feature.
#[test]
fn commands_the_configuration_cannot_run_are_refused() {
    let refused = |args: &[&str], configured: &str, feature: &str| {
        let run = admin(&[], args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        let want = if feature.is_empty() {
            configured.to_string()
        } else {
            format!("needs the `{feature}` cargo feature")
        };
        assert!(run.stderr.contains(&want), "{args:?}: {}", run.stderr);
    };
    let postgres = if cfg!(feature = "postgres") {
        ""
    } else {
        "postgres"
    };
    let kafka = if cfg!(feature = "kafka") { "" } else { "kafka" };
    refused(
        &["migrations", "down", "--to", "4", "--yes"],
        "no backend in use has migrations",
        postgres,
    );
    refused(
        &["audit", "rebuild"],
        "CREDO_BACKENDS_AUDIT_SINK=kafka",
        kafka,
    );
    refused(
        &["kafka-dead-letters", "list"],
        "CREDO_KAFKA_BROKERS",
        kafka,
    );
    let run = admin(&[], &["kafka-dead-letters", "show", "zero"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("is not a position"), "{}", run.stderr);
    if postgres.is_empty() {
        let run = admin(&[], &["--json", "migrations", "up"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["migrations"], serde_json::json!([]));
    } else {
        refused(&["migrations", "up"], "", postgres);
    }
}

/// `kafka-dead-letters purge`: malformed or conflicting arguments are refused by the parser,
/// and a well-formed purge without `--yes` says what it would delete; none of them reaches a
/// broker (the one configured does not resolve).
#[test]
fn a_kafka_purge_is_checked_before_any_broker_is_asked() {
    let usage = |env: &[(&str, &str)], args: &[&str], want: &str| {
        let run = admin(env, args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    };
    let purge = ["kafka-dead-letters", "purge"];
    let with = |rest: &[&'static str]| [&purge[..], rest].concat();
    usage(&[], &with(&["--yes"]), "--all");
    usage(
        &[],
        &with(&["--before", "zero", "--yes"]),
        "is not a position",
    );
    usage(
        &[],
        &with(&["--before", "0:-1", "--yes"]),
        "is not a position",
    );
    usage(&[], &with(&["--before", "0", "--yes"]), "is not a position");
    usage(
        &[],
        &with(&["--before", "0:5", "--all", "--yes"]),
        "cannot be used with",
    );
    let kafka = cfg!(feature = "kafka");
    let feature = "needs the `kafka` cargo feature";
    // Nothing configured: the brokers' setting is named.
    usage(
        &[],
        &with(&["--all", "--yes"]),
        if kafka {
            "CREDO_KAFKA_BROKERS"
        } else {
            feature
        },
    );
    let env = [("CREDO_KAFKA_BROKERS", "broker.invalid:9092")];
    usage(
        &env,
        &with(&["--before", "0:1", "0:2", "--yes"]),
        if kafka {
            "names partition 0 twice"
        } else {
            feature
        },
    );
    usage(
        &env,
        &with(&["--before", "0:18", "--before", "2:4"]),
        if kafka {
            "this would delete the messages below offset 18 of partition 0, below offset 4 of \
             partition 2 of credo.audit.events.dlq for good"
        } else {
            feature
        },
    );
    usage(
        &env,
        &with(&["--all"]),
        if kafka { "pass --yes" } else { feature },
    );
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

        // Purge: a pending row is not a dead letter and stays; set aside again, it goes for
        // good, and only with --yes.
        let run = admin(&env, &["--json", "dead-letters", "purge", "--yes", &id]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert_eq!(run.json()["purged"], 0);
        let pg = PgStores::connect(&c, Arc::new(SystemClock)).await.unwrap();
        let outbox = pg.outbox();
        let claim = outbox.claim(10, Duration::from_secs(60)).await.unwrap();
        assert_eq!(claim.records.len(), 1);
        let event_id = claim.records[0].message.id;
        assert!(
            outbox
                .reject(
                    claim.token,
                    event_id,
                    "still refused",
                    Disposition::SetAside
                )
                .await
                .unwrap()
        );
        pg.close().await;
        let run = admin(&env, &["dead-letters", "purge", &id]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("--yes"), "{}", run.stderr);
        let run = admin(&env, &["--json", "dead-letters", "purge", "--yes", &id]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["purged"], 1);
        let json = admin(&env, &["--json", "outbox", "status"]).json();
        assert_eq!(
            (json["depth"].as_u64(), json["dead_letters"].as_u64()),
            (Some(0), Some(0)),
            "{json}"
        );

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

#[cfg(feature = "postgres")]
mod migrations {
    use super::{Run, admin, support};
    use credo_testkit::{required, unique_name};

    fn statuses(run: &Run) -> Vec<(i64, String)> {
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        run.json()["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["version"].as_i64().unwrap(),
                    m["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Up from an empty schema, down by two versions (refused without `--yes`), up again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_go_up_down_and_up_again() {
        let Some(url) = required("CREDO_TEST_POSTGRES_URL") else {
            return;
        };
        let schema = unique_name("credo_admin_mig");
        let env = [
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_CONSENTS", "postgres"),
            ("CREDO_BACKENDS_AUDIT", "postgres"),
            ("CREDO_POSTGRES_URL", url.as_str()),
            ("CREDO_POSTGRES_SCHEMA", schema.as_str()),
        ];
        // Every embedded migration, pending on the empty schema: 1 to the latest.
        let embedded = statuses(&admin(&env, &["--json", "migrations", "status"]));
        let latest = embedded.len() as i64;
        assert!(latest >= 7, "{embedded:?}");
        let run = admin(&env, &["--json", "migrations", "up"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let applied = run.json()["applied"].clone();
        assert_eq!(
            applied,
            serde_json::json!((1..=latest).collect::<Vec<_>>()),
            "{}",
            run.stdout
        );
        let all = statuses(&admin(&env, &["--json", "migrations", "status"]));
        assert!(
            all.len() as i64 == latest && all.iter().all(|(_, s)| s == "applied"),
            "{all:?}"
        );

        // Nothing twice.
        let run = admin(&env, &["migrations", "up"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.contains("nothing to apply"), "{}", run.stdout);

        // Without --yes: says what it would do, does nothing. Down to two below the latest.
        let to = (latest - 2).to_string();
        let run = admin(&env, &["migrations", "down", "--to", &to]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("would roll back {latest} ("))
                && run.stderr.contains(&format!("{} (", latest - 1)),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("--yes"), "{}", run.stderr);
        let same = statuses(&admin(&env, &["--json", "migrations", "status"]));
        assert_eq!(same, all);

        let run = admin(
            &env,
            &["--json", "migrations", "down", "--to", &to, "--yes"],
        );
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            run.json()["reverted"],
            serde_json::json!([latest, latest - 1]),
            "{}",
            run.stdout
        );
        assert_eq!(run.json()["version"], latest - 2);
        let after = statuses(&admin(&env, &["--json", "migrations", "status"]));
        for (version, status) in &after {
            let want = if *version > latest - 2 {
                "pending"
            } else {
                "applied"
            };
            assert_eq!(status, want, "{after:?}");
        }

        let run = admin(&env, &["--json", "migrations", "up"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(
            run.json()["applied"],
            serde_json::json!([latest - 1, latest]),
            "{}",
            run.stdout
        );
        let again = statuses(&admin(&env, &["--json", "migrations", "status"]));
        assert!(again.iter().all(|(_, s)| s == "applied"), "{again:?}");

        support::drop_schemas(&url, &[&schema]).await;
    }

    /// The deployment of docs/security.md: the owner migrates and grants the application
    /// role (`postgres.app_role`); the service acts as that role (`postgres.role`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_up_grants_the_application_role_the_service_acts_as() {
        let Some(url) = required("CREDO_TEST_POSTGRES_URL") else {
            return;
        };
        use credo_storage::SystemClock;
        use credo_storage::postgres::{PgConfig, PgStores};
        use std::sync::Arc;
        let schema = unique_name("credo_admin_role");
        let role = unique_name("credo_app");
        let owner = PgStores::connect(&PgConfig::new(&url), Arc::new(SystemClock))
            .await
            .unwrap();
        owner.create_role_if_missing(&role).await.unwrap();
        let env = [
            ("CREDO_BACKENDS_USERS", "postgres"),
            ("CREDO_BACKENDS_CONSENTS", "postgres"),
            ("CREDO_BACKENDS_AUDIT", "postgres"),
            ("CREDO_POSTGRES_URL", url.as_str()),
            ("CREDO_POSTGRES_SCHEMA", schema.as_str()),
            ("CREDO_POSTGRES_APP_ROLE", role.as_str()),
        ];
        let run = admin(&env, &["--json", "migrations", "up"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["granted"], serde_json::json!(role));
        let may = |privilege: &'static str, table: &'static str| {
            let (role, schema, pool) = (role.clone(), schema.clone(), owner.pool().clone());
            async move {
                sqlx::query_scalar::<_, bool>("SELECT has_table_privilege($1, $2, $3)")
                    .bind(role)
                    .bind(format!("{schema}.{table}"))
                    .bind(privilege)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        assert!(may("INSERT", "audit_events").await);
        assert!(may("SELECT", "audit_events").await);
        assert!(!may("UPDATE", "audit_events").await);
        assert!(!may("DELETE", "audit_events").await);
        assert!(!may("TRUNCATE", "audit_events").await);
        assert!(may("UPDATE", "sessions").await);

        // The service's view, acting as the role: the outbox and readiness answer.
        let acting = [&env[..5], &[("CREDO_POSTGRES_ROLE", role.as_str())][..]].concat();
        let run = admin(&acting, &["--json", "outbox", "status"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let run = admin(&acting, &["readiness"]);
        assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
        support::drop_schemas(&url, &[&schema]).await;
        owner.drop_login(&role).await.unwrap();
    }
}

#[cfg(all(feature = "postgres", feature = "kafka"))]
mod kafka {
    use super::{admin, support};
    use credo_storage::kafka::{Delivered, KafkaConfig, KafkaSink, KafkaSource, ensure_topics};
    use credo_storage::pipeline::{AuditConsumer, ConsumerConfig, OutboxRelay, RelayConfig};
    use credo_storage::postgres::{PgConfig, PgStores};
    use credo_storage::{
        AuditCategory, AuditEvent, AuditQuery, Clock, EncodedEvent, SystemClock, TenantId,
    };
    use credo_testkit::{required, unique_name};
    use std::sync::Arc;
    use std::time::Duration;

    /// The `CREDO_*` variables of `c`, with the client settings the test broker needs.
    fn kafka_env(c: &KafkaConfig) -> Vec<(&'static str, String)> {
        vec![
            ("CREDO_BACKENDS_AUDIT_SINK", "kafka".into()),
            ("CREDO_KAFKA_BROKERS", c.brokers.clone()),
            ("CREDO_KAFKA_TOPIC", c.topic.clone()),
            ("CREDO_KAFKA_DLQ_TOPIC", c.dlq_topic.clone()),
            ("CREDO_KAFKA_GROUP_ID", c.group_id.clone()),
            ("CREDO_KAFKA_SESSION_TIMEOUT_MS", "6000".into()),
            ("CREDO_KAFKA_HEARTBEAT_INTERVAL_MS", "1000".into()),
            ("CREDO_KAFKA_MAX_POLL_INTERVAL_MS", "7000".into()),
            ("CREDO_KAFKA_FETCH_WAIT_MAX_MS", "10".into()),
            ("CREDO_KAFKA_REPLICATION", "1".into()),
            ("CREDO_KAFKA_MIN_INSYNC_REPLICAS", "1".into()),
        ]
    }

    fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    async fn topics(brokers: &str, prefix: &str) -> KafkaConfig {
        let name = unique_name(prefix);
        let mut c = KafkaConfig::new(brokers).single_node_dev();
        c.topic = name.clone();
        c.dlq_topic = format!("{name}.dlq");
        c.group_id = name;
        ensure_topics(&c).await.unwrap();
        c
    }

    /// Events recorded through the outbox and relayed to the topic; the log emptied; the
    /// rebuild materializes them all again, and a second rebuild finds them all present.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_audit_log_is_rebuilt_from_the_topic() {
        let Some((url, _, brokers)) = support::servers() else {
            return;
        };
        let schema = unique_name("credo_admin_rebuild");
        let mut pg_config = PgConfig::new(&url);
        pg_config.schema = Some(schema.clone());
        let pg = PgStores::connect(&pg_config, Arc::new(SystemClock))
            .await
            .unwrap();
        pg.migrate().await.unwrap();
        let kafka = topics(&brokers, "credo.admin.rebuild").await;

        let n = 50_u64;
        let tenant = TenantId::new();
        for i in 0..n {
            let mut e = AuditEvent::new(
                tenant,
                SystemClock.now(),
                AuditCategory::Security,
                "auth.login",
            );
            e.metadata.insert("n".into(), i.into());
            pg.audit().record(e).await.unwrap();
        }
        let relay = OutboxRelay::new(
            pg.outbox(),
            Arc::new(KafkaSink::new(&kafka).unwrap()),
            RelayConfig::default(),
        )
        .unwrap();
        assert_eq!(relay.drain().await.unwrap(), n);
        // The loss (no consumer ran either: the log holds nothing of the topic).
        sqlx::query("DELETE FROM audit_events")
            .execute(pg.pool())
            .await
            .unwrap();
        let log = pg.audit_log();
        assert_eq!(log.count(tenant, AuditQuery::default()).await.unwrap(), 0);

        let mut env = kafka_env(&kafka);
        env.extend([
            ("CREDO_BACKENDS_USERS", "postgres".into()),
            ("CREDO_BACKENDS_CONSENTS", "postgres".into()),
            ("CREDO_BACKENDS_AUDIT", "postgres".into()),
            ("CREDO_POSTGRES_URL", url.clone()),
            ("CREDO_POSTGRES_SCHEMA", schema.clone()),
        ]);
        let env = borrowed(&env);
        let run = admin(
            &env,
            &["--json", "audit", "rebuild", "--timeout-secs", "120"],
        );
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        let json = run.json();
        assert_eq!(json["caught_up"], true, "{json}");
        assert_eq!(json["consumed"], n, "{json}");
        assert_eq!(json["materialized"], n, "{json}");
        assert_eq!(json["duplicates"], 0, "{json}");
        let group = json["group"].as_str().unwrap();
        assert!(
            group.starts_with(&format!("{}.rebuild-", kafka.group_id)),
            "{json}"
        );
        assert_eq!(log.count(tenant, AuditQuery::default()).await.unwrap(), n);

        // Again, in a group of its own: every event is already there.
        let again = format!("{}.again", kafka.group_id);
        let run = admin(
            &env,
            &[
                "audit",
                "rebuild",
                "--group",
                &again,
                "--timeout-secs",
                "120",
            ],
        );
        assert_eq!(run.code, Some(0), "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains(&format!("duplicates:   {n}")),
            "{}",
            run.stdout
        );
        assert_eq!(log.count(tenant, AuditQuery::default()).await.unwrap(), n);

        // The service's own group is refused.
        let run = admin(&env, &["audit", "rebuild", "--group", &kafka.group_id]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        pg.drop_schema().await.unwrap();
    }

    /// A message the consumer set aside is listed, shown and re-published to the audit topic,
    /// where the consumer reads it again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kafka_dead_letter_is_listed_shown_and_requeued() {
        let Some(brokers) = required("CREDO_TEST_KAFKA_BROKERS") else {
            return;
        };
        let kafka = topics(&brokers, "credo.admin.dlq").await;
        let env = kafka_env(&kafka);
        let env = borrowed(&env);

        // Nothing set aside yet.
        let run = admin(&env, &["--json", "kafka-dead-letters", "list"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(run.json()["messages"], serde_json::json!([]));

        // A message that is not an envelope, with the headers of an event.
        let event = AuditEvent::new(
            TenantId::new(),
            SystemClock.now(),
            AuditCategory::Security,
            "auth.login",
        );
        let id = event.id.to_string();
        let mut bad = EncodedEvent::encode(&event);
        bad.payload = "not json".into();
        let sink = KafkaSink::new(&kafka).unwrap();
        let delivered = sink.publish_acked(&[bad]).await.unwrap().stored;
        assert_eq!(delivered.len(), 1);

        let log = credo_storage::inmemory::InMemoryStores::new(Arc::new(SystemClock)).audit_log();
        let source = KafkaSource::new(&kafka).unwrap();
        let handle = source.handle();
        let consumer =
            AuditConsumer::new(Arc::new(source), log, ConsumerConfig::default()).unwrap();
        let stats = consumer.handle();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(consumer.run(stopped));
        assert!(
            handle.wait_for(&delivered, Duration::from_secs(60)).await,
            "not handled within 60 s"
        );
        assert_eq!(stats.stats().dead_lettered, 1);

        let run = admin(&env, &["--json", "kafka-dead-letters", "list"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        let listed = json["messages"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{json}");
        assert_eq!(listed[0]["event_id"], id.as_str());
        assert!(
            listed[0]["reason"]
                .as_str()
                .unwrap()
                .starts_with("not an audit envelope"),
            "{json}"
        );
        let at = format!("{}:{}", listed[0]["partition"], listed[0]["offset"]);
        let run = admin(&env, &["kafka-dead-letters", "list"]);
        assert!(run.stdout.contains(&at), "{}", run.stdout);

        let run = admin(&env, &["--json", "kafka-dead-letters", "show", &at]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        assert_eq!(json["payload"], "not json", "{json}");
        assert_eq!(json["headers"]["dlq_source_topic"], kafka.topic.as_str());
        assert_eq!(json["headers"]["event_id"], id.as_str());
        let run = admin(&env, &["kafka-dead-letters", "show", "0:999999"]);
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("no such message"), "{}", run.stderr);

        let run = admin(&env, &["--json", "kafka-dead-letters", "requeue", &at]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let json = run.json();
        let requeued = &json["requeued"][0];
        assert_eq!(requeued["event_id"], id.as_str(), "{json}");
        let again = Delivered {
            partition: i32::try_from(requeued["partition"].as_i64().unwrap()).unwrap(),
            offset: requeued["offset"].as_i64().unwrap(),
        };
        // Read from the audit topic again (and set aside again: it still is no envelope).
        assert!(
            handle.wait_for(&[again], Duration::from_secs(60)).await,
            "the re-published message was not read within 60 s"
        );
        assert_eq!(stats.stats().dead_lettered, 2);
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the consumer stops")
            .unwrap();

        let run = admin(&env, &["--json", "kafka-dead-letters", "list"]);
        assert_eq!(run.json()["messages"].as_array().unwrap().len(), 2);
        // One page of one: more follow.
        let run = admin(
            &env,
            &["--json", "kafka-dead-letters", "list", "--limit", "1"],
        );
        assert_eq!(run.json()["more"], true);
    }

    /// `purge` checks every cut against the topic first (nothing sent when one is wrong),
    /// then asks for DeleteRecords. tansu, the test broker, does not implement it (it closes
    /// the connection): the purge fails with exit 1, says what to do instead and names no
    /// broker, and every message stays listable. A broker with DeleteRecords takes the other
    /// branch; this suite's tansu never does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kafka_dead_letter_purge_deletes_below_a_cut_or_fails_whole() {
        let Some(brokers) = required("CREDO_TEST_KAFKA_BROKERS") else {
            return;
        };
        let kafka = topics(&brokers, "credo.admin.purge").await;
        let env = kafka_env(&kafka);
        let env = borrowed(&env);

        // Three messages straight onto the dead-letter topic, as the consumer sets them aside.
        let mut to_dlq = kafka.clone();
        to_dlq.topic = kafka.dlq_topic.clone();
        to_dlq.dlq_topic = format!("{}.unused", kafka.dlq_topic);
        // One at a time: sent as one batch, two records of a partition left tansu 0.6
        // reporting its end (high watermark) one short, hiding the second from `list`.
        let sink = KafkaSink::new(&to_dlq).unwrap();
        let mut stored = Vec::new();
        for _ in 0..3 {
            let event = AuditEvent::new(
                TenantId::new(),
                SystemClock.now(),
                AuditCategory::Security,
                "auth.login",
            );
            let mut bad = EncodedEvent::encode(&event);
            bad.payload = "not json".into();
            stored.extend(sink.publish_acked(&[bad]).await.unwrap().stored);
        }
        assert_eq!(stored.len(), 3);
        let listed = || {
            let run = admin(&env, &["--json", "kafka-dead-letters", "list"]);
            assert_eq!(run.code, Some(0), "{}", run.stderr);
            let mut at: Vec<(i64, i64)> = run.json()["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["partition"].as_i64().unwrap(),
                        m["offset"].as_i64().unwrap(),
                    )
                })
                .collect();
            at.sort_unstable();
            at
        };
        let before = listed();
        assert_eq!(before.len(), 3, "{before:?}, published {stored:?}");
        let (p, last) = (stored[0].partition, stored[0].offset);
        let end = stored
            .iter()
            .filter(|d| d.partition == p)
            .map(|d| d.offset + 1)
            .max()
            .unwrap();

        // Without --yes, nothing happens.
        let run = admin(&env, &["kafka-dead-letters", "purge", "--all"]);
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert!(run.stderr.contains("pass --yes"), "{}", run.stderr);
        // Cuts the topic cannot take: refused before anything is sent.
        let past = format!("{p}:{}", end + 1);
        let run = admin(
            &env,
            &["kafka-dead-letters", "purge", "--before", &past, "--yes"],
        );
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!("ends at offset {end}"))
                && run.stderr.contains("nothing was deleted"),
            "{}",
            run.stderr
        );
        let run = admin(
            &env,
            &["kafka-dead-letters", "purge", "--before", "999:0", "--yes"],
        );
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains("no partition 999"), "{}", run.stderr);
        assert_eq!(listed(), before);

        let cut = format!("{p}:{}", last + 1);
        let run = admin(
            &env,
            &[
                "--json",
                "kafka-dead-letters",
                "purge",
                "--before",
                &cut,
                "--yes",
            ],
        );
        if run.code == Some(0) {
            // A broker with DeleteRecords: the partition now starts at the cut.
            let json = run.json();
            assert_eq!(json["partitions"][0]["low_watermark"], last + 1, "{json}");
            assert!(!listed().contains(&(i64::from(p), last)));
        } else {
            assert_eq!(run.code, Some(1), "{}\n{}", run.stdout, run.stderr);
            assert!(run.stdout.is_empty(), "{}", run.stdout);
            for want in [
                "did not carry out DeleteRecords",
                "nothing was deleted",
                "retention.ms",
                "kafka-configs.sh",
                "rpk topic alter-config",
                kafka.dlq_topic.as_str(),
            ] {
                assert!(run.stderr.contains(want), "{want:?}: {}", run.stderr);
            }
            assert!(!run.stderr.contains(&brokers), "{}", run.stderr);
            assert_eq!(listed(), before, "a failed purge deleted something");
            let run = admin(&env, &["kafka-dead-letters", "purge", "--all", "--yes"]);
            assert_eq!(run.code, Some(1), "{}", run.stderr);
            assert!(
                run.stderr.contains("did not carry out DeleteRecords"),
                "{}",
                run.stderr
            );
            assert_eq!(listed(), before, "a failed purge deleted something");
        }
    }
}
