//! The adapter's settings ([`RedisConfig`], [`TimeSource`]), their validation, and the fred
//! client settings every pool is built with.

use credo_ports::redact;
use credo_ports::{SecretString, StoreError, StoreResult};
use fred::prelude::*;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where "now" comes from for rate limiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeSource {
    /// Redis `TIME` inside the script (the production default): every instance of a service
    /// sees one clock, whatever the skew between their hosts.
    Server,
    /// The injected [`Clock`](credo_ports::Clock) (tests, or managed Redis offerings that
    /// reject `TIME` in scripts).
    Clock,
}

impl TimeSource {
    /// The configuration spelling: `server` or `clock`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Server => "server",
            TimeSource::Clock => "clock",
        }
    }
}

/// Connection settings. `Debug` never shows the password.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Held as a
    /// [`SecretString`]: `Debug` shows it only through [`redacted_url`](Self::redacted_url).
    pub url: SecretString,
    /// Connections in the pool (default 4); commands are spread over them.
    pub pool_size: usize,
    /// Bound on every command, time queued while reconnecting included (default 3 s).
    pub command_timeout: Duration,
    /// Bound on connecting (TCP and TLS handshake, default 3 s).
    pub connection_timeout: Duration,
    /// Reconnect backoff: first delay (default 100 ms)...
    pub reconnect_min: Duration,
    /// ...growing exponentially to this (default 5 s), with jitter, forever.
    pub reconnect_max: Duration,
    /// Prefix of every key (default `credo`): `[A-Za-z0-9_-]`, 1 to 64 bytes.
    pub key_prefix: String,
    /// Time source of the rate limiter (default [`TimeSource::Server`]).
    pub rate_limit_time: TimeSource,
    /// How long keys outlive their logical expiry before Redis drops them (default 60 s):
    /// expiry is decided by the clock; TTLs only keep memory bounded.
    pub expiry_grace: Duration,
    /// PEM file of the CA certificate(s) that verify the server's certificate, instead of the
    /// system's trust store (default: none, the system's). `rediss://` only.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (chain) presented for mutual TLS, with
    /// [`tls_key_file`](Self::tls_key_file) (default: none). `rediss://` only.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// The three TLS files are checked at start and read again for the next handshake when
    /// they change, so a rotated CA or client certificate reaches new connections without a
    /// restart; a changed file that cannot be used (half-written, a certificate whose key has
    /// not followed yet) keeps the last good ones, with a warning.
    pub tls_key_file: Option<PathBuf>,
    /// A file holding the URL (a mounted secret; see [`from_url_file`](Self::from_url_file)).
    /// Its user and password are read again for every new connection (every `AUTH`), so a
    /// rotated password takes effect at the next reconnection, without a restart; the host
    /// and the other parts of the URL are read at start only. Default: none.
    pub url_file: Option<PathBuf>,
}

