use std::path::PathBuf;
use std::process::Command;

/// A throw-away cluster in a temporary directory on a free port, run as the `postgres` user
/// when we are root (PostgreSQL refuses root). Stopped and deleted on drop.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// A new running cluster (user `credo`, trust authentication), or `None` (skipped) when
    /// no PostgreSQL binaries are installed.
    #[must_use = "the cluster is stopped when the returned value is dropped"]
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// [`start`](Self::start), with `settings` (name, value) written into its
    /// `postgresql.conf` before the first start (e.g. WAL archiving for a backup drill).
    #[must_use = "the cluster is stopped when the returned value is dropped"]
    pub fn start_with(settings: &[(&str, &str)]) -> Option<Self> {
        let c = Self::init(settings)?;
        c.resume();
        Some(c)
    }

    /// [`start`](Self::start), with TLS: `ssl = on` with the server certificate and key of
    /// `pki` (valid for `localhost` only) and its CA for client certificates. Plain and TLS
    /// connections of `credo` are trusted as before; the role named like the client
    /// certificate ([`TestPki::client_name`], a superuser of this throw-away cluster) may log
    /// in only over TLS with that certificate (`hostssl ... cert`).
    ///
    /// [`TestPki::client_name`]: crate::TestPki::client_name
    #[must_use = "the cluster is stopped when the returned value is dropped"]
    pub fn start_tls(pki: &crate::TestPki) -> Option<Self> {
        let c = Self::init(&[
            ("ssl", "on"),
            ("ssl_cert_file", "server.crt"),
            ("ssl_key_file", "server.key"),
            ("ssl_ca_file", "ca.crt"),
        ])?;
        c.install_certificates(pki);
        let hba = c.data_dir().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("hostssl all {} 127.0.0.1/32 cert\n{rules}", pki.client_name),
        )
        .unwrap();
        Self::give_to_owner(&c.data_dir());
        c.resume();
        c.psql(&format!(
            "CREATE ROLE \"{}\" LOGIN SUPERUSER",
            pki.client_name.replace('"', "\"\"")
        ));
        Some(c)
    }

    /// Replaces the server's certificate, key and client CA of a [`start_tls`](Self::start_tls)
    /// cluster with `pki`'s and reloads the configuration (`pg_reload_conf`): connections
    /// opened from then on are served with the new certificate, open ones keep theirs. What an
    /// operator's certificate rotation does to the server.
    pub fn rotate_certificates(&self, pki: &crate::TestPki) {
        self.install_certificates(pki);
        Self::give_to_owner(&self.data_dir());
        self.psql("SELECT pg_reload_conf()");
    }

    /// Copies `pki`'s server certificate, key and CA where `ssl_*_file` point.
    fn install_certificates(&self, pki: &crate::TestPki) {
        let data = self.data_dir();
        for (from, to) in [
            (&pki.server_cert, "server.crt"),
            (&pki.server_key, "server.key"),
            (&pki.ca_cert, "ca.crt"),
        ] {
            std::fs::copy(from, data.join(to))
                .unwrap_or_else(|e| panic!("{} -> {to}: {e}", from.display()));
        }
        use std::os::unix::fs::PermissionsExt;
        // PostgreSQL refuses a key readable by others, or not owned by the server's user.
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }

    /// Runs `sql` as `credo` over the cluster's socket.
    fn psql(&self, sql: &str) {
        self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.data(),
                "-p",
                &self.port.to_string(),
                "-U",
                "credo",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        );
    }

    /// A new cluster, initialised with `settings` but not started.
    fn init(settings: &[(&str, &str)]) -> Option<Self> {
        let Some(bin) = crate::system::pg_bin(None) else {
            return crate::skip(
                "PostgreSQL binaries not found under /usr/lib/postgresql (cargo xtask services up)",
            );
        };
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("credo-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self::give_to_owner(&dir);
        let c = Self { bin, dir, port };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data(),
                "-U",
                "credo",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        if !settings.is_empty() {
            use std::io::Write;
            let conf = c.data_dir().join("postgresql.conf");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .unwrap_or_else(|e| panic!("{}: {e}", conf.display()));
            for (name, value) in settings {
                writeln!(f, "{name} = '{}'", value.replace('\'', "''")).unwrap();
            }
        }
        Some(c)
    }

    /// The directory that holds the cluster's data (`data/`), its log and whatever a test
    /// keeps beside it; owned by the user the server runs as, deleted on drop.
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The data directory.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The port it listens on (127.0.0.1, and a Unix socket in the data directory).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A command that runs `program` as the user the server runs as (`postgres` when we are
    /// root), for tools that must own or read its files (pgBackRest).
    #[must_use]
    pub fn command_as_owner(program: &str) -> Command {
        if crate::system::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", program]);
            c
        } else {
            Command::new(program)
        }
    }

    /// Deletes the data directory and leaves an empty one in its place, as a lost disk would
    /// (stop the cluster first).
    pub fn wipe_data(&self) {
        let data = self.data_dir();
        std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        std::fs::create_dir(&data).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        Self::give_to_owner(&data);
    }

    /// Hands `path` (recursively) to the user the server runs as (`postgres` when we are
    /// root; nothing to do otherwise), so the server and its tools can write there.
    pub fn give_to_owner(path: &std::path::Path) {
        if crate::system::is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(path)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown {}", path.display());
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if crate::system::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        if !out.status.success() {
            // The server's own reason is in its log, not in pg_ctl's output.
            let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "{tool} {args:?} failed: {}\n--- server log (last lines)\n{}",
                String::from_utf8_lossy(&out.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    fn data(&self) -> String {
        self.data_dir().display().to_string()
    }

    /// Starts the (stopped) cluster again on the same port and data.
    pub fn resume(&self) {
        // The socket lives in the data directory, so a base backup carries its lock file (with
        // the PID of the server it was taken from) into a restore: stale once we are here.
        let _ = std::fs::remove_file(self.data_dir().join(format!(".s.PGSQL.{}.lock", self.port)));
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.data()
        );
        let log = self.dir.join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stops it with `-m immediate`, like a crash (no clean shutdown of sessions).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// `postgres://credo@127.0.0.1:<port>/postgres`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://credo@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.stop());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
