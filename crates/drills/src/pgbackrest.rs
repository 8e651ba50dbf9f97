//! pgBackRest driven as an operator drives it: a stanza, WAL archiving, full and
//! differential backups into an encrypted repository, `check`, `verify`, and restores to a
//! point in time.

use credo_testkit::PrivatePostgres;
use credo_testkit::pgbackrest::{STANZA, Setup, archive_settings, random_passphrase};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

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
        let settings = archive_settings(&this.config());
        (this, settings)
    }

    fn config(&self) -> PathBuf {
        self.dir.join("pgbackrest.conf")
    }

    /// Writes the configuration for `pg`: repository in this directory, encrypted with
    /// AES-256 under a random passphrase, two full backups kept; then creates the stanza and
    /// checks that archiving works.
    pub fn attach(&self, pg: &PrivatePostgres) {
        let conf = Setup {
            dir: self.dir.clone(),
            cipher_pass: random_passphrase(),
            retention_full: 2,
            data_dir: pg.data_dir(),
            port: pg.port(),
            socket_dir: pg.data_dir(),
            user: "credo".to_string(),
        }
        .config();
        // The passphrase is in it.
        std::fs::write(self.config(), conf).unwrap();
        std::fs::set_permissions(self.config(), std::fs::Permissions::from_mode(0o600)).unwrap();
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
