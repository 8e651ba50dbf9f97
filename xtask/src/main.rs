//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `conformance [--backend NAME]... [--cases N] [--filter TEXT]`: the backend x port x case
//!   matrix, printed and written to `target/conformance/report.{md,json}` (by the
//!   `conformance-matrix` binary of `credo-conformance-backends`: xtask links no driver).
//! - `test`: the alert rules' checks (`alerts`), then starts the test servers (`services
//!   up`), runs every test of the workspace and every benchmark once on small inputs (smoke),
//!   then the full conformance matrix with
//!   `CREDO_TEST_REQUIRE=all`, then `services backups on` and `off` when it started PostgreSQL
//!   itself, and stops the servers it started (the README's test command; `.ci/run` calls it).
//! - `alerts`: `promtool check rules` and `promtool test rules` over `deploy/prometheus/`
//!   (installs Debian's `prometheus` package when promtool is missing); part of `test`.
//! - `drill`: the recovery drills (point-in-time recovery with pgBackRest, migration
//!   rollback) with their figures (installs Debian's `pgbackrest` when missing); `test` runs
//!   them too.
//! - `bench [--quick | --smoke] [FILTER]`: the criterion benchmarks of `crates/bench`, ours
//!   beside each baseline, printed as one table of ratios and written to
//!   `target/bench/report.json`; `--smoke` runs each once on small inputs (as `test` does).
//! - `mutants [--package NAME]... [--shard K/N] [--file GLOB]... [--re REGEX] [--list]`:
//!   cargo-mutants on the adapters and `ports`, each judged by its backend's conformance suite;
//!   reports in `target/mutation/` (see `docs/mutation.md`).
//! - `build-deps`: installs the C libraries the drivers build against when missing (OpenSSL's
//!   headers for librdkafka's TLS, with apt-get); `conformance` and `test` do it first, and
//!   `.ci/run` before its lints.
//! - `services up | down | status | env | backups on|status|off`: PostgreSQL, Redis and a
//!   Kafka-protocol broker as local processes for the tests (see `services/mod.rs`), and
//!   pgBackRest archiving and backups for that PostgreSQL.

mod alerts;
mod bench;
mod drill;
mod mutants;
mod services;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <conformance [--backend NAME]... [--cases N] [--filter TEXT] \
                     | test | build-deps | alerts | drill | bench [--quick | --smoke] [FILTER] | mutants [--package NAME]... [--shard K/N] \
                     | services <up | down | status | env | backups on|status|off>>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("conformance") => conformance(&args[1..]),
        Some("test") if args.len() == 1 => test(),
        Some("test") => Err(format!(
            "test takes no arguments, got {:?}\n{USAGE}",
            &args[1..]
        )),
        Some("build-deps") if args.len() == 1 => build_deps().map(|()| true),
        Some("alerts") if args.len() == 1 => {
            services::Services::new().and_then(|s| alerts::alerts(&s))
        }
        Some("drill") => drill::drill(&args[1..]),
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

/// `cargo xtask conformance`: checks the flags (a typo must not start a build and a run),
/// then runs the matrix binary of `credo-conformance-backends`, which links the drivers that
/// xtask does not.
fn conformance(args: &[String]) -> Result<bool, String> {
    check_conformance_flags(args)?;
    build_deps()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "credo-conformance-backends",
        "--bin",
        "conformance-matrix",
        "--",
    ])
    .args(args);
    run(&mut cmd)
}

/// What the drivers build against: OpenSSL for librdkafka's TLS and SCRAM (rdkafka's `ssl`
/// feature finds it with pkg-config). Debian's `libssl-dev` (the system's OpenSSL, patched by
/// the distribution) is installed with apt-get when pkg-config does not know it.
fn build_deps() -> Result<(), String> {
    let has_openssl = || {
        Command::new("pkg-config")
            .args(["--exists", "openssl"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_openssl() {
        return Ok(());
    }
    let services = services::Services::new()?;
    services.apt_install(
        "pkg-config",
        "pkg-config (rdkafka's build finds OpenSSL with it)",
    )?;
    services.apt_install(
        "libssl-dev",
        "OpenSSL's headers (librdkafka's TLS builds against them)",
    )?;
    if has_openssl() {
        Ok(())
    } else {
        Err("apt-get installed libssl-dev but pkg-config does not find openssl".into())
    }
}

/// Only `--backend NAME`, `--cases N` and `--filter TEXT`, each with a value (the matrix
/// binary checks the values).
fn check_conformance_flags(args: &[String]) -> Result<(), String> {
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if !matches!(flag.as_str(), "--backend" | "--cases" | "--filter") {
            return Err(format!("unknown argument {flag:?}\n{USAGE}"));
        }
        match it.next() {
            None => return Err(format!("{flag} needs a value\n{USAGE}")),
            Some(v) if flag == "--cases" => {
                cases(v)?;
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The value of `--cases`: sequences per property test, at least 1.
pub(crate) fn cases(v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("--cases: not a positive number: {v}"))
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
    build_deps()?;
    let services = services::Services::new()?;
    // Seconds, and no server needed: a broken rule fails before the long part.
    if !alerts::alerts(&services)? {
        return Ok(false);
    }
    drill::tools(&services)?;
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
    let mut passed = run_tests(&env);
    if matches!(passed, Ok(true)) && session.started(services::Service::Postgres) {
        passed = local_backups(&services);
    }
    let stopped = session.stop();
    if let (Err(_), Err(e)) = (&passed, &stopped) {
        eprintln!("xtask: {e}");
    }
    let passed = passed?;
    stopped?;
    Ok(passed)
}

/// `cargo xtask services backups on`, then `off`, on the server this run started (never on
/// one the caller runs): the local server setup's pgBackRest switch keeps working.
fn local_backups(services: &services::Services) -> Result<bool, String> {
    let started = std::time::Instant::now();
    services.backups_on()?;
    let held = services.backups_hold_a_full_backup()?;
    services.backups_off()?;
    eprintln!(
        "xtask: local server backups on, a full backup verified{}, off again ({:.1} s)",
        if held {
            ""
        } else {
            " BUT NOT LISTED by pgbackrest info"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(held)
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
    // Every benchmark once, on small inputs, so that none rots; it reuses the build above.
    let mut benches = bench::smoke(&cargo, None);
    with_env(&mut benches);
    if !run(&mut benches)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn conformance_takes_only_its_three_flags_each_with_a_value() {
        assert!(check_conformance_flags(&[]).is_ok());
        let ok = args(&["--backend", "redis", "--cases", "8", "--filter", "users/"]);
        assert!(check_conformance_flags(&ok).is_ok());
        let typo = check_conformance_flags(&args(&["--backends", "redis"])).unwrap_err();
        assert!(
            typo.starts_with("unknown argument \"--backends\""),
            "{typo}"
        );
        let bare = check_conformance_flags(&args(&["--backend", "redis", "--cases"])).unwrap_err();
        assert!(bare.starts_with("--cases needs a value"), "{bare}");
        let zero = check_conformance_flags(&args(&["--cases", "0"])).unwrap_err();
        assert_eq!(zero, "--cases: not a positive number: 0");
    }
}
