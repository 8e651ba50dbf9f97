//! credo-storage Redis adapter (fred). Filled by issue #4.
//!
//! Not implemented yet: this crate only reserves its place in the workspace so the layout of
//! DESIGN §2 holds. It exports no store, and the conformance suite does not list this backend
//! until it does.

pub use credo_ports as ports;
