//! Shared by the facade's tests against real servers: the TOML sections that point a
//! configuration at them, each with a schema, key prefix or topics of the test's own (so tests
//! running at once never share state), and the clean-up of the PostgreSQL schemas.
//!
//! `mod support;` in a test file; not every test uses every helper.
#![allow(dead_code)]

use std::sync::Arc;

/// The URLs of the shared PostgreSQL, Redis and Kafka of `cargo xtask services`, or `None`
/// after a skip (a panic under `CREDO_TEST_REQUIRE=all`).
pub fn servers() -> Option<(String, String, String)> {
    let (Some(pg), Some(redis), Some(kafka)) = (
        credo_testkit::required("CREDO_TEST_POSTGRES_URL"),
        credo_testkit::required("CREDO_TEST_REDIS_URL"),
        credo_testkit::required("CREDO_TEST_KAFKA_BROKERS"),
    ) else {
        return None;
    };
    Some((pg, redis, kafka))
}

/// `[postgres]` on `url`, migrated, in `schema`.
pub fn postgres(url: &str, schema: &str) -> String {
    format!("[postgres]\nurl = \"{url}\"\nschema = \"{schema}\"\nmigrate = true\n")
}

/// `[redis]` on `url` under `prefix` (a test may add settings of the section after it).
pub fn redis(url: &str, prefix: &str) -> String {
    format!("[redis]\nurl = \"{url}\"\nkey_prefix = \"{prefix}\"\n")
}

/// `[kafka]` on `brokers` with topics and group named `topic` (created with `partitions`),
/// and the client settings the test broker needs: single-replica topics, a short session
/// (tansu's group joins are slow) and short fetch waits.
pub fn kafka(brokers: &str, topic: &str, partitions: u32) -> String {
    format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\ndlq_topic = \"{topic}.dlq\"\n\
         group_id = \"{topic}\"\nensure_topics = true\npartitions = {partitions}\n\
         replication = 1\nmin_insync_replicas = 1\nsession_timeout_ms = 6000\n\
         heartbeat_interval_ms = 1000\nmax_poll_interval_ms = 7000\nfetch_wait_max_ms = 10\n"
    )
}

/// Drops each of `schemas` from the PostgreSQL at `url`.
pub async fn drop_schemas(url: &str, schemas: &[&str]) {
    for schema in schemas {
        let mut c = credo_storage::postgres::PgConfig::new(url);
        c.schema = Some(schema.to_string());
        credo_storage::postgres::PgStores::connect(&c, Arc::new(credo_storage::SystemClock))
            .await
            .unwrap()
            .drop_schema()
            .await
            .unwrap();
    }
}
