//! `cargo xtask drill`: the recovery drills of `crates/drills` (point-in-time recovery with
//! pgBackRest, migration rollback, Redis loss, audit log rebuilt from Kafka), each printing
//! its figures. Installs Debian's
//! `pgbackrest` and `redis-server` when they are missing; `cargo xtask test` runs the same drills with every other
//! test.

use crate::services::{Service, ServiceSession, Services};
use credo_testkit::system::which;
use std::process::Command;

/// Installs what the drills need and is not there yet (pgBackRest, redis-server).
pub fn tools(services: &Services) -> Result<(), String> {
    for (package, program) in [
        ("pgbackrest", "pgbackrest"),
        ("redis-server", "redis-server"),
    ] {
        if which(program).is_none() {
            services.apt_install(package, program)?;
        }
    }
    Ok(())
}

/// Runs every drill, one at a time, with its output, with the test servers up (the audit
/// rebuild uses the shared PostgreSQL and broker); those this call starts are stopped again.
pub fn drill(args: &[String]) -> Result<bool, String> {
    if !args.is_empty() {
        return Err(format!("drill takes no arguments, got {args:?}"));
    }
    let services = Services::new()?;
    tools(&services)?;
    let mut session = ServiceSession::new(&services);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "-p",
        "credo-drills",
        "--",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("CREDO_TEST_REQUIRE", "all");
    for s in Service::ALL {
        if std::env::var(s.env_var()).is_ok_and(|v| !v.is_empty()) {
            continue;
        }
        session.up(s)?;
        cmd.env(s.env_var(), s.env_value());
    }
    let passed = crate::run(&mut cmd);
    let stopped = session.stop();
    let passed = passed?;
    stopped?;
    Ok(passed)
}