impl RedisConfig {
    /// Defaults for everything but the URL (a `&str`, a `String` or a [`SecretString`]).
    pub fn new(url: impl Into<SecretString>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            command_timeout: Duration::from_secs(3),
            connection_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            key_prefix: "credo".into(),
            rate_limit_time: TimeSource::Server,
            expiry_grace: Duration::from_secs(60),
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            url_file: None,
        }
    }

    /// Defaults, with the URL read from `path` (its content, without the line end an editor
    /// adds) and [`url_file`](Self::url_file) set, so later changes of its credentials are
    /// used by new connections. `InvalidInput` names the file (never its content).
    pub fn from_url_file(path: impl Into<PathBuf>) -> StoreResult<Self> {
        let path = path.into();
        let url = read_url_file(&path)?;
        let mut c = Self::new(url);
        c.url_file = Some(path);
        Ok(c)
    }

    /// The URL with its secrets replaced by `***`: a thin wrapper over the one redactor,
    /// [`credo_ports::redact::redact_url`].
    #[must_use]
    pub fn redacted_url(&self) -> String {
        redact::redact_url(self.url.expose_secret())
    }

    /// Checks every setting before anything connects; the error names the field (`url`,
    /// `pool_size`, `command_timeout`, `connection_timeout`, `reconnect_min`,
    /// `reconnect_max`, `expiry_grace`, `key_prefix`, `tls_ca_file`, `tls_cert_file`,
    /// `tls_key_file`). Timeouts must be at least 1 ms (fred reads 0 as "no timeout") and at
    /// most [`MAX_TIMEOUT`]; the pool 1..=[`MAX_POOL_SIZE`]; `reconnect_min <= reconnect_max`;
    /// `expiry_grace` at most [`MAX_EXPIRY_GRACE`]; TLS files only with a `rediss://` URL, and
    /// a client certificate only with its key (and the reverse). The files are read when the
    /// pool is built ([`RedisStores::connect`](crate::RedisStores::connect)).
    pub fn validate(&self) -> StoreResult<()> {
        if self.url.expose_secret().trim().is_empty() {
            return Err(StoreError::invalid("url", "must not be empty"));
        }
        let uses_tls = match Config::from_url(self.url.expose_secret()) {
            Ok(c) => c.uses_tls(),
            Err(e) => return Err(self.url_error(e)),
        };
        for (field, file) in self.tls_files() {
            if file.is_some() && !uses_tls {
                return Err(StoreError::invalid(
                    field,
                    "needs a rediss:// URL (TLS); the URL connects without TLS",
                ));
            }
        }
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => {
                return Err(StoreError::invalid(
                    "tls_key_file",
                    "must be set with tls_cert_file (the client certificate's key)",
                ));
            }
            (None, Some(_)) => {
                return Err(StoreError::invalid(
                    "tls_cert_file",
                    "must be set with tls_key_file (the client certificate)",
                ));
            }
            _ => {}
        }
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(StoreError::invalid(
                "pool_size",
                format!("{}: must be 1..={MAX_POOL_SIZE}", self.pool_size),
            ));
        }
        for (field, value) in [
            ("command_timeout", self.command_timeout),
            ("connection_timeout", self.connection_timeout),
            ("reconnect_min", self.reconnect_min),
            ("reconnect_max", self.reconnect_max),
        ] {
            credo_ports::validate::timeout(field, value, MAX_TIMEOUT)?;
        }
        if self.reconnect_min > self.reconnect_max {
            return Err(StoreError::invalid(
                "reconnect_min",
                "must not be longer than reconnect_max",
            ));
        }
        if self.expiry_grace > MAX_EXPIRY_GRACE {
            return Err(StoreError::invalid(
                "expiry_grace",
                format!(
                    "{:?}: must be at most {MAX_EXPIRY_GRACE:?}",
                    self.expiry_grace
                ),
            ));
        }
        valid_prefix(&self.key_prefix)
    }

    fn tls_files(&self) -> [(&'static str, Option<&Path>); 3] {
        [
            ("tls_ca_file", self.tls_ca_file.as_deref()),
            ("tls_cert_file", self.tls_cert_file.as_deref()),
            ("tls_key_file", self.tls_key_file.as_deref()),
        ]
    }

    /// The rustls client settings of the TLS files, or `None` when none is set (fred's
    /// default for `rediss://` then applies: the system's trust store, no client
    /// certificate). A file that cannot be read or holds no usable PEM is an invalid setting
    /// naming it. The files are read again when they change ([`crate::tls_files`]).
    fn tls_connector(&self) -> StoreResult<Option<TlsConnector>> {
        use crate::tls_files::{CaFile, ClientCertFiles};
        use fred::rustls::{ClientConfig, RootCertStore};
        if self.tls_files().iter().all(|(_, f)| f.is_none()) {
            return Ok(None);
        }
        let builder = ClientConfig::builder();
        let provider = builder.crypto_provider().clone();
        let builder = match &self.tls_ca_file {
            Some(path) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(CaFile::new(path, provider.clone())?)),
            None => {
                let mut roots = RootCertStore::empty();
                let native = fred::rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    // As fred's own default: a system certificate rustls cannot parse is
                    // left out.
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots)
            }
        };
        let client = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => builder
                .with_client_cert_resolver(Arc::new(ClientCertFiles::new(cert, key, provider)?)),
            _ => builder.with_no_client_auth(),
        };
        Ok(Some(TlsConnector::from(client)))
    }

    pub(crate) fn url_error(&self, e: fred::error::Error) -> StoreError {
        let reason = match self.redacted_url().as_str() {
            // Nothing of an unparseable URL is shown, not even the driver's view of it.
            redact::UNPARSEABLE_URL => format!("{}: not a redis:// URL", redact::UNPARSEABLE_URL),
            shown => format!(
                "{shown}: {}",
                redact::scrub(
                    &e.to_string(),
                    &redact::url_secrets(self.url.expose_secret())
                )
            ),
        };
        StoreError::invalid("url", reason)
    }
}

