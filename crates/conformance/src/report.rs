//! The backend x port x case matrix, printed and written as Markdown and JSON.

use crate::harness::Port;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Outcome of one case on one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ran and held.
    Pass,
    /// Ran and did not hold (or panicked, or timed out).
    Fail,
    /// Not run: the backend's server could not be reached.
    Skipped,
    /// Not run: the backend deliberately does not implement the port.
    NotApplicable,
}

impl Outcome {
    /// Short cell text.
    pub fn symbol(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skipped",
            Outcome::NotApplicable => "n/a",
        }
    }
}

/// One record of the report.
#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    /// Backend name.
    pub backend: String,
    /// Port.
    pub port: Port,
    /// Case name.
    pub case: String,
    /// Outcome.
    pub outcome: Outcome,
    /// Why it failed, was skipped or is not applicable.
    pub reason: Option<String>,
    /// Wall time of the case.
    pub duration_ms: u64,
}

/// Counts of each outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skipped: usize,
    /// Not applicable.
    pub not_applicable: usize,
}

/// Counts outcomes.
pub fn summarize(reports: &[CaseReport]) -> Summary {
    let mut s = Summary::default();
    for r in reports {
        match r.outcome {
            Outcome::Pass => s.pass += 1,
            Outcome::Fail => s.fail += 1,
            Outcome::Skipped => s.skipped += 1,
            Outcome::NotApplicable => s.not_applicable += 1,
        }
    }
    s
}

/// The matrix as a Markdown document: one row per port and case, one column per backend,
/// then the reasons of every failure, skip and not-applicable cell.
pub fn markdown(reports: &[CaseReport]) -> String {
    let backends: Vec<&str> = {
        let mut seen = Vec::new();
        for r in reports {
            if !seen.contains(&r.backend.as_str()) {
                seen.push(r.backend.as_str());
            }
        }
        seen
    };
    let mut rows: BTreeMap<(Port, &str), BTreeMap<&str, &CaseReport>> = BTreeMap::new();
    for r in reports {
        rows.entry((r.port, r.case.as_str()))
            .or_default()
            .insert(r.backend.as_str(), r);
    }
    let mut md = String::from("# Conformance report\n\n");
    md += &format!("| port | case | {} |\n", backends.join(" | "));
    md += &format!("|---|---|{}\n", "---|".repeat(backends.len()));
    for ((port, case), cells) in &rows {
        let cols: Vec<String> = backends
            .iter()
            .map(|b| {
                cells
                    .get(b)
                    .map_or("".to_string(), |r| r.outcome.symbol().to_string())
            })
            .collect();
        md += &format!("| {port} | {case} | {} |\n", cols.join(" | "));
    }
    md += "\n## Totals\n\n| backend | pass | fail | skipped | n/a |\n|---|---|---|---|---|\n";
    for b in &backends {
        let mine: Vec<CaseReport> = reports
            .iter()
            .filter(|r| r.backend == *b)
            .cloned()
            .collect();
        let s = summarize(&mine);
        md += &format!(
            "| {b} | {} | {} | {} | {} |\n",
            s.pass, s.fail, s.skipped, s.not_applicable
        );
    }
    let notes: Vec<&CaseReport> = reports.iter().filter(|r| r.reason.is_some()).collect();
    if !notes.is_empty() {
        md += "\n## Reasons\n\n";
        let mut seen = BTreeSet::new();
        for r in notes {
            let reason = r.reason.as_deref().unwrap_or_default();
            // n/a and skip reasons repeat per case: list each once per backend and port.
            let key = (
                r.backend.clone(),
                r.port,
                r.outcome == Outcome::Fail,
                if r.outcome == Outcome::Fail {
                    r.case.clone()
                } else {
                    String::new()
                },
            );
            if !seen.insert(key) {
                continue;
            }
            let what = if r.outcome == Outcome::Fail {
                format!("{}/{}", r.port, r.case)
            } else {
                format!("{}/*", r.port)
            };
            md += &format!(
                "- **{}** `{what}` {}: {}\n",
                r.backend,
                r.outcome.symbol(),
                reason.replace('\n', " ")
            );
        }
    }
    md
}

/// Writes `report.md` and `report.json` into `dir`.
pub fn write(dir: &Path, reports: &[CaseReport]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("report.md"), markdown(reports))?;
    let json = serde_json::to_string_pretty(reports).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("report.json"), json)
}
