//! Facade of credo-storage: re-exports the ports and the backends enabled by cargo features.
//!
//! Today only the `inmemory` feature (default) exists; configuration-driven wiring of several
//! backends comes with the facade issue (#6).

pub use credo_ports::*;

/// The embedded in-memory backend.
#[cfg(feature = "inmemory")]
pub use credo_adapters_inmemory as inmemory;
