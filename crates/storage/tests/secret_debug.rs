//! Whatever a secret is made of (URL-special characters, spaces, any Unicode), `{:?}` of the
//! value that holds it never prints it: [`SecretString`], `PgConfig`, `RedisConfig`,
//! `KafkaConfig` (the secret as `sasl.password`) and the facade's configuration loaded from
//! variables and from a URL file. No I/O beyond the URL file: many cases run fast.
//!
//! Two checks per output: the secret (as written and percent-encoded) is not in it, and the
//! output is the very text printed for another secret, so nothing derived from the secret
//! (a piece of it, a decoded form) shows either. A secret that is a part of the text printed
//! without it (`Config`, `***`, `postgres`) proves nothing and is skipped.

use credo_storage::kafka::KafkaConfig;
use credo_storage::postgres::PgConfig;
use credo_storage::redis::RedisConfig;
use credo_storage::{SecretString, StorageConfig};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Printable ASCII (every URL delimiter, spaces), any non-control Unicode, and a mix weighted
/// towards the characters that end a URL's userinfo early when a redactor gets them wrong.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{6,40}",
        "\\PC{6,24}",
        prop::collection::vec(
            prop::sample::select(vec![
                "/", ":", "@", "%", "#", "?", " ", "&", "=", "%40", "é", "密", "🔑", "a", "Z", "9",
            ]),
            6..20,
        )
        .prop_map(|parts| parts.concat()),
    ]
}

use credo_testkit::percent_encode_all as encode;

/// The URLs a password can be given in: as written in the userinfo, percent-encoded, and
/// as a query parameter.
fn pg_urls(secret: &str) -> [String; 3] {
    [
        format!("postgres://credo:{secret}@db.internal:5432/credo?sslmode=verify-full"),
        format!("postgres://credo:{}@db.internal:5432/credo", encode(secret)),
        format!(
            "postgres://credo@db.internal/credo?sslmode=require&password={}",
            encode(secret)
        ),
    ]
}

fn redis_urls(secret: &str) -> [String; 3] {
    [
        format!("rediss://app:{secret}@cache.internal:6380/0"),
        format!("redis://:{}@cache.internal:6379", encode(secret)),
        format!("redis://{}@cache.internal:6379", encode(secret)),
    ]
}

/// A file of its own per call (proptest runs cases one after another; tests run in threads).
fn url_file(url: &str) -> std::path::PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "credo-secret-debug-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, format!("{url}\n")).unwrap();
    path
}

/// Every `Debug` text that holds `secret` somewhere inside, labelled.
fn outputs(secret: &str) -> Vec<(String, String)> {
    let mut out = vec![(
        "SecretString".to_string(),
        format!("{:?}", SecretString::from(secret)),
    )];
    for (i, url) in pg_urls(secret).into_iter().enumerate() {
        out.push((
            format!("PgConfig {i}"),
            format!("{:?}", PgConfig::new(&url)),
        ));
    }
    for (i, url) in redis_urls(secret).into_iter().enumerate() {
        out.push((
            format!("RedisConfig {i}"),
            format!("{:?}", RedisConfig::new(url)),
        ));
    }
    let mut kafka = KafkaConfig::new("broker-1:9092");
    kafka
        .properties
        .insert("security.protocol".into(), "SASL_SSL".into());
    kafka
        .properties
        .insert("sasl.password".into(), secret.into());
    out.push(("KafkaConfig".into(), format!("{kafka:?}")));
    out.push((
        "KafkaConfig.properties".into(),
        format!("{:?}", kafka.properties),
    ));

    for (i, (pg, redis)) in pg_urls(secret)
        .into_iter()
        .zip(redis_urls(secret))
        .enumerate()
    {
        let config = StorageConfig::from_vars([
            ("CREDO_POSTGRES_URL".to_string(), pg),
            ("CREDO_REDIS_URL".into(), redis),
            ("CREDO_KAFKA_BROKERS".into(), "broker-1:9092".into()),
            ("CREDO_KAFKA_PROPERTY_SASL_PASSWORD".into(), secret.into()),
            (
                "CREDO_KAFKA_PROPERTY_SASL_JAAS_CONFIG".into(),
                format!("org.apache.kafka.common.security.plain.PlainLoginModule required password=\"{secret}\";"),
            ),
        ])
        .unwrap_or_else(|e| panic!("loading the configuration: {e}"));
        facade_outputs(&format!("from variables {i}"), &config, &mut out);
    }

    // The URLs by file: what the file holds is a secret too.
    let files: Vec<_> = pg_urls(secret)
        .iter()
        .chain(&redis_urls(secret)[..1])
        .map(|u| url_file(u))
        .collect();
    for (i, file) in files[..3].iter().enumerate() {
        let config = StorageConfig::from_vars([
            (
                "CREDO_POSTGRES_URL_FILE".to_string(),
                file.display().to_string(),
            ),
            (
                "CREDO_REDIS_URL_FILE".into(),
                files[3].display().to_string(),
            ),
        ])
        .unwrap_or_else(|e| panic!("loading the configuration: {e}"));
        let mut shown = Vec::new();
        facade_outputs(&format!("from files {i}"), &config, &mut shown);
        // The file's name differs from case to case: it is not what is compared.
        for (what, text) in shown {
            let text = files.iter().fold(text, |t, f| {
                t.replace(&format!("{:?}", f.display().to_string()), "\"<file>\"")
            });
            out.push((what, text));
        }
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    out
}

/// The facade's configuration and the adapter configurations it maps to.
fn facade_outputs(how: &str, config: &StorageConfig, out: &mut Vec<(String, String)>) {
    out.push((format!("StorageConfig {how}"), format!("{config:?}")));
    out.push((
        format!("StorageConfig {how} (pretty)"),
        format!("{config:#?}"),
    ));
    if let Some(pg) = &config.postgres {
        out.push((format!("pg_config {how}"), format!("{:?}", pg.pg_config())));
    }
    if let Some(redis) = &config.redis {
        let c = redis.redis_config().unwrap();
        out.push((format!("redis_config {how}"), format!("{c:?}")));
    }
    if let Some(kafka) = &config.kafka {
        out.push((
            format!("kafka_config {how}"),
            format!("{:?}", kafka.kafka_config()),
        ));
    }
}

/// Letters only, in no output's fixed text: what the outputs print for "another secret".
const NEUTRAL: &str = "qQzZxXjJ";

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn debug_never_prints_a_secret(secret in secret()) {
        let without = outputs(NEUTRAL);
        let all_without: String = without.iter().map(|(_, t)| t.as_str()).collect();
        let forms = [secret.clone(), encode(&secret)];
        prop_assume!(forms.iter().all(|f| !all_without.contains(f.as_str())));

        let with = outputs(&secret);
        prop_assert_eq!(with.len(), without.len());
        for ((what, text), (_, text_without)) in with.iter().zip(&without) {
            for form in &forms {
                prop_assert!(!text.contains(form.as_str()), "{} shows {:?}:\n{}", what, form, text);
            }
            prop_assert_eq!(text, text_without, "{} depends on the secret", what);
        }
    }
}

/// The checks above can fail: a plain `String` in the same place prints the secret.
#[test]
fn the_check_sees_a_secret_that_is_printed() {
    let secret = "p@ss w/rd#é";
    let leaked = format!("{:?}", (secret.to_string(), SecretString::from(secret)));
    assert!(leaked.contains(secret));
    assert_eq!(
        format!("{:?}", SecretString::from(secret)),
        format!("{:?}", SecretString::from(NEUTRAL))
    );
}
