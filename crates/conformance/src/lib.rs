//! The conformance suite of credo-storage: one set of cases that every backend must pass, so
//! that all of them give the same results and the same errors.
//!
//! - [`model`]: a deliberately naive reference implementation of every port, the oracle.
//! - [`property`]: model-based property tests (random operation sequences, every result
//!   compared with the model's).
//! - [`cases`]: the cases, per port: property tests plus targeted cases for the known
//!   divergence points (expiry at exactly now, repeat revoke, case-folded email, re-grant,
//!   rate-limit edges, tenant isolation, concurrency, pagination).
//! - [`linearizability`]: a checker for concurrent histories (Wing & Gong, with memoization);
//!   the `concurrent_history` cases record N tasks' calls and check them against a spec.
//! - [`harness`]: what a backend supplies (one small file in `credo-conformance-backends`).
//! - [`runner`] and [`report`]: run the suite, print and write the matrix.
//!
//! The harnesses of the project's backends live in `credo-conformance-backends`, so this crate
//! depends on no adapter.
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn credo_conformance::Harness>) {
//! use credo_conformance::{report, runner};
//! let results = runner::run_suite(backend, runner::RunOptions::default()).await;
//! println!("{}", report::markdown(&results));
//! # }
//! ```

pub mod cases;
pub mod docker;
pub mod harness;
pub mod linearizability;
pub mod model;
pub mod property;
pub mod report;
pub mod runner;
mod support;

pub use harness::{Harness, Port, Stores, Support};
pub use report::{CaseReport, Outcome};
pub use runner::{Ctx, RunOptions, Suite, run_suite};
