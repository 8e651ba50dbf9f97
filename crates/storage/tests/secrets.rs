//! Secrets never show, whatever characters they hold: a random password made of URL-special
//! characters and letters (in the userinfo as written and percent-encoded, as a query
//! parameter, and as Kafka `sasl.password`) never appears in the `Debug` of any configuration,
//! in the `Display` of any error of connecting to a refusing or unreachable server, nor in any
//! log line of the connect path (every `tracing` event and `log` record at TRACE level).
//!
//! Needs the servers of `cargo xtask services` for the bad-credential cases (skipped without).

use credo_adapters_kafka::{KafkaConfig, KafkaHealth};
use credo_adapters_postgres::{PgConfig, PgStores};
use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_storage::{HealthCheck, Storage, StorageConfig, SystemClock};
use proptest::prelude::*;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Every log line of the process, from `tracing` events and `log` records alike.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Buffer(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        tracing_log::LogTracer::init().unwrap();
        buf
    })
}

struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `S3cr` + URL-special characters + letters: nothing else in any output holds `S3cr`.
fn secret() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop::sample::select(vec!['/', '?', '#', '@', ':', '%', ' ']),
            1..6,
        ),
        "[a-zA-Z]{3,8}",
    )
        .prop_map(|(specials, letters)| {
            format!("S3cr{}{letters}", specials.into_iter().collect::<String>())
        })
}

use credo_testkit::percent_encode_all as encode;

/// Fails naming the output when any form of the secret, or its marker, shows.
fn assert_hidden(what: &str, text: &str, secret: &str) -> Result<(), TestCaseError> {
    for form in [secret, &encode(secret), "S3cr"] {
        prop_assert!(!text.contains(form), "{what} shows {form:?}:\n{text}");
    }
    Ok(())
}

/// The URLs a secret can hide in, for a server at `host_port` with user `user`.
fn urls(scheme: &str, user: &str, host_port: &str, db: &str, secret: &str) -> Vec<String> {
    vec![
        format!("{scheme}://{user}:{secret}@{host_port}{db}"),
        format!("{scheme}://{user}:{}@{host_port}{db}", encode(secret)),
        format!(
            "{scheme}://{user}@{host_port}{db}?sslmode=disable&password={}",
            encode(secret)
        ),
    ]
}

async fn postgres_outputs(url: String, out: &mut Vec<(String, String)>) {
    let mut c = PgConfig::new(&url);
    c.acquire_timeout = Duration::from_millis(500);
    out.push(("PgConfig Debug".into(), format!("{c:?}")));
    match PgStores::connect(&c, Arc::new(SystemClock)).await {
        Err(e) => out.push(("PgStores::connect error".into(), e.to_string())),
        Ok(stores) => {
            if let Err(e) = stores.migrate().await {
                out.push(("PgStores::migrate error".into(), e.to_string()));
            }
            let status = stores.health(Duration::from_millis(500)).check().await;
            out.push(("postgres health".into(), format!("{status:?}")));
            stores.close().await;
        }
    }
    let config = StorageConfig::from_vars([
        ("CREDO_BACKENDS_USERS".to_string(), "postgres".to_string()),
        ("CREDO_BACKENDS_CONSENTS".into(), "postgres".into()),
        ("CREDO_BACKENDS_AUDIT".into(), "postgres".into()),
        ("CREDO_POSTGRES_URL".into(), url),
        ("CREDO_POSTGRES_MIGRATE".into(), "true".into()),
        ("CREDO_POSTGRES_ACQUIRE_TIMEOUT_MS".into(), "500".into()),
    ]);
    match config {
        Err(e) => out.push(("StorageConfig error".into(), e.to_string())),
        Ok(config) => {
            out.push(("StorageConfig Debug".into(), format!("{config:?}")));
            match Storage::connect(&config).await {
                Err(e) => out.push(("Storage::connect error".into(), e.to_string())),
                Ok(s) => {
                    let report = s.readiness().report().await;
                    out.push(("readiness".into(), report.to_json().to_string()));
                    s.shutdown().await;
                }
            }
        }
    }
}

