//! docker-compose.yml cannot run here (no Docker engine), so it is checked statically: every
//! backend the facade wires has a service with a health check, the consoles are where the
//! seed puts them, and deploy/credo-storage.env is a valid facade configuration pointing at
//! those services with their credentials.

use credo_storage::{AuditSink, Backend, StorageConfig};
use serde_norway::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn env_file() -> Vec<(String, String)> {
    std::fs::read_to_string(root().join("deploy/credo-storage.env"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn published_port(service: &Value, container: u16) -> u16 {
    service["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .find_map(|p| {
            let (host, inner) = p.split_once(':')?;
            (inner.parse::<u16>().ok()? == container).then(|| host.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("port {container} not published"))
}

#[test]
fn every_service_has_an_image_and_a_health_check() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "pgadmin",
        "redis",
        "redpanda",
        "redpanda-console",
    ] {
        let s = &c["services"][name];
        assert!(s["image"].as_str().is_some(), "{name}: no image");
        let test = s["healthcheck"]["test"].as_sequence();
        assert!(
            test.is_some_and(|t| t.len() >= 2),
            "{name}: no health check command"
        );
    }
    assert_eq!(services.len(), 5, "unexpected services: {services:?}");
    assert_eq!(published_port(&c["services"]["pgadmin"], 80), 5050);
    assert_eq!(
        published_port(&c["services"]["redpanda-console"], 8080),
        8085
    );
}

#[test]
fn the_env_file_is_a_facade_configuration_pointing_at_the_stack() {
    let c = compose();
    let config = StorageConfig::from_vars(env_file()).unwrap();
    let b = &config.backends;
    assert_eq!(
        (
            b.users,
            b.consents,
            b.audit,
            b.sessions,
            b.rate_limits,
            b.audit_sink
        ),
        (
            Backend::Postgres,
            Backend::Postgres,
            Backend::Postgres,
            Backend::Redis,
            Backend::Redis,
            AuditSink::Kafka
        )
    );
    let pg = &c["services"]["postgres"];
    let env = &pg["environment"];
    let expected = format!(
        "postgres://{}:{}@localhost:{}/{}?sslmode=disable",
        env["POSTGRES_USER"].as_str().unwrap(),
        env["POSTGRES_PASSWORD"].as_str().unwrap(),
        published_port(pg, 5432),
        env["POSTGRES_DB"].as_str().unwrap(),
    );
    assert_eq!(config.postgres.as_ref().unwrap().url, expected);
    assert_eq!(
        config.redis.as_ref().unwrap().url,
        format!(
            "redis://localhost:{}",
            published_port(&c["services"]["redis"], 6379)
        )
    );
    let kafka = config.kafka.as_ref().unwrap();
    assert_eq!(
        kafka.brokers,
        format!(
            "localhost:{}",
            published_port(&c["services"]["redpanda"], 9092)
        )
    );
    let command: Vec<&str> = c["services"]["redpanda"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        command
            .iter()
            .any(|a| a.contains(&format!("EXTERNAL://{}", kafka.brokers))),
        "redpanda must advertise {} to the host: {command:?}",
        kafka.brokers
    );
    // A single broker cannot hold replication 3, nor 2 in-sync replicas.
    assert_eq!(kafka.replication, Some(1));
    assert_eq!(kafka.min_insync_replicas, Some(1));
}
