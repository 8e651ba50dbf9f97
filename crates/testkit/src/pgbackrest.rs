//! The pgBackRest configuration of a local cluster, shared by the point-in-time recovery drill
//! (`crates/drills`) and `cargo xtask services backups on`, so that the configuration the
//! drill restores from is the one the local server setup switches on.

use std::path::{Path, PathBuf};

/// The stanza (pgBackRest's name for one cluster).
pub const STANZA: &str = "credo";

/// Where a repository lives and the cluster it backs up.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Holds `pgbackrest.conf`, the repository (`repo/`), logs, locks and the spool; must
    /// belong to the user the server runs as.
    pub dir: PathBuf,
    /// The repository's AES-256 passphrase.
    pub cipher_pass: String,
    /// How many full backups the repository keeps (`repo1-retention-full`).
    pub retention_full: u32,
    /// The cluster's data directory.
    pub data_dir: PathBuf,
    /// Its TCP port.
    pub port: u16,
    /// The directory of its Unix socket.
    pub socket_dir: PathBuf,
    /// The superuser pgBackRest connects as over the socket.
    pub user: String,
}

impl Setup {
    /// `<dir>/pgbackrest.conf`.
    #[must_use]
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pgbackrest.conf")
    }

    /// The text of `pgbackrest.conf`: a local repository in [`dir`](Self::dir), encrypted
    /// with AES-256-CBC, keeping [`retention_full`](Self::retention_full) full backups.
    #[must_use]
    pub fn config(&self) -> String {
        let d = self.dir.display();
        format!(
            "[global]\n\
             repo1-path={d}/repo\n\
             repo1-retention-full={retention}\n\
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
             pg1-socket-path={socket}\n\
             pg1-user={user}\n",
            retention = self.retention_full,
            pass = self.cipher_pass,
            data = self.data_dir.display(),
            port = self.port,
            socket = self.socket_dir.display(),
            user = self.user,
        )
    }
}

/// The `postgresql.conf` settings that archive every WAL segment through the configuration
/// at `config` (`archive_mode` takes effect only at a server start).
#[must_use]
pub fn archive_settings(config: &Path) -> Vec<(String, String)> {
    vec![
        ("wal_level".to_string(), "replica".to_string()),
        ("archive_mode".to_string(), "on".to_string()),
        (
            "archive_command".to_string(),
            format!(
                "pgbackrest --config={} --stanza={STANZA} archive-push %p",
                config.display()
            ),
        ),
    ]
}

/// A passphrase from the operating system's random source (48 hex digits).
///
/// # Panics
/// When `/dev/urandom` cannot be read.
#[must_use]
pub fn random_passphrase() -> String {
    use std::io::Read as _;
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