/// Largest pool [`RedisConfig::validate`] accepts.
pub const MAX_POOL_SIZE: usize = 1_024;

/// Longest timeout or reconnect delay [`RedisConfig::validate`] accepts (one day).
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Longest [`RedisConfig::expiry_grace`] accepts (30 days).
pub const MAX_EXPIRY_GRACE: Duration = Duration::from_secs(30 * 86_400);

pub(crate) fn valid_prefix(p: &str) -> StoreResult<()> {
    if p.is_empty()
        || p.len() > 64
        || !p
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    {
        return Err(StoreError::invalid(
            "key_prefix",
            "must be 1..=64 of [A-Za-z0-9_-]",
        ));
    }
    Ok(())
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("pool_size", &self.pool_size)
            .field("command_timeout", &self.command_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .field("key_prefix", &self.key_prefix)
            .field("rate_limit_time", &self.rate_limit_time)
            .field("expiry_grace", &self.expiry_grace)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("url_file", &self.url_file)
            .finish()
    }
}

/// The fred client settings behind every pool of this adapter: timeouts, no fail-fast, one
/// attempt per command (a script in flight when the connection drops must not run twice) and
/// reconnection with jittered backoff. Public so that benchmarks can run raw fred on exactly
/// these settings; services use [`RedisStores::connect`](crate::RedisStores::connect).
#[doc(hidden)]
pub fn client_builder(config: &RedisConfig) -> StoreResult<Builder> {
    client_builder_scrubbing(config, &redact::Secrets::default())
}

/// [`client_builder`], whose URL file, when it has one, adds every rotated credential to
/// `secrets` (so the stores' errors stay scrubbed after a rotation).
pub(crate) fn client_builder_scrubbing(
    config: &RedisConfig,
    secrets: &redact::Secrets,
) -> StoreResult<Builder> {
    config.validate()?;
    // Where the URL is handed to the driver.
    let mut fred_config =
        Config::from_url(config.url.expose_secret()).map_err(|e| config.url_error(e))?;
    if let Some(connector) = config.tls_connector()? {
        // Keep fred's host-name mapping of cluster nodes; replace only the connector.
        match &mut fred_config.tls {
            Some(tls) => tls.connector = connector,
            None => fred_config.tls = Some(connector.into()),
        }
    }
    if let Some(path) = &config.url_file {
        fred_config.credential_provider = Some(std::sync::Arc::new(UrlFileCredentials {
            path: path.clone(),
            secrets: secrets.clone(),
            last: parking_lot::Mutex::new((
                fred_config.username.clone(),
                fred_config.password.clone(),
            )),
        }));
    }
    let mut policy = ReconnectPolicy::new_exponential(
        0,
        config.reconnect_min.as_millis() as u32,
        config.reconnect_max.as_millis() as u32,
        2,
    );
    policy.set_jitter(50);
    let (command_timeout, connection_timeout) = (config.command_timeout, config.connection_timeout);
    let mut builder = Builder::from_config(fred_config);
    builder
        .with_config(|c| c.fail_fast = false)
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .with_connection_config(|c| {
            c.connection_timeout = connection_timeout;
            c.internal_command_timeout = connection_timeout;
            c.max_command_attempts = 1;
        })
        .set_policy(policy);
    Ok(builder)
}

/// The URL in `path`, without its line end; the error names the file, never its content.
fn read_url_file(path: &Path) -> StoreResult<String> {
    std::fs::read_to_string(path)
        .map(redact::secret_file_text)
        .map_err(|e| StoreError::invalid("url_file", format!("{}: {}", path.display(), e.kind())))
}

/// The user and password of the URL in a file, read for every `AUTH` fred sends (each new or
/// re-established connection). A file that cannot be read or parsed keeps the last good
/// credentials, with a warning naming the file: a half-written secret must not take the
/// service down.
struct UrlFileCredentials {
    path: PathBuf,
    /// Every credential read is added here.
    secrets: redact::Secrets,
    last: parking_lot::Mutex<(Option<String>, Option<String>)>,
}

