//! The ports this backend serves: only the audit pipeline's transport.

use credo_ports::capability::{Capabilities, Port, Support};

/// The PostgreSQL → Kafka → PostgreSQL audit pipeline; its stores are PostgreSQL's.
pub const CAPABILITIES: Capabilities = Capabilities::new("kafka", |port| match port {
    Port::Pipeline => Support::Yes,
    _ => Support::No(
        "the kafka column is the PostgreSQL → Kafka → PostgreSQL audit pipeline; \
         its stores are PostgreSQL's, checked in the postgres column",
    ),
});
