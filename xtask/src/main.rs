//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `conformance [--backend NAME]... [--cases N] [--filter TEXT]`: the backend x port x case
//!   matrix, printed and written to `target/conformance/report.{md,json}`.
//! - `test`: starts the test servers (`services up`), runs every test of the workspace, then
//!   the full conformance matrix with `CREDO_TEST_REQUIRE=all`, and stops the servers it
//!   started (the README's test command; `.ci/run` calls it).
//! - `bench [--quick] [FILTER]`: the criterion benchmarks of `crates/bench`, ours beside each
//!   baseline, printed as one table of ratios and written to `target/bench/report.json`.
//! - `mutants [--package NAME]... [--shard K/N] [--file GLOB]... [--re REGEX] [--list]`:
//!   cargo-mutants on the adapters and `ports`, each judged by its backend's conformance suite;
//!   reports in `target/mutation/` (see `docs/mutation.md`).
//! - `services up | down | status | env`: PostgreSQL, Redis and a Kafka-protocol broker as
//!   local processes for the tests (see `services.rs`).

mod bench;
mod mutants;
mod services;

use credo_conformance::report::{self, CaseReport, Outcome};
use credo_conformance::{RunOptions, run_suite};
use credo_conformance_backends as backends;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <conformance [--backend NAME]... [--cases N] [--filter TEXT] \
                     | test | bench [--quick] [FILTER] | mutants [--package NAME]... [--shard K/N] \
                     | services <up | down | status | env>>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance(&args[1..]),
        Some("test") if args.len() == 1 => test(),
        Some("test") => Err(format!(
            "test takes no arguments, got {:?}\n{USAGE}",
            &args[1..]
        )),
        Some("bench") => bench::bench(&args[1..]),
        Some("mutants") => mutants::mutants(&args[1..]),
        Some("services") => services::cli(&args[1..]),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::from(2)
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
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
    let dir = target_dir().join("conformance");
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

fn run(cmd: &mut Command) -> Result<bool, String> {
    eprintln!("xtask: running {cmd:?}");
    cmd.current_dir(workspace_root())
        .status()
        .map(|s| s.success())
        .map_err(|e| format!("{cmd:?}: {e}"))
}

/// Every test of the workspace, then the conformance matrix with every backend required, with
/// the test servers running: those this call starts are stopped again at the end, whatever
/// the outcome. A server whose `CREDO_TEST_*` variable is already set is used as given.
fn test() -> Result<bool, String> {
    let services = services::Services::new()?;
    let mut session = services::ServiceSession::new(&services);
    let mut env: Vec<(&str, String)> = vec![("CREDO_TEST_REQUIRE", "all".into())];
    for s in services::Service::ALL {
        match std::env::var(s.env_var()) {
            Ok(v) if !v.is_empty() => {
                eprintln!("xtask: {} is set; not starting {}", s.env_var(), s.name());
            }
            _ => {
                session.up(s)?;
                env.push((s.env_var(), s.env_value().into()));
            }
        }
    }
    if std::env::var(services::TANSU_BIN_VAR).is_err() {
        let bin = services.tansu_binary()?;
        env.push((services::TANSU_BIN_VAR, bin.display().to_string()));
    }
    let passed = run_tests(&env);
    let stopped = session.stop();
    if let (Err(_), Err(e)) = (&passed, &stopped) {
        eprintln!("xtask: {e}");
    }
    let passed = passed?;
    stopped?;
    Ok(passed)
}

fn run_tests(env: &[(&str, String)]) -> Result<bool, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let with_env = |cmd: &mut Command| {
        for (k, v) in env {
            cmd.env(k, v);
        }
    };
    let mut cargo_test = Command::new(&cargo);
    // --show-output: the fault and figures tests print what they measured.
    cargo_test.args([
        "test",
        "--workspace",
        "--all-features",
        "--",
        "--show-output",
    ]);
    with_env(&mut cargo_test);
    if !run(&mut cargo_test)? {
        return Ok(false);
    }
    // The facade once more with its default features only: what a service gets without
    // asking for a backend (and the errors for backends it did not compile in).
    let mut facade_default = Command::new(&cargo);
    facade_default.args(["test", "-p", "credo-storage"]);
    with_env(&mut facade_default);
    if !run(&mut facade_default)? {
        return Ok(false);
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut conformance = Command::new(exe);
    conformance.arg("conformance");
    with_env(&mut conformance);
    run(&mut conformance)
}
