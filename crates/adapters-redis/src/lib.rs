//! The Redis backend of credo-storage, on [`fred`]: sessions with the token revocation list,
//! and GCRA rate limiting. Every multi-step operation is one Lua script (called by SHA,
//! reloaded transparently after `SCRIPT FLUSH` or a restart).
//!
//! Keys are `{prefix}:{t:<tenant>}:...`: the hash tag keeps one tenant's keys (so one user's
//! session, index and token keys) in one cluster slot, which is what lets every script declare
//! all the keys it touches. A session id is also reserved under `{prefix}:sid:{<id>}` so ids
//! stay unique across tenants while the session lives.
//!
//! ```no_run
//! # async fn demo() -> Result<(), credo_ports::StoreError> {
//! use std::sync::Arc;
//! use credo_adapters_redis::{RedisConfig, RedisStores};
//! use credo_ports::SystemClock;
//!
//! let stores = RedisStores::connect(&RedisConfig::new("redis://cache.internal:6379"), Arc::new(SystemClock)).await?;
//! let sessions = stores.sessions();
//! let limiter = stores.rate_limits();
//! # Ok(()) }
//! ```

/// Lua sources of the scripts, for operators and for benchmarks that run the same script raw.
pub mod scripts {
    /// The rate limiter's GCRA step (see `RedisRateLimitStore`).
    pub const GCRA: &str = crate::rate_limits::GCRA_LUA;
}

mod lua;
mod mutants;
mod rate_limits;
mod sessions;

#[cfg(feature = "mutants")]
pub use mutants::Mutant;
pub use rate_limits::RedisRateLimitStore;
pub use sessions::RedisSessionStore;

use async_trait::async_trait;
use credo_ports::redact;
use credo_ports::{
    Clock, HealthCheck, HealthStatus, RateLimitStore, SessionStore, StoreError, StoreResult,
};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Where "now" comes from for rate limiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeSource {
    /// Redis `TIME` inside the script (the production default): every instance of a service
    /// sees one clock, whatever the skew between their hosts.
    Server,
    /// The injected [`Clock`] (tests, or managed Redis offerings that reject `TIME` in scripts).
    Clock,
}

/// Connection settings. `Debug` never shows the password.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
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
}

