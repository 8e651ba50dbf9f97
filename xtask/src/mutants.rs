//! `cargo xtask mutants [--package NAME]... [--shard K/N] [--file GLOB]... [--re REGEX]`:
//! cargo-mutants on an adapter (or `ports`), with the conformance suite of its backend as the
//! verdict on every mutant, against the same servers `cargo xtask test` uses.
//!
//! Per package it writes `target/mutation/<name>[-K-of-N]/report.md` (caught, missed, timeouts,
//! unviable, the score, and every survivor with its location) beside cargo-mutants' own
//! `mutants.out/`. Survivors listed in `docs/mutation/equivalent.txt` with a reason are
//! reported as equivalent and left out of the score.

use crate::services::{Service, ServiceSession, Services};
mod report;

use crate::{target_dir, workspace_root};
use report::{Report, carry_over, equivalents, names};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The cargo-mutants release the reports were measured with.
const CARGO_MUTANTS_VERSION: &str = "27.1.0";

/// What to mutate and which suite judges it.
struct Target {
    name: &'static str,
    package: &'static str,
    /// The conformance backend whose suite is the verdict.
    backend: &'static str,
    services: &'static [Service],
    /// Test targets beyond the conformance suite and the package's unit tests.
    extra_tests: &'static [&'static str],
    /// Packages whose unit tests join the verdict.
    extra_packages: &'static [&'static str],
    /// The `credo-conformance-backends` feature that builds this backend's harness; the others
    /// stay out of the build, so a mutant rebuilds no driver its verdict does not run.
    harness_feature: Option<&'static str>,
}

const TARGETS: [Target; 5] = [
    Target {
        name: "inmemory",
        package: "credo-adapters-inmemory",
        backend: "inmemory",
        services: &[],
        extra_tests: &[],
        extra_packages: &[],
        harness_feature: None,
    },
    Target {
        name: "postgres",
        package: "credo-adapters-postgres",
        backend: "postgres",
        services: &[Service::Postgres],
        // Closing, migrations, the outbox's lease clock and revoke-all under a row lock.
        // (`faults`, an outage on a private cluster, would add 9 s to every verdict.)
        extra_tests: &["lifecycle", "migrations", "outbox", "revoke_all"],
        extra_packages: &[],
        harness_feature: Some("postgres"),
    },
    Target {
        name: "redis",
        package: "credo-adapters-redis",
        backend: "redis",
        services: &[Service::Redis],
        // Start-up warnings, health probe options, stored keys and outages: nothing in the
        // suite sees them.
        extra_tests: &["server", "stored_keys", "redis"],
        extra_packages: &[],
        harness_feature: Some("redis"),
    },
    Target {
        name: "kafka",
        package: "credo-adapters-kafka",
        backend: "kafka",
        services: &[Service::Postgres, Service::Kafka],
        // Headers, dead letters, health and delivery failures (9 s; the fault and figures
        // tests would add minutes to every verdict).
        extra_tests: &["kafka"],
        extra_packages: &[],
        harness_feature: Some("kafka"),
    },
    Target {
        name: "ports",
        package: "credo-ports",
        backend: "inmemory",
        services: &[],
        extra_tests: &["fuzz"],
        // The oracle's cross-checks: properties comparing the model's own rules (validation,
        // email keys, changed fields, GCRA) with these, over whole value ranges.
        extra_packages: &["credo-conformance"],
        harness_feature: None,
    },
];

const USAGE: &str = "usage: cargo xtask mutants [--package inmemory|postgres|redis|kafka|ports]... \
                     [--shard K/N] [--cases N] [--file GLOB]... [--re REGEX] [--iterate] [--list]";

/// Sequences per property test in the verdict unless `--cases` says otherwise: a quarter of
/// the suite's default keeps a PostgreSQL verdict near half a minute.
const DEFAULT_CASES: u32 = 64;

struct Args {
    targets: Vec<&'static Target>,
    shard: Option<(u32, u32)>,
    files: Vec<String>,
    re: Option<String>,
    list: bool,
    /// Resume or refine an earlier run into the same report directory: cargo-mutants skips
    /// the mutants it recorded as caught or unviable there.
    iterate: bool,
    cases: u32,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut out = Args {
        targets: Vec::new(),
        shard: None,
        files: Vec::new(),
        re: None,
        list: false,
        iterate: false,
        cases: DEFAULT_CASES,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--package" | "-p" => {
                let v = value("--package")?;
                let t = TARGETS
                    .iter()
                    .find(|t| t.name == v || t.package == v)
                    .ok_or_else(|| format!("--package: unknown {v:?}\n{USAGE}"))?;
                out.targets.push(t);
            }
            "--shard" => {
                let v = value("--shard")?;
                out.shard = Some(parse_shard(&v)?);
            }
            "--file" | "-f" => out.files.push(value("--file")?),
            "--re" => out.re = Some(value("--re")?),
            "--cases" => out.cases = crate::cases(&value("--cases")?)?,
            "--list" => out.list = true,
            "--iterate" => out.iterate = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if out.targets.is_empty() {
        out.targets = TARGETS.iter().collect();
    }
    if out.iterate && out.shard.is_some() {
        // cargo-mutants slices what is left after skipping, so the slice would change.
        return Err(format!(
            "--iterate and --shard do not combine: iterate over the whole package\n{USAGE}"
        ));
    }
    Ok(out)
}

