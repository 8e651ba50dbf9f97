//! The suite against one backend as a libtest-mimic test binary, one trial per case
//! (`backend/port/case`): `cargo test -- users/` runs just the matching cases and nextest can
//! pick one. `CREDO_CONFORMANCE_BACKEND` names the backend (`inmemory` when unset, so `cargo
//! test` always runs the embedded default); cases that do not apply to it are not listed. A
//! named backend whose server cannot be reached fails every case. Cases run one at a time
//! unless `--test-threads` says otherwise: several of them time what a server does.
//!
//! `tests/conformance.rs` of this crate (every backend compiled in) and `tests/cases.rs` of
//! `credo-conformance` (the in-memory backend only) are this function.

use crate as backends;
use credo_conformance::{Outcome, RunOptions, Suite, cases, runner};
use libtest_mimic::{Arguments, Failed, Trial};
use std::process::ExitCode;
use std::sync::Arc;

/// Names the backend this test runs.
const BACKEND_VAR: &str = "CREDO_CONFORMANCE_BACKEND";

/// Fewer applicable cases than this means the suite lost its cases, not that a backend serves
/// few ports.
const AT_LEAST: usize = 5;

/// Builds the trials of the backend `CREDO_CONFORMANCE_BACKEND` names and runs those the
/// command line selects.
pub fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads.get_or_insert(1);
    let name = std::env::var(BACKEND_VAR).unwrap_or_else(|_| "inmemory".into());
    let all = backends::all();
    let Some(harness) = all.iter().find(|h| h.name() == name).cloned() else {
        let known: Vec<&str> = all.iter().map(|h| h.name()).collect();
        eprintln!("{BACKEND_VAR}={name:?}: unknown backend; known: {known:?}");
        return ExitCode::FAILURE;
    };
    // The concurrency cases need real parallelism and the property tests block a worker of
    // their own.
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    );
    let applicable: Vec<_> = cases::all()
        .into_iter()
        .filter(|case| runner::not_applicable(harness.as_ref(), case).is_none())
        .collect();
    let not_applicable = cases::all().len() - applicable.len();
    // Listing the trials must not need the server.
    let suite = (!args.list)
        .then(|| Arc::new(runtime.block_on(Suite::new(harness, RunOptions::default()))));
    let mut trials = Vec::new();
    for case in applicable {
        let (runtime, suite) = (runtime.clone(), suite.clone());
        let trial = format!("{name}/{}/{}", case.port, case.name);
        trials.push(Trial::test(trial, move || {
            let suite = suite.expect("not listing");
            let report = runtime.block_on(suite.run(&case));
            match report.outcome {
                Outcome::Pass => Ok(()),
                other => Err(Failed::from(format!(
                    "{other:?}: {}",
                    report.reason.unwrap_or_default()
                ))),
            }
        }));
    }
    if trials.len() < AT_LEAST {
        eprintln!(
            "{name}: suite unexpectedly small: {} applicable cases",
            trials.len()
        );
        return ExitCode::FAILURE;
    }
    if !args.list {
        eprintln!("{name}: {not_applicable} cases do not apply to this backend (not listed)");
    }
    libtest_mimic::run(&args, trials).exit_code()
}