async fn redis_outputs(url: String, out: &mut Vec<(String, String)>) {
    let mut c = RedisConfig::new(&url);
    c.connection_timeout = Duration::from_millis(300);
    c.command_timeout = Duration::from_millis(500);
    out.push(("RedisConfig Debug".into(), format!("{c:?}")));
    match RedisStores::connect(&c, Arc::new(SystemClock)).await {
        Err(e) => out.push(("RedisStores::connect error".into(), e.to_string())),
        Ok(stores) => {
            let status = stores.health(Duration::from_millis(500)).check().await;
            out.push(("redis health".into(), format!("{status:?}")));
            if let Err(e) = stores
                .sessions()
                .is_token_revoked(credo_storage::TenantId::new(), "jti")
                .await
            {
                out.push(("redis call error".into(), e.to_string()));
            }
            stores.close().await;
        }
    }
}

async fn kafka_outputs(secret: &str, out: &mut Vec<(String, String)>) {
    let mut c = KafkaConfig::new("127.0.0.1:1");
    c.health_timeout = Duration::from_millis(300);
    c.properties.insert("sasl.password".into(), secret.into());
    out.push(("KafkaConfig Debug".into(), format!("{c:?}")));
    match KafkaHealth::new(&c) {
        Err(e) => out.push(("KafkaHealth error".into(), e.to_string())),
        Ok(h) => out.push(("kafka health".into(), format!("{:?}", h.check().await))),
    }
    // librdkafka echoes the value of a property it refuses (this build has no libcurl for the
    // OIDC token endpoint), and logs broker errors through the client context.
    c.properties
        .insert("ssl.key.password".into(), secret.into());
    c.properties
        .insert("sasl.oauthbearer.client.secret".into(), secret.into());
    out.push(("KafkaConfig Debug".into(), format!("{c:?}")));
    match KafkaHealth::new(&c) {
        Err(e) => out.push(("KafkaHealth error".into(), e.to_string())),
        Ok(h) => out.push(("kafka health".into(), format!("{:?}", h.check().await))),
    }
    let config = StorageConfig::from_vars([
        ("CREDO_BACKENDS_AUDIT_SINK".to_string(), "kafka".to_string()),
        ("CREDO_KAFKA_BROKERS".into(), "127.0.0.1:1".into()),
        ("CREDO_KAFKA_PROPERTY_SASL_PASSWORD".into(), secret.into()),
        (
            "CREDO_KAFKA_PROPERTY_SASL_JAAS_CONFIG".into(),
            secret.into(),
        ),
    ]);
    match config {
        Err(e) => out.push(("StorageConfig error".into(), e.to_string())),
        Ok(config) => out.push(("StorageConfig Debug".into(), format!("{config:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 5, ..ProptestConfig::default() })]

    #[test]
    fn secrets_never_show_in_debug_errors_or_logs(secret in secret()) {
        let logs = logs();
        logs.lock().unwrap().clear();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let mut out = Vec::new();
        rt.block_on(async {
            // Refused: nothing listens on port 1.
            for url in urls("postgres", "credo", "127.0.0.1:1", "/credo", &secret) {
                postgres_outputs(url, &mut out).await;
            }
            for url in urls("redis", "default", "127.0.0.1:1", "", &secret) {
                redis_outputs(url, &mut out).await;
            }
            // Bad credentials against the real servers.
            if let Ok(real) = std::env::var("CREDO_TEST_POSTGRES_URL") {
                let host = real.rsplit('@').next().unwrap_or_default();
                let (host_port, db) = host.split_at(host.find('/').unwrap_or(host.len()));
                for url in urls("postgres", "credo", host_port, db, &secret) {
                    postgres_outputs(url, &mut out).await;
                }
            }
            if let Ok(real) = std::env::var("CREDO_TEST_REDIS_URL") {
                let host_port = real.trim_start_matches("redis://").trim_end_matches('/');
                for url in urls("redis", "default", host_port, "", &secret) {
                    redis_outputs(url, &mut out).await;
                }
            }
            kafka_outputs(&secret, &mut out).await;
        });
        drop(rt);
        if std::env::var_os("CREDO_TEST_SHOW_OUTPUTS").is_some() {
            for (what, text) in &out {
                eprintln!("--- {what}: {text}");
            }
            eprintln!("--- log:\n{}", String::from_utf8_lossy(&logs.lock().unwrap()));
        }
        prop_assert!(out.len() >= 10, "too few outputs: {out:?}");
        for (what, text) in &out {
            assert_hidden(what, text, &secret)?;
        }
        let captured = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
        assert_hidden("the log", &captured, &secret)?;
    }
}
