//! Facts about this machine that the test servers depend on, shared with `cargo xtask
//! services` so that both find the same PostgreSQL and agree on when to drop root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's PostgreSQL packages put one directory per major version.
pub const PG_BASE: &str = "/usr/lib/postgresql";

/// Whether this process runs as root (PostgreSQL refuses to: its tools then run as the
/// `postgres` user).
#[must_use]
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The PostgreSQL binaries: those of `data`'s major version when it holds a cluster, else
/// those of the highest version under [`PG_BASE`] (compared as numbers: 17 above 9.6), else the
/// directory of an `initdb` on `PATH`.
#[must_use]
pub fn pg_bin(data: Option<&Path>) -> Option<PathBuf> {
    let base = Path::new(PG_BASE);
    if let Some(v) = data.and_then(|d| std::fs::read_to_string(d.join("PG_VERSION")).ok()) {
        let bin = base.join(v.trim()).join("bin");
        if bin.join("pg_ctl").is_file() {
            return Some(bin);
        }
    }
    let installed = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(_, p)| p.join("bin").join("initdb").is_file());
    highest_version(installed)
        .map(|dir| dir.join("bin"))
        .or_else(|| {
            let initdb = std::fs::canonicalize(which("initdb")?).ok()?;
            Some(initdb.parent()?.to_path_buf())
        })
}

/// The entry whose name is the highest version number (`15`, `9.6`); other names are ignored.
fn highest_version(entries: impl Iterator<Item = (String, PathBuf)>) -> Option<PathBuf> {
    entries
        .filter_map(|(name, path)| {
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((version, path))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, path)| path)
}

/// `name` on `PATH` (or in the usual system directories), if it is an executable file.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_version_wins_as_a_number_not_as_text() {
        let entries = ["9.6", "17", "15", "common", ""]
            .map(|n| (n.to_string(), PathBuf::from(format!("/pg/{n}"))));
        assert_eq!(
            highest_version(entries.into_iter()),
            Some(PathBuf::from("/pg/17"))
        );
        assert_eq!(highest_version(std::iter::empty()), None);
    }

    #[test]
    fn which_finds_an_executable_and_not_a_missing_one() {
        assert!(which("sh").is_some());
        assert!(which("credo-no-such-tool").is_none());
    }
}