impl RedisConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
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
        }
    }

    /// The URL with its secrets replaced by `***`: a thin wrapper over the one redactor,
    /// [`credo_ports::redact::redact_url`].
    pub fn redacted_url(&self) -> String {
        redact::redact_url(&self.url)
    }

    /// Checks every setting before anything connects; the error names the field (`url`,
    /// `pool_size`, `command_timeout`, `connection_timeout`, `reconnect_min`,
    /// `reconnect_max`, `expiry_grace`, `key_prefix`). Timeouts must be at least 1 ms (fred
    /// reads 0 as "no timeout") and at most [`MAX_TIMEOUT`]; the pool 1..=[`MAX_POOL_SIZE`];
    /// `reconnect_min <= reconnect_max`; `expiry_grace` at most [`MAX_EXPIRY_GRACE`].
    pub fn validate(&self) -> StoreResult<()> {
        if self.url.trim().is_empty() {
            return Err(StoreError::invalid("url", "must not be empty"));
        }
        if let Err(e) = Config::from_url(&self.url) {
            return Err(self.url_error(e));
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

    fn url_error(&self, e: fred::error::Error) -> StoreError {
        let reason = match self.redacted_url().as_str() {
            // Nothing of an unparseable URL is shown, not even the driver's view of it.
            redact::UNPARSEABLE_URL => format!("{}: not a redis:// URL", redact::UNPARSEABLE_URL),
            shown => format!(
                "{shown}: {}",
                redact::scrub(&e.to_string(), &redact::url_secrets(&self.url))
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

fn valid_prefix(p: &str) -> StoreResult<()> {
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
            .finish()
    }
}

/// Maps a client error into the shared [`StoreError`].
pub(crate) fn map_err(e: fred::error::Error) -> StoreError {
    use fred::error::ErrorKind as K;
    match e.kind() {
        K::Parse | K::NotFound | K::InvalidArgument => StoreError::Corrupt(format!("redis: {e}")),
        // A key of the wrong type, or a value a script cannot read: retrying cannot help.
        _ if is_bad_stored_value(e.details()) => StoreError::Corrupt(format!("redis: {e}")),
        K::Config | K::Url => StoreError::invalid("url", e.to_string()),
        _ => StoreError::Unavailable(format!("redis: {e}")),
    }
}

/// A server error caused by what a key holds rather than by the server: `WRONGTYPE`, or a
/// script that failed on a stored value (`ERR user_script:<line>: ...`; the adapter's scripts
/// raise no error of their own).
fn is_bad_stored_value(details: &str) -> bool {
    details.starts_with("WRONGTYPE") || details.starts_with("ERR user_script:")
}

/// The fred client settings behind every pool of this adapter: timeouts, no fail-fast, one
/// attempt per command (a script in flight when the connection drops must not run twice) and
/// reconnection with jittered backoff. Public so that benchmarks can run raw fred on exactly
/// these settings; services use [`RedisStores::connect`].
#[doc(hidden)]
pub fn client_builder(config: &RedisConfig) -> StoreResult<Builder> {
    config.validate()?;
    let fred_config = Config::from_url(&config.url).map_err(|e| config.url_error(e))?;
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

/// How often one call loads a script the server reports missing before it fails.
const SCRIPT_LOADS: u32 = 3;

/// Every Redis store over one connection pool.
#[derive(Clone)]
pub struct RedisStores {
    pub(crate) pool: Pool,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) prefix: Arc<str>,
    pub(crate) rate_limit_time: TimeSource,
    pub(crate) grace_ms: i64,
    /// The URL's secrets, scrubbed from health check errors.
    secrets: Arc<[String]>,
    pub(crate) mutant: mutants::Switch,
}

impl RedisStores {
    /// Builds the pool and starts connecting in the background; waits at most the connection
    /// timeout for the first connection, so a service can start while Redis is down (calls then
    /// fail with `Unavailable` until it is back, and the pool reconnects by itself).
    pub async fn connect(config: &RedisConfig, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let secrets: Arc<[String]> = redact::url_secrets(&config.url).into();
        let pool = client_builder(config)?
            .build_pool(config.pool_size)
            .map_err(|e| redact::scrub_error(map_err(e), &secrets))?;
        let _task = pool.connect();
        let connected =
            tokio::time::timeout(config.connection_timeout, pool.wait_for_connect()).await;
        tracing::debug!(url = %config.redacted_url(), pool = config.pool_size, "redis pool configured");
        if matches!(connected, Ok(Ok(()))) {
            let policy = tokio::time::timeout(config.command_timeout, eviction_policy(&pool)).await;
            match policy {
                Ok(Ok(policy)) if policy == "noeviction" => {}
                Ok(Ok(policy)) => tracing::warn!(
                    maxmemory_policy = %policy,
                    "redis: {}", eviction_warning(&policy)
                ),
                Ok(Err(why)) => tracing::warn!(
                    "redis: the eviction policy cannot be verified ({}); revoked tokens and \
                     rate-limit state are lost if it lets Redis evict keys",
                    redact::scrub(&why, &secrets)
                ),
                Err(_) => tracing::warn!(
                    "redis: the eviction policy cannot be verified (no answer within the \
                     command timeout)"
                ),
            }
        }
        Ok(Self {
            pool,
            clock,
            prefix: config.key_prefix.as_str().into(),
            rate_limit_time: config.rate_limit_time,
            grace_ms: config.expiry_grace.as_millis() as i64,
            secrets,
            mutant: mutants::Switch::default(),
        })
    }

    /// The same pool and prefix, evaluating time against another clock.
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..self.clone()
        }
    }

    /// The same pool, under another key prefix (test isolation).
    pub fn with_prefix(&self, prefix: &str) -> StoreResult<Self> {
        valid_prefix(prefix)?;
        Ok(Self {
            prefix: prefix.into(),
            ..self.clone()
        })
    }

    /// The session store (with the token revocation list).
    pub fn sessions(&self) -> Arc<dyn SessionStore> {
        Arc::new(RedisSessionStore::new(self.clone()))
    }

    /// The rate limiter.
    pub fn rate_limits(&self) -> Arc<dyn RateLimitStore> {
        Arc::new(RedisRateLimitStore::new(self.clone()))
    }

    /// A health check (`redis`) within `timeout`: `PING` (no answer: failed), then the
    /// eviction policy (see [`RedisStores::eviction_policy`]): anything but `noeviction`, or
    /// a policy that cannot be read, is degraded.
    pub fn health(&self, timeout: Duration) -> Arc<dyn HealthCheck> {
        Arc::new(RedisHealth {
            pool: self.pool.clone(),
            timeout,
            secrets: self.secrets.clone(),
        })
    }

    /// The server's `maxmemory-policy`: `CONFIG GET`, or `INFO memory` where `CONFIG` is
    /// renamed or denied (managed Redis). Under any policy but `noeviction` (the `volatile-*`
    /// ones included: revoked-token and rate-limit keys carry TTLs) Redis may evict
    /// revoked-token entries, so a revoked token becomes valid again, and rate-limit state.
    pub async fn eviction_policy(&self) -> StoreResult<String> {
        eviction_policy(&self.pool)
            .await
            .map_err(|why| StoreError::Unavailable(redact::scrub(&why, &self.secrets)))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        let _ = self.pool.quit().await;
    }

    /// `SCRIPT FLUSH` on the server (tests prove scripts are reloaded transparently). The
    /// script cache is server-wide, so one flush clears it for every pooled connection.
    pub async fn flush_scripts(&self) -> StoreResult<()> {
        self.pool.next().script_flush(false).await.map_err(map_err)
    }

    /// Runs `script` by its SHA and loads it when the server answers `NOSCRIPT` (after a
    /// restart, a failover or a `SCRIPT FLUSH`). A flush can land between the load and the
    /// retry, so this reloads up to [`SCRIPT_LOADS`] times before giving up as `Unavailable`.
    pub(crate) async fn eval<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> StoreResult<R> {
        let client = self.pool.next();
        let mut loads = 0;
        loop {
            match client
                .evalsha(script.sha1().clone(), keys.clone(), args.clone())
                .await
            {
                Err(e) if e.details().starts_with("NOSCRIPT") && loads < SCRIPT_LOADS => {
                    loads += 1;
                    script.load(client).await.map_err(map_err)?;
                }
                result => return result.map_err(map_err),
            }
        }
    }

    /// Every key matching `pattern` (SCAN, so the server is never blocked).
    pub(crate) async fn scan_keys(&self, pattern: String) -> StoreResult<Vec<String>> {
        use fred::types::scan::Scanner;
        use futures_util::StreamExt;
        let client = self.pool.next();
        let mut scan = client.scan(pattern, Some(500), None);
        let mut keys = Vec::new();
        while let Some(page) = scan.next().await {
            let mut page = page.map_err(map_err)?;
            if let Some(found) = page.take_results() {
                keys.extend(found.into_iter().filter_map(|k| k.into_string()));
            }
            page.next();
        }
        Ok(keys)
    }

    pub(crate) fn key(&self, tenant: credo_ports::TenantId, kind: &str, id: &str) -> String {
        format!("{}:{{t:{tenant}}}:{kind}:{id}", self.prefix)
    }
}

struct RedisHealth {
    pool: Pool,
    timeout: Duration,
    secrets: Arc<[String]>,
}

/// Why a policy that can evict is degraded.
fn eviction_warning(policy: &str) -> String {
    format!(
        "maxmemory-policy is {policy}: Redis may evict keys under memory pressure, so revoked \
         tokens may become valid again and rate-limit state may be lost; set \
         maxmemory-policy noeviction"
    )
}

/// `CONFIG GET maxmemory-policy`, falling back to `INFO memory`; the error says why
/// neither answered.
async fn eviction_policy(pool: &Pool) -> Result<String, String> {
    use fred::types::{ClusterHash, CustomCommand};
    let client = pool.next();
    let config = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
    let config_err = match client
        .custom::<Value, _>(config, vec!["GET", "maxmemory-policy"])
        .await
    {
        Ok(value) => match policy_of_config_get(value) {
            Some(policy) => return Ok(policy),
            None => "CONFIG GET maxmemory-policy: no value".to_string(),
        },
        Err(e) => format!("CONFIG GET: {}", e.details()),
    };
    let info = CustomCommand::new_static("INFO", ClusterHash::Random, false);
    match client.custom::<String, _>(info, vec!["memory"]).await {
        Ok(text) => text
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
            .map(|p| p.trim().to_string())
            .ok_or_else(|| format!("{config_err}; INFO memory: no maxmemory_policy field")),
        Err(e) => Err(format!("{config_err}; INFO memory: {}", e.details())),
    }
}

/// The policy in a `CONFIG GET` answer: `[name, value]` (RESP2) or `{name: value}` (RESP3).
fn policy_of_config_get(value: Value) -> Option<String> {
    match value {
        Value::Array(items) => items.get(1).and_then(|v| v.as_string()),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .next()
            .and_then(|(_, v)| v.as_string()),
        _ => None,
    }
}

#[async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> HealthStatus {
        // The probe's own timeout, not the command timeout, bounds the PING. (`fail_fast` is
        // not set: while fred reconnects it still queued the PING about half of the time, so a
        // probe of a Redis that is down answers within its timeout, not at once.)
        let options = Options {
            timeout: Some(self.timeout),
            ..Default::default()
        };
        let bounded = self.pool.with_options(&options);
        let probe = async {
            bounded.ping::<String>(None).await.map_err(map_err)?;
            Ok::<_, StoreError>(eviction_policy(&self.pool).await)
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(Ok(Ok(policy))) if policy == "noeviction" => HealthStatus::Ok,
            Ok(Ok(Ok(policy))) => HealthStatus::Degraded(eviction_warning(&policy)),
            Ok(Ok(Err(why))) => HealthStatus::Degraded(format!(
                "the eviction policy cannot be verified ({}); revoked tokens and rate-limit \
                 state are lost if it lets Redis evict keys",
                redact::scrub(&why, &self.secrets)
            )),
            Ok(Err(e)) => HealthStatus::Failed(redact::scrub(&e.to_string(), &self.secrets)),
            Err(_) => HealthStatus::Failed(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("url", Box::new(|c| c.url = String::new())),
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

    /// A reply the adapter cannot read is `Corrupt`; a bad URL or client setting is bad input;
    /// everything else (connections, timeouts, server errors) is `Unavailable`.
    #[test]
    fn client_errors_map_to_actionable_kinds() {
        use fred::error::{Error, ErrorKind as K};
        let kind = |k: K| map_err(Error::new(k, "x")).kind();
        for k in [K::Parse, K::NotFound, K::InvalidArgument] {
            assert_eq!(kind(k), "Corrupt");
        }
        for k in [K::Config, K::Url] {
            assert_eq!(kind(k), "InvalidInput");
        }
        for k in [K::IO, K::Timeout, K::Unknown] {
            assert_eq!(kind(k), "Unavailable");
        }
        let server = |details: &str| map_err(Error::new(K::Unknown, details.to_string())).kind();
        assert_eq!(
            server("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "Corrupt"
        );
        assert_eq!(
            server("ERR user_script:16: bad argument #1 to 'max' (number expected, got nil)"),
            "Corrupt"
        );
        assert_eq!(server("ERR max number of clients reached"), "Unavailable");
        assert_eq!(
            server("LOADING Redis is loading the dataset"),
            "Unavailable"
        );
    }

    #[test]
    fn config_get_answers_in_both_protocols() {
        let resp2 = Value::Array(vec!["maxmemory-policy".into(), "allkeys-lru".into()]);
        assert_eq!(policy_of_config_get(resp2).as_deref(), Some("allkeys-lru"));
        assert_eq!(policy_of_config_get(Value::Array(vec![])), None);
        let resp3 = fred::types::Map::try_from(vec![("maxmemory-policy", "volatile-ttl")]).unwrap();
        assert_eq!(
            policy_of_config_get(Value::Map(resp3)).as_deref(),
            Some("volatile-ttl")
        );
        assert_eq!(policy_of_config_get(Value::Null), None);
    }
}
