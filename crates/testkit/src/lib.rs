//! Test support shared by the crates' fault and readiness tests: servers of a test's own that it
//! can stop or cut off without disturbing the shared test servers of `cargo xtask services`.
//!
//! - [`required`]: a `CREDO_TEST_*` setting, or a skip (a panic under `CREDO_TEST_REQUIRE=all`);
//! - [`PrivatePostgres`]: a throw-away PostgreSQL cluster that can be stopped and restarted;
//! - [`PrivateTansu`]: a tansu broker whose advertised address is a [`Proxy`] that can cut
//!   every connection, so all Kafka traffic can be interrupted and restored;
//! - [`CapturedLogs`]: the log lines a piece of code writes;
//! - [`CapturedSpans`]: the spans it opens, with their fields;
//! - [`pgbackrest`]: the pgBackRest configuration of a local cluster (the PITR drill and
//!   `cargo xtask services backups on`);
//! - [`system`]: where PostgreSQL is installed and whether we run as root (shared with
//!   `cargo xtask services`);
//! - [`TestPki`]: a throw-away CA with server and client certificates, and
//!   [`PrivateRedisTls`]: a `redis-server` speaking TLS only (the TLS tests; PostgreSQL's is
//!   [`PrivatePostgres::start_tls`]; Kafka's is [`TlsTansu`], a broker behind a TLS front).

mod kafka_tls;
mod logs;
pub mod pgbackrest;
mod postgres;
mod proxy;
pub mod redis;
mod spans;
pub mod system;
pub mod tls;

pub use kafka_tls::TlsTansu;
pub use logs::CapturedLogs;
pub use postgres::PrivatePostgres;
pub use proxy::{PrivateTansu, Proxy};
pub use redis::{ClientAuth, PrivateRedisTls};
pub use spans::{CapturedSpans, SpanRecord};
pub use tls::{TempPki, TestPki};

/// The value of `var`, or `None` after printing why the test is skipped; under
/// `CREDO_TEST_REQUIRE=all` (CI) a missing value panics instead.
#[must_use]
pub fn required(var: &str) -> Option<String> {
    match std::env::var(var).ok().filter(|v| !v.is_empty()) {
        Some(v) => Some(v),
        None => skip(&format!(
            "{var} is not set (eval \"$(cargo xtask services env)\")"
        )),
    }
}

/// Prints the skip reason and returns `None`, or panics under `CREDO_TEST_REQUIRE=all`.
pub fn skip<T>(reason: &str) -> Option<T> {
    if std::env::var("CREDO_TEST_REQUIRE").is_ok_and(|v| v == "all") {
        panic!("{reason}, and CREDO_TEST_REQUIRE=all");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

/// A name no other test (of this run or another) uses: `prefix`, the process id and a
/// per-process count, then the time, for schemas, key prefixes, topics and groups.
#[must_use]
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos:x}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A port nothing listens on right now.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// `url` logged in as `user` with `password` (percent-encoded, so any character goes): its
/// userinfo replaced, scheme, host, path and query kept. For tests that connect as a role or
/// ACL user they created through an admin URL.
///
/// ```
/// let url = credo_testkit::url_as("postgres://admin:x@127.0.0.1:5432/db?sslmode=disable", "app", "p@ss w");
/// assert_eq!(url, "postgres://app:p%40ss%20w@127.0.0.1:5432/db?sslmode=disable");
/// assert_eq!(credo_testkit::url_as("redis://h:1", "u", "pw"), "redis://u:pw@h:1");
/// ```
#[must_use]
pub fn url_as(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, h)| h);
    format!(
        "{scheme}://{user}:{}@{host}{}",
        percent_encode_all(password),
        &rest[end..]
    )
}

/// Replaces `path` whole with `contents`: written beside it, then renamed over it, as a
/// platform rotates a mounted secret or certificate (a reader never sees half a file).
///
/// # Panics
/// When the file cannot be written or renamed.
pub fn replace_file(path: &std::path::Path, contents: impl AsRef<[u8]>) {
    let mut staged = path.as_os_str().to_owned();
    staged.push(".staged");
    std::fs::write(&staged, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::rename(&staged, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Calls `call` every 50 ms until it succeeds; how long that took.
///
/// # Panics
/// When no call succeeded within `within`, with `what` and the last error.
pub async fn succeeds_within<T, E, Fut>(
    within: std::time::Duration,
    what: &str,
    mut call: impl FnMut() -> Fut,
) -> std::time::Duration
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = std::time::Instant::now();
    loop {
        match call().await {
            Ok(_) => return started.elapsed(),
            Err(e) => assert!(
                started.elapsed() < within,
                "{what}: no call succeeded within {within:?}: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `s` with every byte but ASCII letters and digits written as `%XX`: how a password with any
/// character goes into a URL.
#[must_use]
pub fn percent_encode_all(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
