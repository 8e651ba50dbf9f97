//! The report of one `cargo xtask mutants` run: cargo-mutants' outcome lists (with what
//! earlier `--iterate` runs recorded), the committed equivalent survivors, the score and
//! `report.md`.

use super::{CARGO_MUTANTS_VERSION, Target};
use crate::workspace_root;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The committed list of equivalent survivors: `<file>: <mutation> # <reason>` per line, the
/// mutation as cargo-mutants names it without line and column.
pub(super) fn equivalents() -> Result<BTreeMap<String, String>, String> {
    let path = workspace_root().join("docs/mutation/equivalent.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        let (name, reason) = line.rsplit_once(" # ").ok_or_else(|| {
            format!(
                "{}:{}: expected `<file>: <mutation> # <reason>`",
                path.display(),
                i + 1
            )
        })?;
        out.insert(name.trim().to_string(), reason.trim().to_string());
    }
    Ok(out)
}

/// A mutant's name without its line and column, so the list survives edits above it.
fn stable_name(name: &str) -> String {
    // `path:line:col: mutation`
    let mut parts = name.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(line), Some(col), Some(rest))
            if line.chars().all(|c| c.is_ascii_digit())
                && col.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("{file}:{rest}")
        }
        _ => name.to_string(),
    }
}

/// Before a run into `out_dir`: with `--iterate`, appends what the previous run there caught
/// and found unviable to `earlier_{caught,unviable}.txt` (cargo-mutants skips those mutants and
/// lists them, unviable ones included, only as "previously caught"); without it, a fresh run,
/// removes those files.
pub(super) fn carry_over(out_dir: &Path, iterate: bool) -> Result<(), String> {
    for kind in ["caught", "unviable"] {
        let earlier = out_dir.join(format!("earlier_{kind}.txt"));
        if !iterate {
            let _ = std::fs::remove_file(&earlier);
            continue;
        }
        let mut text = std::fs::read_to_string(&earlier).unwrap_or_default();
        text += &std::fs::read_to_string(out_dir.join("mutants.out").join(format!("{kind}.txt")))
            .unwrap_or_default();
        std::fs::write(&earlier, text).map_err(|e| format!("{}: {e}", earlier.display()))?;
    }
    Ok(())
}

/// The mutant names in a cargo-mutants list (one per non-empty line).
pub(super) fn names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) struct Report {
    caught: Vec<String>,
    missed: Vec<String>,
    timeout: Vec<String>,
    unviable: Vec<String>,
    equivalent: BTreeMap<String, String>,
}

impl Report {
    pub(super) fn read(
        dir: &Path,
        equivalent: &BTreeMap<String, String>,
    ) -> Result<Report, String> {
        let list = |file: &str| -> Result<Vec<String>, String> {
            let p: PathBuf = dir.join(file);
            Ok(names(
                &std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
            ))
        };
        // What earlier iterations recorded (see `carry_over`), beside this run's lists.
        let earlier = |kind: &str| -> Vec<String> {
            dir.parent()
                .and_then(|d| std::fs::read_to_string(d.join(format!("earlier_{kind}.txt"))).ok())
                .map(|t| names(&t))
                .unwrap_or_default()
        };
        let merged = |kind: &str| -> Result<Vec<String>, String> {
            let mut v = earlier(kind);
            v.extend(list(&format!("{kind}.txt"))?);
            v.sort();
            v.dedup();
            Ok(v)
        };
        Ok(Report {
            caught: merged("caught")?,
            missed: list("missed.txt")?,
            timeout: list("timeout.txt")?,
            unviable: merged("unviable")?,
            equivalent: equivalent.clone(),
        })
    }

    /// Drops every outcome of a mutant not in `current` (see `--iterate`).
    pub(super) fn keep_only(&mut self, current: &std::collections::HashSet<String>) {
        for list in [
            &mut self.caught,
            &mut self.missed,
            &mut self.timeout,
            &mut self.unviable,
        ] {
            list.retain(|m| current.contains(m));
        }
    }

    fn reason(&self, name: &str) -> Option<&String> {
        self.equivalent.get(&stable_name(name))
    }

