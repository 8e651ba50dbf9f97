//! The conformance harness of every backend the project implements. A new backend adds one
//! file here and one line in [`all`]. `tests/conformance.rs` runs the suite on one backend,
//! one trial per case; the `conformance-matrix` binary runs the matrix for
//! `cargo xtask conformance`.
//!
//! These live apart from `credo-conformance` so that the suite itself (cases, models, runner)
//! depends on no adapter: a change to an adapter rebuilds only this small crate, which keeps
//! one mutant's build in `cargo xtask mutants` short.

mod inmemory;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
pub mod trials;

pub use inmemory::{InMemoryHarness, config as inmemory_config, stores as inmemory_stores};
#[cfg(feature = "kafka")]
pub use kafka::KafkaHarness;
#[cfg(feature = "postgres")]
pub use postgres::PostgresHarness;
#[cfg(feature = "redis")]
pub use redis::{RedisHarness, stores as redis_stores};

use credo_conformance::Harness;
use std::sync::Arc;

/// The URL of a backend's test server: the one configured in `var`, else one from
/// `start_container` when a Docker engine answers, else the reason there is none (reported as
/// the skip reason).
#[cfg(any(feature = "postgres", feature = "redis"))]
async fn server_url<F>(
    configured: Option<&String>,
    var: &str,
    start_container: impl FnOnce() -> F,
) -> Result<String, String>
where
    F: std::future::Future<Output = Result<String, String>>,
{
    if let Some(url) = configured {
        return Ok(url.clone());
    }
    let unset = format!(
        "{var} is not set (run `cargo xtask services up` and \
         `eval \"$(cargo xtask services env)\"`)"
    );
    if let Err(why) = credo_conformance::docker::engine_answers() {
        return Err(format!(
            "{unset}, and no Docker engine for testcontainers: {why}"
        ));
    }
    if !cfg!(feature = "testcontainers") {
        return Err(format!(
            "{unset}; a Docker engine answers, but this build lacks the `testcontainers` feature"
        ));
    }
    start_container().await
}

/// Every backend built into this crate (all of them with the default features), in report
/// order.
pub fn all() -> Vec<Arc<dyn Harness>> {
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut all: Vec<Arc<dyn Harness>> = vec![Arc::new(InMemoryHarness)];
    #[cfg(feature = "postgres")]
    all.push(Arc::new(PostgresHarness::from_env()));
    #[cfg(feature = "redis")]
    all.extend([
        Arc::new(RedisHarness::from_env()) as Arc<dyn Harness>,
        Arc::new(RedisHarness::server_time_from_env()),
        Arc::new(RedisHarness::cluster_from_env()),
    ]);
    #[cfg(feature = "kafka")]
    all.push(Arc::new(KafkaHarness::from_env()));
    all
}

/// Backends of DESIGN §2 that are not implemented yet, with the issue that brings them.
pub const PLANNED: [(&str, &str); 0] = [];
