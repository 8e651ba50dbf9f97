use super::declare::{Check, Kind};
use super::*;
use credo_ports::SecretString;

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_all_in_memory_with_a_direct_sink() {
    let c = StorageConfig::from_vars(vars(&[])).unwrap();
    assert_eq!(c.backends, Backends::default());
    assert_eq!(c.backends.users, Backend::InMemory);
    assert_eq!(c.backends.audit_sink, AuditSink::Direct);
    assert_eq!(c.relay, RelaySettings::default());
}

#[test]
fn environment_sets_every_section_and_aliases_fill_gaps() {
    let c = StorageConfig::from_vars(vars(&[
        ("CREDO_BACKENDS_USERS", "postgres"),
        ("CREDO_BACKENDS_SESSIONS", "redis"),
        ("CREDO_BACKENDS_AUDIT_SINK", "kafka"),
        ("DATABASE_URL", "postgres://a:b@h/db"),
        ("CREDO_POSTGRES_MIGRATE", "true"),
        ("CREDO_POSTGRES_MAX_CONNECTIONS", "7"),
        ("REDIS_URL", "redis://r"),
        ("CREDO_REDIS_URL", "redis://wins"),
        ("KAFKA_BROKERS", "k:9092"),
        ("CREDO_KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL"),
        ("CREDO_RELAY_BATCH", "250"),
        ("CREDO_TEST_POSTGRES_URL", "ignored"),
        ("CREDO_HTTP_ADDR", "ignored"),
    ]))
    .unwrap();
    assert_eq!(c.backends.users, Backend::Postgres);
    assert_eq!(c.backends.sessions, Backend::Redis);
    assert_eq!(c.backends.audit_sink, AuditSink::Kafka);
    let pg = c.postgres.unwrap();
    assert_eq!(
        (pg.url.expose_secret(), pg.migrate, pg.max_connections),
        ("postgres://a:b@h/db", true, Some(7))
    );
    assert_eq!(c.redis.unwrap().url.expose_secret(), "redis://wins");
    let k = c.kafka.unwrap();
    assert_eq!(k.brokers, "k:9092");
    assert_eq!(
        k.properties["security.protocol"].expose_secret(),
        "SASL_SSL"
    );
    assert_eq!(c.relay.batch, Some(250));
}

#[test]
fn errors_name_the_setting() {
    let e = StorageConfig::from_vars(vars(&[("CREDO_POSTGRES_URLL", "x")])).unwrap_err();
    assert_eq!(e.setting, "CREDO_POSTGRES_URLL");
    let e = StorageConfig::from_vars(vars(&[("CREDO_RELAY_BATCH", "lots")])).unwrap_err();
    assert_eq!(e.setting, "relay.batch (CREDO_RELAY_BATCH)");
    let e = StorageConfig::from_vars(vars(&[("CREDO_BACKENDS_USERS", "mongo")])).unwrap_err();
    assert!(e.to_string().contains("mongo"), "{e}");
    let e = StorageConfig::from_toml_str("[postgres]\nurl = 'x'\npool = 3\n").unwrap_err();
    assert!(e.to_string().contains("pool"), "{e}");
}

