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

/// Sends commands over one plain connection (no client library, so a `Drop` can use it) and
/// returns the raw reply to the last one, read to its end however long: `AUTH user password`
/// first when `auth` is given, so the command runs as that user.
///
/// # Panics
/// When `addr` does not accept the connection, or closes it or stays silent for 2 s before a
/// whole reply has come.
pub fn resp(addr: &str, auth: Option<(&str, &str)>, args: &[&str]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let login = auth.map(|(user, password)| ["AUTH", user, password]);
    let mut out = String::new();
    for cmd in login.as_ref().map(|l| &l[..]).into_iter().chain([args]) {
        let mut req = format!("*{}\r\n", cmd.len());
        for a in cmd {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        while reply_len(&reply).is_none() {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "{addr}: connection closed within a reply to {cmd:?}");
            reply.extend_from_slice(&buf[..n]);
        }
        out = String::from_utf8_lossy(&reply).into_owned();
    }
    out
}

/// The length of the first whole RESP2 reply in `buf`, or `None` while it is incomplete.
fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let after_line = line_end + 2;
    let number = || {
        std::str::from_utf8(&buf[1..line_end])
            .ok()?
            .parse::<i64>()
            .ok()
    };
    match buf.first()? {
        b'$' => match number()? {
            n if n < 0 => Some(after_line),
            n => {
                let end = after_line + n as usize + 2;
                (buf.len() >= end).then_some(end)
            }
        },
        b'*' => {
            let mut at = after_line;
            for _ in 0..number()?.max(0) {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        _ => Some(after_line),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reply_is_whole_only_with_all_its_parts() {
        for (buf, len) in [
            (&b"+OK\r\n"[..], Some(5)),
            (b"+OK\r", None),
            (b"$5\r\nhel", None),
            (b"$5\r\nhello\r\n", Some(11)),
            (b"$-1\r\n", Some(5)),
            (b"*2\r\n:1\r\n$1\r\n", None),
            (b"*2\r\n:1\r\n$1\r\nx\r\n", Some(15)),
            (b"*-1\r\n", Some(5)),
            (b"-NOPERM no\r\n", Some(12)),
        ] {
            assert_eq!(
                super::reply_len(buf),
                len,
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
    }
}