impl fmt::Debug for UrlFileCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlFileCredentials")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl fred::types::config::CredentialProvider for UrlFileCredentials {
    async fn fetch(
        &self,
        _server: Option<&fred::types::config::Server>,
    ) -> Result<(Option<String>, Option<String>), fred::error::Error> {
        let read = read_url_file(&self.path).and_then(|url| {
            let parsed = Config::from_url(&url).map_err(|_| {
                StoreError::invalid(
                    "url_file",
                    format!("{}: not a Redis URL", self.path.display()),
                )
            })?;
            self.secrets.add(redact::url_secrets(&url));
            Ok(parsed)
        });
        let mut last = self.last.lock();
        match read {
            Ok(c) => *last = (c.username, c.password),
            Err(e) => tracing::warn!(
                error = %e,
                "redis: the URL file cannot be used; keeping the last credentials"
            ),
        }
        Ok(last.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A password read from a rotated URL file is scrubbed from the stores' errors like the
    /// one read at start.
    #[tokio::test]
    async fn every_password_the_url_file_gives_is_scrubbed() {
        let dir = std::env::temp_dir().join(format!(
            "credo-redis-url-file-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("url");
        std::fs::write(&file, "redis://credo:first%20pw@h:6379\n").unwrap();
        let config = RedisConfig::from_url_file(&file).unwrap();
        let secrets = redact::Secrets::new(redact::url_secrets(config.url.expose_secret()));
        let builder = client_builder_scrubbing(&config, &secrets).unwrap();
        let provider = builder
            .get_config()
            .and_then(|c| c.credential_provider.clone())
            .expect("a URL file gives a credential provider");
        std::fs::write(&file, "redis://credo:second%3Apw@h:6379\n").unwrap();
        let (user, password) = provider.fetch(None).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            (user.as_deref(), password.as_deref()),
            (Some("credo"), Some("second:pw"))
        );
        assert_eq!(
            secrets.scrub("auth first pw, then second:pw (second%3Apw)"),
            "auth ***, then *** (***)"
        );
    }

    #[test]
    fn passwords_never_show() {
        let c = RedisConfig::new("redis://user:s3cret@h:6379/0");
        assert_eq!(c.redacted_url(), "redis://user:***@h:6379/0");
        assert_eq!(
            RedisConfig::new("rediss://:pw@h").redacted_url(),
            "rediss://:***@h"
        );
        assert_eq!(
            RedisConfig::new("redis://tok@h").redacted_url(),
            "redis://***@h"
        );
        assert_eq!(
            RedisConfig::new("redis://h:1").redacted_url(),
            "redis://h:1"
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn every_duration_and_size_is_validated_by_field() {
        let ok = RedisConfig::new("redis://h:6379");
        ok.validate().unwrap();
        type Change = Box<dyn Fn(&mut RedisConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("url", Box::new(|c| c.url = String::new().into())),
            (
                "url",
                Box::new(|c| c.url = "redis://u:hunter2@h:port".into()),
            ),
            ("pool_size", Box::new(|c| c.pool_size = 0)),
            ("pool_size", Box::new(|c| c.pool_size = usize::MAX)),
            (
                "command_timeout",
                Box::new(|c| c.command_timeout = Duration::ZERO),
            ),
            (
                "command_timeout",
                Box::new(|c| c.command_timeout = Duration::MAX),
            ),
            (
                "connection_timeout",
                Box::new(|c| c.connection_timeout = Duration::from_nanos(1)),
            ),
            (
                "reconnect_min",
                Box::new(|c| c.reconnect_min = Duration::ZERO),
            ),
            (
                "reconnect_max",
                Box::new(|c| c.reconnect_max = Duration::from_secs(u64::MAX)),
            ),
            (
                "reconnect_min",
                Box::new(|c| c.reconnect_min = Duration::from_secs(10)),
            ),
            ("expiry_grace", Box::new(|c| c.expiry_grace = Duration::MAX)),
            ("key_prefix", Box::new(|c| c.key_prefix = "a b".into())),
        ];
        for (field, change) in cases {
            let mut c = ok.clone();
            change(&mut c);
            match c.validate() {
                Err(StoreError::InvalidInput { field: f, reason }) => {
                    assert_eq!(f, field, "{reason}");
                    assert!(!reason.contains("hunter2"), "{reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    /// Every limit is inclusive, exactly where its documentation puts it (found by the
    /// mutation run: no test sat on a boundary).
    #[test]
    fn limits_are_inclusive_at_their_documented_values() {
        type Change = Box<dyn Fn(&mut RedisConfig)>;
        let ok = RedisConfig::new("redis://h:6379");
        let at_limit: Vec<Change> = vec![
            Box::new(|c| c.pool_size = MAX_POOL_SIZE),
            Box::new(|c| c.pool_size = 1),
            Box::new(|c| c.command_timeout = MAX_TIMEOUT),
            Box::new(|c| c.command_timeout = Duration::from_millis(1)),
            Box::new(|c| {
                c.reconnect_min = Duration::from_secs(3);
                c.reconnect_max = Duration::from_secs(3);
            }),
            Box::new(|c| c.expiry_grace = MAX_EXPIRY_GRACE),
            Box::new(|c| c.key_prefix = "a".repeat(64)),
            Box::new(|c| c.key_prefix = "A-z_0".into()),
        ];
        for change in &at_limit {
            let mut c = ok.clone();
            change(&mut c);
            c.validate().unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
        assert_eq!(MAX_EXPIRY_GRACE, Duration::from_secs(2_592_000), "30 days");
        let past_limit: Vec<(&str, Change)> = vec![
            ("pool_size", Box::new(|c| c.pool_size = MAX_POOL_SIZE + 1)),
            (
                "command_timeout",
                Box::new(|c| c.command_timeout = MAX_TIMEOUT + Duration::from_millis(1)),
            ),
            (
                "reconnect_min",
                Box::new(|c| {
                    c.reconnect_min = Duration::from_millis(3001);
                    c.reconnect_max = Duration::from_secs(3);
                }),
            ),
            (
                "expiry_grace",
                Box::new(|c| c.expiry_grace = MAX_EXPIRY_GRACE + Duration::from_millis(1)),
            ),
            ("key_prefix", Box::new(|c| c.key_prefix = "a".repeat(65))),
            ("key_prefix", Box::new(|c| c.key_prefix = String::new())),
        ];
        for (field, change) in &past_limit {
            let mut c = ok.clone();
            change(&mut c);
            match c.validate() {
                Err(StoreError::InvalidInput { field: f, .. }) => assert_eq!(f, *field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    /// TLS files need a `rediss://` URL, a client certificate needs its key (and the
    /// reverse), and a file that cannot be read or holds no PEM is refused naming its setting
    /// when the pool is built.
    #[test]
    fn tls_files_are_checked_by_field() {
        let mut plain = RedisConfig::new("redis://h:6379");
        plain.tls_ca_file = Some("/tmp/ca.pem".into());
        match plain.validate() {
            Err(StoreError::InvalidInput { field, reason }) => {
                assert_eq!(field, "tls_ca_file");
                assert!(reason.contains("rediss://"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let mut half = RedisConfig::new("rediss://h:6379");
        half.tls_cert_file = Some("/tmp/client.pem".into());
        assert!(matches!(half.validate(),
            Err(StoreError::InvalidInput { field, .. }) if field == "tls_key_file"));
        let mut half = RedisConfig::new("rediss://h:6379");
        half.tls_key_file = Some("/tmp/client.key".into());
        assert!(matches!(half.validate(),
            Err(StoreError::InvalidInput { field, .. }) if field == "tls_cert_file"));

        let mut missing = RedisConfig::new("rediss://h:6379");
        missing.tls_ca_file = Some("/nonexistent/credo-ca.pem".into());
        missing.validate().unwrap();
        match client_builder(&missing) {
            Err(StoreError::InvalidInput { field, reason }) => {
                assert_eq!(field, "tls_ca_file");
                assert!(reason.contains("/nonexistent/credo-ca.pem"), "{reason}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        let not_pem = std::env::temp_dir().join(format!("credo-not-pem-{}", std::process::id()));
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let mut empty = RedisConfig::new("rediss://h:6379");
        empty.tls_ca_file = Some(not_pem.clone());
        let result = client_builder(&empty).map(|_| ());
        let _ = std::fs::remove_file(&not_pem);
        match result {
            Err(StoreError::InvalidInput { field, reason }) => {
                assert_eq!(field, "tls_ca_file");
                assert!(reason.contains("no PEM certificate"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// `Debug` shows the settings an operator needs, with the URL's secrets hidden.
    #[test]
    fn debug_shows_settings_without_secrets() {
        let shown = format!("{:?}", RedisConfig::new("redis://user:s3cret@h:6379/0"));
        for part in [
            "redis://user:***@h:6379/0",
            "pool_size",
            "command_timeout",
            "key_prefix",
        ] {
            assert!(shown.contains(part), "{part} missing from {shown}");
        }
        assert!(!shown.contains("s3cret"));
    }
}
