//! The ports this backend serves: every one.

use credo_ports::capability::Capabilities;

/// Every port: the stores, the outbox and the direct audit pipeline.
pub const CAPABILITIES: Capabilities = Capabilities::every_port("inmemory");
