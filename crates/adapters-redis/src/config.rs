//! The adapter's settings ([`RedisConfig`], [`TimeSource`]), their validation, and the fred
//! client settings every pool is built with.

use credo_ports::redact;
use credo_ports::{StoreError, StoreResult};
use fred::prelude::*;
use std::fmt;
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
    #[must_use]
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

    pub(crate) fn url_error(&self, e: fred::error::Error) -> StoreError {
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
            .finish()
    }
}

/// The fred client settings behind every pool of this adapter: timeouts, no fail-fast, one
/// attempt per command (a script in flight when the connection drops must not run twice) and
/// reconnection with jittered backoff. Public so that benchmarks can run raw fred on exactly
/// these settings; services use [`RedisStores::connect`](crate::RedisStores::connect).
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
}
