//! The whole suite against the in-memory backend: every case must pass.

use credo_conformance::backends::InMemoryHarness;
use credo_conformance::{Outcome, RunOptions, report, run_suite};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inmemory_passes_the_whole_suite() {
    let results = run_suite(Arc::new(InMemoryHarness), RunOptions::default()).await;
    let failures: Vec<_> = results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .collect();
    println!("{}", report::markdown(&results));
    assert!(
        results.len() >= 50,
        "suite unexpectedly small: {} cases",
        results.len()
    );
    assert!(
        failures.is_empty(),
        "{} case(s) did not pass:\n{failures:#?}",
        failures.len()
    );
}
