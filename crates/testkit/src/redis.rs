//! A throw-away `redis-server` of a test's own, listening with TLS only.

use crate::tls::TestPki;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on a free port of 127.0.0.1 that speaks TLS only (`--port 0
/// --tls-port N`), with the server certificate and key of a [`TestPki`] and its CA for client
/// certificates. Stopped (by the PID of the process this started) and its directory deleted
/// on drop.
pub struct PrivateRedisTls {
    child: Child,
    dir: PathBuf,
    port: u16,
}

/// Whether the server asks for client certificates (`--tls-auth-clients`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `no`: TLS without client certificates.
    No,
    /// `yes`: mutual TLS; a client without a certificate signed by the CA is refused.
    Required,
}

impl PrivateRedisTls {
    /// Starts the server, or `None` (skipped; a panic under `CREDO_TEST_REQUIRE=all`) when
    /// `redis-server` is not installed (`cargo xtask services up redis` installs it).
    ///
    /// # Panics
    /// When the server does not accept connections within 10 s.
    #[must_use = "the server is stopped when the returned value is dropped"]
    pub fn start(pki: &TestPki, auth: ClientAuth) -> Option<Self> {
        let Some(bin) = crate::system::which("redis-server") else {
            return crate::skip("redis-server not found (cargo xtask services up redis)");
        };
        let port = crate::free_port();
        let dir =
            std::env::temp_dir().join(format!("credo-redis-tls-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let log = dir.join("redis.log");
        let child = Command::new(bin)
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--tls-cert-file")
            .arg(&pki.server_cert)
            .arg("--tls-key-file")
            .arg(&pki.server_key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca_cert)
            .args([
                "--tls-auth-clients",
                match auth {
                    ClientAuth::No => "no",
                    ClientAuth::Required => "yes",
                },
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        let mut server = Self { child, dir, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = server.child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > Duration::from_secs(10) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!(
                    "redis-server with TLS on port {port} did not start ({exited:?}); log:\n{text}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// The port it listens on with TLS (127.0.0.1).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://<host>:<port>`: `localhost` is the name the certificate holds, `127.0.0.1`
    /// one it does not.
    #[must_use]
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}", self.port)
    }
}

impl Drop for PrivateRedisTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
