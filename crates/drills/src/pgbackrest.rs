//! pgBackRest driven as an operator drives it: a stanza, WAL archiving, full and
//! differential backups into an encrypted repository, `check`, `verify`, and restores to a
//! point in time.

use credo_testkit::PrivatePostgres;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The stanza (pgBackRest's name for one cluster) of the drills.
const STANZA: &str = "credo";

/// A pgBackRest repository and configuration of their own, for one [`PrivatePostgres`].
pub struct PgBackRest {
    dir: PathBuf,
}

impl PgBackRest {
    /// A directory for the repository, logs and configuration (owned by the server's user),
    /// and the `postgresql.conf` settings that archive every WAL segment into it. Start the
    /// cluster with them, then [`attach`](Self::attach) it.
    #[must_use]
    pub fn prepare() -> (Self, Vec<(String, String)>) {
        let dir = std::env::temp_dir().join(format!(
            "credo-pgbackrest-{}-{}",
            std::process::id(),
            credo_testkit::free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        PrivatePostgres::give_to_owner(&dir);
        let this = Self { dir };
        let settings = vec![
            ("wal_level".to_string(), "replica".to_string()),
            ("archive_mode".to_string(), "on".to_string()),
            (
                "archive_command".to_string(),
                format!(
                    "pgbackrest --config={} --stanza={STANZA} archive-push %p",
                    this.config().display()
                ),
            ),
        ];
        (this, settings)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("pgbackrest.conf")
    }

    /// Writes the configuration for `pg`: repository in this directory, encrypted with
    /// AES-256 under a random passphrase, two full backups kept; then creates the stanza and
    /// checks that archiving works.
    pub fn attach(&self, pg: &PrivatePostgres) {
        let pass = format!("{}{}", credo_testkit::unique_name("k"), std::process::id());
        let d = self.dir.display();
        let conf = format!(
            "[global]\n\
             repo1-path={d}/repo\n\
             repo1-retention-full=2\n\
             repo1-cipher-type=aes-256-cbc\n\
             repo1-cipher-pass={pass}\n\
             log-path={d}/log\n\
             lock-path={d}/lock\n\
             spool-path={d}/spool\n\
             log-level-console=warn\n\
             log-level-file=info\n\
             start-fast=y\n\
             archive-timeout=60\n\
             \n\
             [{STANZA}]\n\
             pg1-path={data}\n\
             pg1-port={port}\n\
             pg1-socket-path={data}\n\
             pg1-user=credo\n",
            data = pg.data_dir().display(),
            port = pg.port(),
        );
        std::fs::write(self.config(), conf).unwrap();
        PrivatePostgres::give_to_owner(&self.config());
        self.run(&["stanza-create"]);
        self.run(&["check"]);
    }

    /// Runs `pgbackrest <args>` for the stanza as the server's user; panics with its output
    /// when it fails. Returns how long it took.
    pub fn run(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let out = PrivatePostgres::command_as_owner("pgbackrest")
            .arg(format!("--config={}", self.config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("pgbackrest: {e} (apt-get install pgbackrest)"));
        assert!(
            out.status.success(),
            "pgbackrest {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }

    /// `pgBackRest <version>`, as the tool reports it.
    #[must_use]
    pub fn version(&self) -> String {
        let out = Command::new("pgbackrest").arg("version").output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// `pgbackrest info` as JSON.
    #[must_use]
    pub fn info(&self) -> String {
        let out = PrivatePostgres::command_as_owner("pgbackrest")
            .arg(format!("--config={}", self.config().display()))
            .arg(format!("--stanza={STANZA}"))
            .args(["--output=json", "info"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Bytes the repository holds (backups and archived WAL, compressed and encrypted).
    #[must_use]
    pub fn repository_bytes(&self) -> u64 {
        fn walk(p: &std::path::Path) -> u64 {
            std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.join("repo"))
    }
}

impl Drop for PgBackRest {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