    pub(super) fn survivors(&self) -> impl Iterator<Item = &String> {
        self.missed.iter().filter(|m| self.reason(m).is_none())
    }

    pub(super) fn markdown(&self, target: &Target, cases: u32, seconds: u64) -> String {
        let equivalent = self.missed.len() - self.survivors().count();
        let survivors = self.survivors().count();
        // A timeout is a detected change of behaviour (the suite did not pass).
        let detected = self.caught.len() + self.timeout.len();
        let judged = detected + survivors;
        let score = if judged == 0 {
            100.0
        } else {
            100.0 * detected as f64 / judged as f64
        };
        let mut md = format!(
            "# Mutation report: {} ({})\n\n\
             Verdict: the conformance suite on `{}` ({} sequences per property test), \
             the package's unit tests{}; cargo-mutants {CARGO_MUTANTS_VERSION}; {seconds} s; \
             the unmutated tree passed its verdict before and after the run.\n\n\
             | caught | timeouts | missed | of which equivalent | unviable | score |\n\
             |---|---|---|---|---|---|\n\
             | {} | {} | {} | {equivalent} | {} | {score:.1} % |\n\n\
             Score: (caught + timeouts) / (caught + timeouts + missed − equivalent).\n",
            target.name,
            target.package,
            target.backend,
            cases,
            target
                .extra_tests
                .iter()
                .map(|t| format!(", tests/{t}.rs"))
                .chain(
                    target
                        .extra_packages
                        .iter()
                        .map(|p| format!(", the unit tests of {p}"))
                )
                .collect::<String>(),
            self.caught.len(),
            self.timeout.len(),
            self.missed.len(),
            self.unviable.len(),
        );
        md += "\n## Survivors\n\n";
        if survivors == 0 {
            md += "None.\n";
        }
        for m in self.survivors() {
            md += &format!("- {m}\n");
        }
        if equivalent > 0 {
            md += "\n## Equivalent (docs/mutation/equivalent.txt)\n\n";
            for m in self.missed.iter() {
                if let Some(r) = self.reason(m) {
                    md += &format!("- {m}: {r}\n");
                }
            }
        }
        if !self.timeout.is_empty() {
            md += "\n## Timeouts\n\n";
            for m in &self.timeout {
                md += &format!("- {m}\n");
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_line_and_column_only() {
        assert_eq!(
            stable_name("crates/a/src/b.rs:12:9: replace + with - in f"),
            "crates/a/src/b.rs: replace + with - in f"
        );
        assert_eq!(stable_name("odd name"), "odd name");
        assert_eq!(
            stable_name("crates/a/src/b.rs: replace x in <impl A for B>::c"),
            "crates/a/src/b.rs: replace x in <impl A for B>::c"
        );
    }

    /// After `--iterate`, what earlier runs caught or found unviable keeps counting as such,
    /// and a fresh run forgets it.
    #[test]
    fn iterations_carry_earlier_outcomes_over() {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        let out = dir.join("mutants.out");
        std::fs::create_dir_all(&out).unwrap();
        let write = |name: &str, text: &str| std::fs::write(out.join(name), text).unwrap();
        let lists = |caught: &str, unviable: &str| {
            write("caught.txt", caught);
            write("unviable.txt", unviable);
            write("missed.txt", "");
            write("timeout.txt", "");
        };
        lists("a.rs:1:1: x\n", "a.rs:2:1: y\n");
        carry_over(&dir, true).unwrap();
        // The next iteration catches one more and finds nothing unviable.
        lists("a.rs:3:1: z\n", "");
        write("previously_caught.txt", "a.rs:1:1: x\na.rs:2:1: y\n");
        let mut r = Report::read(&out, &BTreeMap::new()).unwrap();
        assert_eq!((r.caught.len(), r.unviable.len()), (2, 1));
        // x's code was edited since: its earlier outcome no longer counts.
        r.keep_only(&["a.rs:2:1: y", "a.rs:3:1: z"].map(String::from).into());
        assert_eq!((r.caught.len(), r.unviable.len()), (1, 1));
        carry_over(&dir, false).unwrap();
        let r = Report::read(&out, &BTreeMap::new()).unwrap();
        assert_eq!((r.caught.len(), r.unviable.len()), (1, 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
