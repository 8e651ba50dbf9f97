//! Impossible wirings fail at start-up, before any connection, naming the setting.

use credo_storage::{ConfigError, Storage, StorageConfig, StorageError};

/// The error of loading `toml` (single settings are checked there) or, when it loads, of
/// connecting with it (combinations are checked there).
async fn error_of(toml: &str) -> ConfigError {
    let config = match StorageConfig::from_toml_str(toml) {
        Ok(config) => config,
        Err(e) => return e,
    };
    match Storage::connect(&config).await {
        Err(StorageError::Config(e)) => e,
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error for {toml}"),
    }
}

/// What the Redis adapter declares it does not serve is refused before anything connects,
/// with its reason and the backends that would do (without the adapter compiled in, its
/// declaration is unknown and the wiring refuses it for another reason).
#[tokio::test]
async fn users_in_redis_is_refused_by_name() {
    for port in ["users", "consents", "audit"] {
        let e = error_of(&format!(
            "[backends]\n{port} = 'redis'\n[redis]\nurl = 'redis://127.0.0.1:1'\n"
        ))
        .await;
        if cfg!(feature = "redis") {
            assert_eq!(e.setting, format!("backends.{port}"));
            assert!(e.reason.contains("DESIGN §3"), "{e}");
            let choices = match (cfg!(feature = "inmemory"), cfg!(feature = "postgres")) {
                (true, true) => "choose inmemory or postgres",
                (true, false) => "choose inmemory",
                (false, true) => "choose postgres",
                (false, false) => "choose ",
            };
            assert!(e.reason.ends_with(choices), "{e}");
        } else {
            // Users, consents and audit then differ, or Redis is not compiled in.
            assert!(e.setting.starts_with("backends."), "{e}");
        }
    }
}

#[tokio::test]
async fn users_consents_and_audit_must_share_a_backend() {
    let e = error_of(
        "[backends]\nusers = 'postgres'\n[postgres]\nurl = 'postgres://x@127.0.0.1:1/d'\n",
    )
    .await;
    assert_eq!(e.setting, "backends.audit");
    assert!(e.reason.contains("same transaction"), "{e}");
}

#[tokio::test]
async fn a_backend_without_its_settings_is_named() {
    if !cfg!(feature = "redis") {
        return;
    }
    let e = error_of("[backends]\nsessions = 'redis'\n").await;
    assert_eq!(e.setting, "redis.url");
    assert!(e.reason.contains("CREDO_REDIS_URL"), "{e}");
}

#[tokio::test]
async fn a_backend_not_compiled_in_is_named() {
    if cfg!(feature = "kafka") {
        return;
    }
    let e = error_of("[backends]\naudit_sink = 'kafka'\n").await;
    assert_eq!(e.setting, "backends.audit_sink");
    assert!(e.reason.contains("`kafka` cargo feature"), "{e}");
}

#[tokio::test]
async fn a_lease_not_longer_than_the_delivery_timeout_names_both_settings() {
    if !cfg!(feature = "kafka") {
        return;
    }
    let e = error_of(
        "[backends]\naudit_sink = 'kafka'\n[kafka]\nbrokers = '127.0.0.1:1'\n\
         delivery_timeout_ms = 60000\n[relay]\nlease_ms = 60000\n",
    )
    .await;
    assert_eq!(e.setting, "relay.lease_ms");
    assert!(e.reason.contains("kafka.delivery_timeout_ms"), "{e}");
}

#[tokio::test]
async fn zero_max_failures_is_refused_by_name() {
    let e = error_of("[relay]\nmax_failures = 0\n").await;
    assert_eq!(e.setting, "relay.max_failures");
}

#[tokio::test]
async fn a_configuration_built_in_code_is_validated_at_connect() {
    let mut config = StorageConfig::default();
    config.relay.idle_poll_ms = Some(0);
    config.health_timeout_ms = Some(0);
    match Storage::connect(&config).await {
        Err(StorageError::Config(e)) => assert_eq!(e.setting, "relay.idle_poll_ms"),
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("a zero idle poll was accepted"),
    }
}

/// Topics with more in-sync replicas than replicas could never take an `acks=all` write: the
/// adapter refuses it and the facade names the setting to change.
#[tokio::test]
async fn more_in_sync_replicas_than_replicas_is_refused_by_name() {
    if !cfg!(feature = "kafka") {
        return;
    }
    let e = error_of(
        "[backends]\naudit_sink = 'kafka'\n[kafka]\nbrokers = '127.0.0.1:1'\nreplication = 1\n",
    )
    .await;
    assert_eq!(e.setting, "kafka.min_insync_replicas");
    assert!(e.reason.contains("kafka.replication"), "{e}");
    let e = error_of(
        "[backends]\naudit_sink = 'kafka'\n[kafka]\nbrokers = '127.0.0.1:1'\ndelivery_timeout_ms = 1000\n\
         retention_ms = 0\n",
    )
    .await;
    assert_eq!(e.setting, "kafka.retention_ms");
}
