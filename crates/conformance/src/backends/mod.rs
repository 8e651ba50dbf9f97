//! The harness of every backend the project implements. A new backend adds one file here and
//! one line in [`all`].

mod inmemory;
mod postgres;
mod redis;

pub use inmemory::{InMemoryHarness, stores as inmemory_stores};
pub use postgres::PostgresHarness;
pub use redis::RedisHarness;

use crate::harness::Harness;
use std::sync::Arc;

/// Every implemented backend, in report order.
pub fn all() -> Vec<Arc<dyn Harness>> {
    vec![
        Arc::new(InMemoryHarness),
        Arc::new(PostgresHarness::from_env()),
        Arc::new(RedisHarness::from_env()),
    ]
}

/// Backends of DESIGN §2 that are not implemented yet, with the issue that brings them.
pub const PLANNED: [(&str, &str); 1] = [("kafka", "issue #5 (Kafka adapter and audit pipeline)")];