/// `K/N` with 1 ≤ K ≤ N (shards are numbered from 1 here, from 0 in cargo-mutants).
fn parse_shard(v: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--shard: expected K/N with 1 <= K <= N, got {v:?}");
    let (k, n) = v.split_once('/').ok_or_else(bad)?;
    let (k, n): (u32, u32) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

pub fn mutants(args: &[String]) -> Result<bool, String> {
    let args = parse(args)?;
    let tool = cargo_mutants()?;
    let mut all_passed = true;
    for target in &args.targets {
        let services = Services::new()?;
        let mut session = ServiceSession::new(&services);
        let mut env: Vec<(String, String)> = vec![
            ("CREDO_TEST_REQUIRE".into(), "all".into()),
            ("CREDO_CONFORMANCE_BACKEND".into(), target.backend.into()),
            ("PROPTEST_CASES".into(), args.cases.to_string()),
        ];
        if !args.list {
            for &s in target.services {
                match std::env::var(s.env_var()) {
                    Ok(v) if !v.is_empty() => env.push((s.env_var().into(), v)),
                    _ => {
                        session.up(s)?;
                        env.push((s.env_var().into(), s.env_value().into()));
                    }
                }
            }
        }
        let result = run_target(&tool, target, &args, &env);
        let stopped = session.stop();
        let passed = result?;
        stopped?;
        all_passed &= passed;
    }
    Ok(all_passed)
}

/// Cargo's feature arguments for the verdict's build (the same for cargo-mutants, whose own
/// flags of these names reach every cargo invocation it makes).
fn feature_args(target: &Target) -> Vec<String> {
    let mut v = vec!["--no-default-features".to_string()];
    if let Some(f) = target.harness_feature {
        v.extend([
            "--features".into(),
            format!("credo-conformance-backends/{f}"),
        ]);
    }
    v
}

/// `cargo test` arguments that select the verdict: the package's unit tests and the
/// conformance suite of its backend.
fn test_selection(target: &Target) -> Vec<String> {
    let mut v = vec!["--lib".to_string(), "--test".into(), "conformance".into()];
    for t in target.extra_tests {
        v.extend(["--test".to_string(), (*t).to_string()]);
    }
    v
}

fn run_target(
    tool: &Path,
    target: &Target,
    args: &Args,
    env: &[(String, String)],
) -> Result<bool, String> {
    // A shard or a subset writes beside the full run's report, never over it.
    let mut dir_name = target.name.to_string();
    if let Some((k, n)) = args.shard {
        dir_name += &format!("-{k}-of-{n}");
    }
    if !args.files.is_empty() || args.re.is_some() {
        dir_name += "-subset";
    }
    let out_dir = target_dir().join("mutation").join(dir_name);
    // The mutants this selection names, before any skipping.
    let selection = || {
        let mut cmd = Command::new(tool);
        cmd.current_dir(workspace_root()).arg("mutants");
        cmd.args(["--package", target.package]);
        for f in &args.files {
            cmd.args(["--file", f]);
        }
        if let Some(re) = &args.re {
            cmd.args(["--re", re]);
        }
        if let Some((k, n)) = args.shard {
            cmd.args(["--shard", &format!("{}/{n}", k - 1)]);
        }
        cmd
    };
    let mut cmd = selection();
    if args.iterate {
        cmd.arg("--iterate");
    }
    if args.list {
        cmd.arg("--list");
        if args.iterate {
            // What an iteration would test: the earlier run's lists are read from here.
            cmd.arg("--output").arg(&out_dir);
        }
        return crate::run(&mut cmd);
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    carry_over(&out_dir, args.iterate)?;
    // cargo-mutants 27 runs its baseline on the mutated package's tests only, which lack the
    // conformance suite; so the baseline runs here, in the source tree, and also sets the
    // timeout.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let baseline = |extra: &[&str]| -> Result<bool, String> {
        let mut cmd = Command::new(&cargo);
        cmd.args(["test", "--profile", "mutants", "-p", target.package]);
        cmd.args(["-p", "credo-conformance-backends"]);
        for p in target.extra_packages {
            cmd.args(["-p", p]);
        }
        cmd.args(test_selection(target))
            .args(feature_args(target))
            .args(extra);
        for (k, v) in env {
            cmd.env(k, v);
        }
        crate::run(&mut cmd)
    };
    if !baseline(&["--no-run"])? {
        return Err(format!("building the verdict for {} failed", target.name));
    }
    let started = Instant::now();
    if !baseline(&[])? {
        return Err(format!(
            "the unmutated tree fails its verdict for {}: fix that first",
            target.name
        ));
    }
    // A mutant that makes the suite hang (a claim that never ends, a lock never released)
    // counts as detected once it takes several times the unmutated suite's time.
    let test_timeout = (started.elapsed().as_secs() * 4 + 30).clamp(60, 1800);
    cmd.args([
        "--test-package",
        &std::iter::once(target.package)
            .chain(["credo-conformance-backends"])
            .chain(target.extra_packages.iter().copied())
            .collect::<Vec<_>>()
            .join(","),
    ]);
    for a in test_selection(target) {
        cmd.arg(format!("--cargo-test-arg={a}"));
    }
    cmd.args(feature_args(target));
    cmd.args(["--profile", "mutants", "--baseline", "skip"]);
    cmd.args(["--timeout", &test_timeout.to_string()]);
    // The first build in cargo-mutants' scratch copy compiles every dependency.
    cmd.args(["--build-timeout", "3600"]);
    cmd.arg("--output").arg(&out_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    // cargo-mutants exits non-zero when a mutant survives; the report says which.
    let status = cmd
        .status()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    let code = status.code().unwrap_or(-1);
    // 0: all caught, 2: some missed, 3: some timed out (cargo-mutants' documented codes).
    if !matches!(code, 0 | 2 | 3) {
        return Err(format!(
            "cargo mutants failed ({status}); see {}",
            out_dir.join("mutants.out").display()
        ));
    }
    let seconds = started.elapsed().as_secs();
    let mut report = Report::read(&out_dir.join("mutants.out"), &equivalents()?)?;
    if args.iterate {
        // Earlier outcomes of mutants that no longer exist (code edited since) do not count.
        let listed = selection()
            .arg("--list")
            .output()
            .map_err(|e| format!("{}: {e}", tool.display()))?;
        let current = names(&String::from_utf8_lossy(&listed.stdout))
            .into_iter()
            .collect();
        report.keep_only(&current);
    }
    let mut md = report.markdown(target, args.cases, seconds);
    // A server left in a bad state half-way (a test killed before it restored a setting, a
    // shared server changed by hand) fails every later verdict, and each would count as a
    // caught mutant: the unmutated tree must still pass at the end, or the run is void.
    let still_sound = baseline(&[])?;
    if !still_sound {
        md = format!(
            "# VOID: the unmutated tree failed its verdict after the run

             Some verdicts may have failed for a reason other than their mutant (a test              server left in a bad state?). Fix the cause and run again.

{md}"
        );
    }
    std::fs::write(out_dir.join("report.md"), &md)
        .map_err(|e| format!("{}: {e}", out_dir.display()))?;
    println!("{md}");
    if !still_sound {
        return Err(format!(
            "{}: the unmutated tree failed its verdict after the run; the report is void",
            target.name
        ));
    }
    Ok(report.survivors().next().is_none())
}

/// cargo-mutants from `PATH`, else `target/tools/bin` (installed there on first use).
fn cargo_mutants() -> Result<PathBuf, String> {
    let local = target_dir().join("tools/bin/cargo-mutants");
    for candidate in [PathBuf::from("cargo-mutants"), local.clone()] {
        let ok = Command::new(&candidate)
            .args(["mutants", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate);
        }
    }
    eprintln!(
        "xtask: installing cargo-mutants {CARGO_MUTANTS_VERSION} into {} (about 2 minutes)",
        target_dir().join("tools").display()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut install = Command::new(cargo);
    install
        .args(["install", "--locked", "cargo-mutants", "--version"])
        .arg(CARGO_MUTANTS_VERSION)
        .arg("--root")
        .arg(target_dir().join("tools"));
    if !crate::run(&mut install)? {
        return Err("installing cargo-mutants failed".into());
    }
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_counted_from_one() {
        assert_eq!(parse_shard("1/4"), Ok((1, 4)));
        assert_eq!(parse_shard("4/4"), Ok((4, 4)));
        assert!(parse_shard("0/4").is_err());
        assert!(parse_shard("5/4").is_err());
        assert!(parse_shard("x").is_err());
    }

    #[test]
    fn unknown_flags_are_refused() {
        assert!(parse(&["--pakage".into(), "redis".into()]).is_err());
        assert!(parse(&["--package".into(), "mysql".into()]).is_err());
        let both = ["--iterate", "--shard", "1/2"].map(String::from);
        assert!(parse(&both).is_err());
        let a = parse(&["--package".into(), "redis".into()]).unwrap();
        assert_eq!(a.targets.len(), 1);
        assert_eq!(a.targets[0].package, "credo-adapters-redis");
    }
}
