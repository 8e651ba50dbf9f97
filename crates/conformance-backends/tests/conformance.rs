//! The whole suite against one backend: `CREDO_CONFORMANCE_BACKEND` names it (`inmemory` when
//! unset, so `cargo test` always runs the embedded default). Every case must pass or be n/a; a
//! named backend whose server cannot be reached fails. `cargo xtask mutants` runs this test as
//! the verdict on each mutant of an adapter; `cargo xtask conformance` runs the whole matrix.

use credo_conformance::{Outcome, RunOptions, report, run_suite};
use credo_conformance_backends as backends;

/// Names the backend this test runs.
const BACKEND_VAR: &str = "CREDO_CONFORMANCE_BACKEND";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_passes_the_whole_suite() {
    let name = std::env::var(BACKEND_VAR).unwrap_or_else(|_| "inmemory".into());
    let all = backends::all();
    let known: Vec<&str> = all.iter().map(|h| h.name()).collect();
    let harness = all
        .iter()
        .find(|h| h.name() == name)
        .unwrap_or_else(|| panic!("{BACKEND_VAR}={name:?}: unknown backend; known: {known:?}"))
        .clone();
    let results = run_suite(harness, RunOptions::default()).await;
    println!("{}", report::markdown(&results));
    let ran = results
        .iter()
        .filter(|r| r.outcome == Outcome::Pass)
        .count();
    let failures: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Pass | Outcome::NotApplicable))
        .collect();
    assert!(
        failures.is_empty(),
        "{name}: {} case(s) did not pass:\n{failures:#?}",
        failures.len()
    );
    assert!(
        ran >= 5,
        "{name}: suite unexpectedly small: {ran} cases ran"
    );
}
