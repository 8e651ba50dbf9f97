//! The conformance matrix: every backend built in (or those named) x port x case, printed
//! and written to `target/conformance/report.{md,json}`. `cargo xtask conformance` runs it, so
//! that xtask itself links no driver.
//!
//! Usage: `conformance-matrix [--backend NAME]... [--cases N] [--filter TEXT]`. Exits 1 on a
//! failed case, and on a skipped one under `CREDO_TEST_REQUIRE=all`; 2 on bad arguments.

use credo_conformance::report::{self, CaseReport, Outcome};
use credo_conformance::{RunOptions, run_suite};
use credo_conformance_backends as backends;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str =
    "usage: cargo xtask conformance [--backend NAME]... [--cases N] [--filter TEXT]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match conformance(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("conformance: {e}");
            ExitCode::from(2)
        }
    }
}

/// `target/conformance` of the workspace (or of `CARGO_TARGET_DIR`).
fn report_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // crates/conformance-backends -> the workspace root.
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2);
            root.expect("the crate lives in the workspace")
                .join("target")
        })
        .join("conformance")
}

struct ConformanceArgs {
    backends: Vec<String>,
    options: RunOptions,
}

fn parse_conformance(args: &[String]) -> Result<ConformanceArgs, String> {
    let mut out = ConformanceArgs {
        backends: Vec::new(),
        options: RunOptions::default(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--backend" => out.backends.push(value("--backend")?),
            "--cases" => out.options.proptest_cases = cases(&value("--cases")?)?,
            "--filter" => out.options.filter = Some(value("--filter")?),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(out)
}

/// The value of `--cases`: sequences per property test, at least 1.
fn cases(v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--cases: not a positive number: {v}"))
}

fn conformance(args: &[String]) -> Result<bool, String> {
    let args = parse_conformance(args)?;
    let available = backends::all();
    let chosen = if args.backends.is_empty() {
        available
    } else {
        let mut chosen = Vec::new();
        for name in &args.backends {
            match available.iter().find(|h| h.name() == name) {
                Some(h) => chosen.push(h.clone()),
                None => {
                    let known: Vec<_> = available.iter().map(|h| h.name()).collect();
                    return Err(match backends::PLANNED.iter().find(|(n, _)| n == name) {
                        Some((_, issue)) => {
                            format!("backend {name:?} is not implemented yet: {issue}")
                        }
                        None => format!(
                            "unknown backend {name:?}; implemented: {}",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        chosen
    };
    let require_all = std::env::var("CREDO_TEST_REQUIRE").is_ok_and(|v| v == "all");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let started = std::time::Instant::now();
    let mut results: Vec<CaseReport> = Vec::new();
    for harness in chosen {
        let name = harness.name();
        let t = std::time::Instant::now();
        let mine = runtime.block_on(run_suite(harness, args.options.clone()));
        let s = report::summarize(&mine);
        eprintln!(
            "conformance: {name}: {} pass, {} fail, {} skipped, {} n/a in {:.2?} ({} property cases each)",
            s.pass,
            s.fail,
            s.skipped,
            s.not_applicable,
            t.elapsed(),
            args.options.proptest_cases
        );
        results.extend(mine);
    }
    let md = report::markdown(&results);
    println!("{md}");
    let dir = report_dir();
    report::write(&dir, &results).map_err(|e| format!("writing {}: {e}", dir.display()))?;
    let s = report::summarize(&results);
    println!(
        "wrote {} and report.json in {:.2?}",
        dir.join("report.md").display(),
        started.elapsed()
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Fail)
        .collect();
    for f in &failed {
        eprintln!(
            "\nFAILED {}/{}/{}:\n{}",
            f.backend,
            f.port,
            f.case,
            f.reason.as_deref().unwrap_or("")
        );
    }
    if require_all && s.skipped > 0 {
        eprintln!(
            "CREDO_TEST_REQUIRE=all: {} case(s) skipped, which counts as failure",
            s.skipped
        );
    }
    println!(
        "conformance: {} passed, {} failed, {} skipped",
        s.pass, s.fail, s.skipped
    );
    Ok(s.fail == 0 && !(require_all && s.skipped > 0))
}
