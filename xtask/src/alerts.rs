//! `cargo xtask alerts`: `promtool check rules` and `promtool test rules` over
//! `deploy/prometheus/`, and `promtool check config` over its `prometheus.yml` (the compose
//! stack's Prometheus; Debian's `prometheus` package provides promtool; installed when
//! missing). Part of `cargo xtask test`.

use crate::services::Services;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `*.yml` files directly in `dir`, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

fn promtool_present() -> bool {
    Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Checks the rules and runs their unit tests; false when either fails.
pub fn alerts(services: &Services) -> Result<bool, String> {
    if !promtool_present() {
        services.apt_install("prometheus", "promtool")?;
    }
    let dir = crate::workspace_root().join("deploy/prometheus");
    const CONFIG: &str = "prometheus.yml";
    let rules: Vec<PathBuf> = yaml_files(&dir)?
        .into_iter()
        .filter(|p| !p.ends_with(CONFIG))
        .collect();
    let tests = yaml_files(&dir.join("tests"))?;
    if rules.is_empty() || tests.is_empty() {
        return Err(format!(
            "{}: expected rule files and tests/ with their unit tests",
            dir.display()
        ));
    }
    let mut check = Command::new("promtool");
    check.args(["check", "rules"]).args(&rules);
    if !crate::run(&mut check)? {
        return Ok(false);
    }
    let mut test = Command::new("promtool");
    test.args(["test", "rules"]).args(&tests);
    if !crate::run(&mut test)? {
        return Ok(false);
    }
    // Its rule_files are relative to it, as the container reads them.
    let mut config = Command::new("promtool");
    config.args(["check", "config"]).arg(dir.join(CONFIG));
    crate::run(&mut config)
}