#[test]
fn file_then_environment() {
    let dir = std::env::temp_dir().join(format!("credo-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("storage.toml");
    std::fs::write(
        &file,
        "[backends]\nusers = 'postgres'\nsessions = 'postgres'\n",
    )
    .unwrap();
    let c = StorageConfig::from_vars(vars(&[
        ("CREDO_CONFIG_FILE", file.to_str().unwrap()),
        ("CREDO_BACKENDS_SESSIONS", "redis"),
    ]))
    .unwrap();
    assert_eq!(c.backends.users, Backend::Postgres);
    assert_eq!(c.backends.sessions, Backend::Redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hosts_own_credo_variables_pass_untouched() {
    let c = StorageConfig::from_vars(vars(&[
        ("CREDO_FOO", "the host's"),
        ("CREDO_HTTP_ADDR", "0.0.0.0:80"),
        ("CREDO_LOG_LEVEL", "debug"),
        ("CREDO_POSTGRESQL_URL", "another section name is the host's"),
        ("CREDO_BACKENDS_USERS", "inmemory"),
    ]))
    .unwrap();
    assert_eq!(c.backends.users, Backend::InMemory);
}

#[test]
fn typos_inside_the_storages_sections_are_still_errors() {
    for typo in [
        "CREDO_POSTGRES_URLL",
        "CREDO_BACKENDS_USER",
        "CREDO_REDIS_POOLSIZE",
        "CREDO_KAFKA_BROKER",
        "CREDO_RELAY_LEASE",
        "CREDO_HEALTH_TIMEOUT",
        "CREDO_SHUTDOWN_TIMEOUT_S",
    ] {
        let e = StorageConfig::from_vars(vars(&[(typo, "1")])).unwrap_err();
        assert_eq!(e.setting, typo);
        assert!(e.reason.contains("not a credo-storage setting"), "{e}");
    }
}

#[test]
fn another_prefix_moves_the_whole_namespace() {
    let c = StorageConfig::from_vars_with_prefix(
        "AUTH_STORE_",
        vars(&[
            ("AUTH_STORE_BACKENDS_USERS", "postgres"),
            ("AUTH_STORE_POSTGRES_URL", "postgres://u@h/db"),
            ("AUTH_STORE_KAFKA_BROKERS", "b:1"),
            ("AUTH_STORE_KAFKA_PROPERTY_SASL_PASSWORD", "x"),
            // The default prefix is the host's now, typos and all.
            ("CREDO_POSTGRES_URLL", "host's"),
            ("CREDO_BACKENDS_USERS", "mongo"),
        ]),
    )
    .unwrap();
    assert_eq!(c.backends.users, Backend::Postgres);
    assert_eq!(c.postgres.unwrap().url.expose_secret(), "postgres://u@h/db");
    assert_eq!(
        c.kafka.unwrap().properties["sasl.password"].expose_secret(),
        "x"
    );
    let e = StorageConfig::from_vars_with_prefix(
        "AUTH_STORE_",
        vars(&[("AUTH_STORE_POSTGRES_URLL", "x")]),
    )
    .unwrap_err();
    assert_eq!(e.setting, "AUTH_STORE_POSTGRES_URLL");
    for bad in ["", "lower_", "A-B_"] {
        assert!(
            StorageConfig::from_vars_with_prefix(bad, vars(&[])).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_duration_and_size_is_validated_by_name() {
    let pg = "[postgres]\nurl = 'postgres://u@h/db'\n";
    let redis = "[redis]\nurl = 'redis://h'\n";
    let kafka = "[kafka]\nbrokers = 'b:1'\n";
    for (toml, setting) in [
        (
            format!("{pg}max_connections = 0"),
            "postgres.max_connections",
        ),
        (
            format!("{pg}max_connections = 10001"),
            "postgres.max_connections",
        ),
        (
            format!("{pg}outbox_connections = 0"),
            "postgres.outbox_connections",
        ),
        (
            format!("{pg}acquire_timeout_ms = 0"),
            "postgres.acquire_timeout_ms",
        ),
        (
            format!("{pg}statement_timeout_ms = 0"),
            "postgres.statement_timeout_ms",
        ),
        (
            format!("{pg}statement_timeout_ms = 2147483648"),
            "postgres.statement_timeout_ms",
        ),
        (format!("{pg}schema = 'A;drop'"), "postgres.schema"),
        (
            format!("{pg}migrations_table = ''"),
            "postgres.migrations_table",
        ),
        ("[postgres]\nurl = ' '".to_string(), "postgres.url"),
        (format!("{redis}pool_size = 0"), "redis.pool_size"),
        (
            format!("{redis}command_timeout_ms = 0"),
            "redis.command_timeout_ms",
        ),
        (
            format!("{redis}command_timeout_ms = 9223372036854775807"),
            "redis.command_timeout_ms",
        ),
        (format!("{redis}key_prefix = 'a b'"), "redis.key_prefix"),
        (
            format!("{redis}rate_limit_time = 'sundial'"),
            "redis.rate_limit_time",
        ),
        (
            format!("{kafka}delivery_timeout_ms = 0"),
            "kafka.delivery_timeout_ms",
        ),
        (format!("{kafka}linger_ms = 900001"), "kafka.linger_ms"),
        (
            format!("{kafka}session_timeout_ms = 0"),
            "kafka.session_timeout_ms",
        ),
        (
            format!("{kafka}heartbeat_interval_ms = 0"),
            "kafka.heartbeat_interval_ms",
        ),
        (
            format!("{kafka}max_poll_interval_ms = 0"),
            "kafka.max_poll_interval_ms",
        ),
        (
            format!("{kafka}fetch_wait_max_ms = 0"),
            "kafka.fetch_wait_max_ms",
        ),
        (format!("{kafka}partitions = 0"), "kafka.partitions"),
        (format!("{kafka}replication = -1"), "kafka.replication"),
        (format!("{kafka}topic = ''"), "kafka.topic"),
        ("[relay]\nbatch = 0".to_string(), "relay.batch"),
        ("[relay]\nlease_ms = 0".to_string(), "relay.lease_ms"),
        (
            "[relay]\nidle_poll_ms = 0".to_string(),
            "relay.idle_poll_ms",
        ),
        (
            "[relay]\nmax_failures = 0".to_string(),
            "relay.max_failures",
        ),
        ("health_timeout_ms = 0".to_string(), "health_timeout_ms"),
        ("shutdown_timeout_ms = 0".to_string(), "shutdown_timeout_ms"),
        (
            "shutdown_timeout_ms = 86400001".to_string(),
            "shutdown_timeout_ms",
        ),
    ] {
        let e = StorageConfig::from_toml_str(&toml).unwrap_err();
        assert_eq!(e.setting, setting, "{toml}: {e}");
    }
    let e = StorageConfig::from_vars(vars(&[
        ("CREDO_POSTGRES_URL", "postgres://u@h/db"),
        ("CREDO_POSTGRES_STATEMENT_TIMEOUT_MS", "0"),
    ]))
    .unwrap_err();
    assert_eq!(e.setting, "postgres.statement_timeout_ms");
    assert!(e.reason.contains("no timeout"), "{e}");
}

#[test]
fn a_file_section_that_is_no_table_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("credo-cfg-nt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("storage.toml");
    std::fs::write(
        &file,
        "postgres = 1
",
    )
    .unwrap();
    let e = StorageConfig::from_vars(vars(&[
        ("CREDO_CONFIG_FILE", file.to_str().unwrap()),
        ("CREDO_POSTGRES_URL", "postgres://h/db"),
    ]))
    .unwrap_err();
    assert_eq!(e.setting, "postgres (CREDO_POSTGRES_URL)");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn secrets_never_show_in_debug() {
    let c = StorageConfig::from_toml_str(
        "[postgres]\nurl = 'postgres://u:p@ss/w?rd#x@h/db?sslpassword=k3y'\n\
         [redis]\nurl = 'redis://:r3d@h'\n\
         [kafka]\nbrokers = 'b:1'\n[kafka.properties]\n\
         'sasl.password' = 'k4fka'\n'ssl.key.pem' = 'PEMDATA'\n'security.protocol' = 'SASL_SSL'\n",
    )
    .unwrap();
    let dbg = format!("{c:?}");
    for secret in ["p@ss", "w?rd", "k3y", "r3d", "k4fka", "PEMDATA"] {
        assert!(!dbg.contains(secret), "{secret} in {dbg}");
    }
    assert!(dbg.contains("SASL_SSL"), "{dbg}");
}

/// A value the declaration refuses, for every kind of check.
fn refused(setting: &Setting) -> &'static str {
    match (setting.kind, setting.check) {
        (Kind::Int, _) => "many",
        (Kind::Bool, _) => "perhaps",
        (_, Check::Any) => "mongo", // a backend's name
        (_, Check::OneOf(_)) => "sundial",
        (_, Check::NonEmpty) => " ",
        (_, _) => "No Such Name!",
    }
}

#[test]
fn every_declared_setting_is_read_from_its_variable() {
    let required = [
        ("CREDO_POSTGRES_URL", "postgres://h/db"),
        ("CREDO_REDIS_URL", "redis://h"),
        ("CREDO_KAFKA_BROKERS", "b:1"),
    ];
    let mut seen = 0;
    for setting in settings().filter(|s| s.kind != Kind::Map) {
        let var = env_var(DEFAULT_ENV_PREFIX, setting);
        let mut list: Vec<(&str, &str)> = required.into_iter().filter(|(v, _)| *v != var).collect();
        list.push((&var, refused(setting)));
        let e = StorageConfig::from_vars(vars(&list)).unwrap_err();
        let named = e.setting == setting.path()
            || e.setting == format!("{} ({var})", setting.path())
            || e.reason.contains(setting.key);
        assert!(named, "{var}: {e}");
        seen += 1;
    }
    assert!(seen >= 38, "{seen} settings");
}

#[test]
fn every_variable_in_the_namespace_is_a_declared_setting() {
    for setting in settings() {
        assert!(
            is_ours("CREDO_", &env_var("CREDO_", setting)),
            "{}",
            setting.path()
        );
    }
}

#[test]
fn secrets_are_declared_where_they_live() {
    let secret: Vec<String> = settings()
        .filter(|s| s.secret != declare::Secret::No)
        .map(|s| s.path())
        .collect();
    assert_eq!(secret, ["postgres.url", "redis.url", "kafka.properties"]);
}

#[cfg(all(feature = "postgres", feature = "redis", feature = "kafka"))]
#[test]
fn unset_settings_leave_the_adapters_own_defaults() {
    let c = StorageConfig::from_toml_str(
        "[postgres]\nurl = 'postgres://h/db'\n[redis]\nurl = 'redis://h'\n[kafka]\nbrokers = 'b:1'\n",
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", c.postgres.unwrap().pg_config()),
        format!(
            "{:?}",
            credo_adapters_postgres::PgConfig::new("postgres://h/db")
        )
    );
    assert_eq!(
        format!("{:?}", c.redis.unwrap().redis_config().unwrap()),
        format!("{:?}", credo_adapters_redis::RedisConfig::new("redis://h"))
    );
    assert_eq!(
        format!("{:?}", c.kafka.unwrap().kafka_config()),
        format!("{:?}", credo_adapters_kafka::KafkaConfig::new("b:1"))
    );
    assert_eq!(
        format!("{:?}", c.relay.relay_config()),
        format!("{:?}", credo_pipeline::RelayConfig::default())
    );
}

#[cfg(all(feature = "postgres", feature = "redis", feature = "kafka"))]
#[test]
fn set_settings_reach_the_adapters() {
    let c = StorageConfig::from_toml_str(
        "[postgres]\nurl = 'postgres://h/db'\nmax_connections = 7\nstatement_timeout_ms = 1234\n\
         schema = 'auth'\nmigrations_table = 'm'\n\
         [redis]\nurl = 'redis://h'\npool_size = 3\nkey_prefix = 'p'\nrate_limit_time = 'clock'\n\
         [kafka]\nbrokers = 'b:1'\ntopic = 't'\nsession_timeout_ms = 6000\npartitions = 2\n\
         [kafka.properties]\n'security.protocol' = 'SSL'\n\
         [relay]\nbatch = 9\nlease_ms = 61000\n",
    )
    .unwrap();
    let pg = c.postgres.unwrap().pg_config();
    assert_eq!(pg.max_connections, 7);
    assert_eq!(pg.statement_timeout, Duration::from_millis(1234));
    assert_eq!(pg.schema.as_deref(), Some("auth"));
    assert_eq!(pg.migrations_table, "m");
    let r = c.redis.unwrap().redis_config().unwrap();
    assert_eq!((r.pool_size, r.key_prefix.as_str()), (3, "p"));
    assert_eq!(r.rate_limit_time, credo_adapters_redis::TimeSource::Clock);
    let k = c.kafka.unwrap().kafka_config();
    assert_eq!((k.topic.as_str(), k.partitions), ("t", 2));
    assert_eq!(k.session_timeout, Some(Duration::from_secs(6)));
    assert_eq!(k.properties["security.protocol"].expose_secret(), "SSL");
    let relay = c.relay.relay_config();
    assert_eq!((relay.batch, relay.lease), (9, Duration::from_secs(61)));
}

/// Issue 18: every secret can be given as a file (`*_FILE`, container and Kubernetes secrets),
/// never both inline and by file, and a file that cannot be read is named, never shown.
#[test]
fn secrets_come_from_files() {
    let dir = std::env::temp_dir().join(format!("credo_secret_files_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let pg = write("pg", "postgres://u:p%40ss%20w@h/db\n");
    let redis = write("redis", "rediss://:s3cr%2Ft@r:6380\r\n");
    let sasl = write("sasl", " leading and trailing spaces are the secret's \n");
    let c = StorageConfig::from_vars(vars(&[
        ("CREDO_BACKENDS_USERS", "postgres"),
        ("CREDO_BACKENDS_SESSIONS", "redis"),
        ("CREDO_POSTGRES_URL_FILE", &pg),
        ("REDIS_URL_FILE", &redis),
        ("CREDO_KAFKA_BROKERS", "k:9092"),
        ("CREDO_KAFKA_PROPERTY_SASL_PASSWORD_FILE", &sasl),
    ]))
    .unwrap();
    let p = c.postgres.as_ref().unwrap();
    assert_eq!(p.url.expose_secret(), "postgres://u:p%40ss%20w@h/db");
    assert_eq!(p.url_file.as_deref(), Some(pg.as_str()));
    #[cfg(feature = "postgres")]
    assert_eq!(p.pg_config().url_file, Some(pg.clone().into()));
    assert_eq!(
        c.redis.as_ref().unwrap().url.expose_secret(),
        "rediss://:s3cr%2Ft@r:6380"
    );
    #[cfg(feature = "redis")]
    assert_eq!(
        c.redis.as_ref().unwrap().redis_config().unwrap().url_file,
        Some(redis.clone().into())
    );
    let props = &c.kafka.as_ref().unwrap().properties;
    assert_eq!(
        props.get("sasl.password").map(SecretString::expose_secret),
        Some(" leading and trailing spaces are the secret's ")
    );
    assert!(!props.contains_key("sasl.password.file"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("p%40ss") && !shown.contains("s3cr") && !shown.contains("leading"));

    // The alias, too.
    let c = StorageConfig::from_vars(vars(&[("DATABASE_URL_FILE", &pg)])).unwrap();
    assert_eq!(
        c.postgres.unwrap().url.expose_secret(),
        "postgres://u:p%40ss%20w@h/db"
    );

    // Both ways at once: refused, naming the setting.
    let e = StorageConfig::from_vars(vars(&[
        ("CREDO_POSTGRES_URL", "postgres://x@h/db"),
        ("CREDO_POSTGRES_URL_FILE", &pg),
    ]))
    .unwrap_err();
    assert_eq!(e.setting, "postgres.url_file", "{e}");
    let e = StorageConfig::from_vars(vars(&[
        ("CREDO_KAFKA_BROKERS", "k:9092"),
        ("CREDO_KAFKA_PROPERTY_SASL_PASSWORD", "inline"),
        ("CREDO_KAFKA_PROPERTY_SASL_PASSWORD_FILE", &sasl),
    ]))
    .unwrap_err();
    assert_eq!(e.setting, "kafka.properties.sasl.password.file", "{e}");

    // A missing file: its path and why, nothing else.
    let missing = dir.join("absent").to_str().unwrap().to_string();
    let e = StorageConfig::from_vars(vars(&[("CREDO_POSTGRES_URL_FILE", &missing)])).unwrap_err();
    assert_eq!(e.setting, "postgres.url_file");
    assert!(
        e.to_string().contains(&missing) && e.to_string().contains("not found"),
        "{e}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
