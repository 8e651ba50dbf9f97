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

pub mod acl;
mod capabilities;
pub use capabilities::CAPABILITIES;
pub use leases::RedisLeases;
mod config;
mod connection_errors;
mod health;
pub(crate) mod leases;
mod lua;
mod mutants;
mod rate_limits;
mod sessions;
mod tls_files;

pub use config::{
    MAX_EXPIRY_GRACE, MAX_POOL_SIZE, MAX_TIMEOUT, RedisConfig, TimeSource, client_builder,
};
#[cfg(feature = "mutants")]
pub use mutants::Mutant;
pub use rate_limits::RedisRateLimitStore;
pub use sessions::RedisSessionStore;

use credo_ports::redact;
use credo_ports::{
    Cause, Clock, HealthCheck, JobLeases, RateLimitStore, SessionStore, StoreError, StoreResult,
};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::sync::Arc;
use std::time::Duration;

/// Maps a client error into the shared [`StoreError`].
pub(crate) fn map_err(e: fred::error::Error) -> StoreError {
    use fred::error::ErrorKind as K;
    match e.kind() {
        K::Parse | K::NotFound | K::InvalidArgument => {
            StoreError::Corrupt(Cause::with_source(format!("redis: {e}"), e))
        }
        // A key of the wrong type, or a value a script cannot read: retrying cannot help.
        _ if is_bad_stored_value(e.details()) => {
            StoreError::Corrupt(Cause::with_source(format!("redis: {e}"), e))
        }
        K::Config | K::Url => StoreError::invalid("url", e.to_string()),
        _ => StoreError::Unavailable(Cause::with_source(format!("redis: {e}"), e)),
    }
}

/// A server error caused by what a key holds rather than by the server: `WRONGTYPE`, or a
/// script that failed on a stored value (`ERR user_script:<line>: ...`; the adapter's scripts
/// raise no error of their own).
fn is_bad_stored_value(details: &str) -> bool {
    details.starts_with("WRONGTYPE") || details.starts_with("ERR user_script:")
}

/// rustls' errors of a refused handshake, as fred passes them on (the `Debug` of the I/O error
/// that carries them; their `Display` too, should fred change that).
const TLS_REFUSALS: [&str; 8] = [
    "InvalidCertificate(",
    "AlertReceived(",
    "PeerIncompatible(",
    "PeerMisbehaved(",
    "invalid peer certificate",
    "received fatal alert",
    "peer is incompatible",
    "peer misbehaved",
];

/// A connection error that is the TLS handshake refused: a server certificate not signed by a
/// trusted CA or not valid for the host name, a client certificate missing or refused.
fn is_tls_refusal(e: &fred::error::Error) -> bool {
    e.kind() == &fred::error::ErrorKind::Tls
        || TLS_REFUSALS.iter().any(|words| e.details().contains(words))
}

/// `redis: TLS handshake with <URL> failed: <what>: <rustls' reason>` (the URL redacted).
fn tls_refusal_text(e: &fred::error::Error, url: &str) -> String {
    let details = e.details();
    // `Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }`: keep the error.
    let reason = details
        .split_once("error: ")
        .and_then(|(_, rest)| rest.strip_suffix(" }"))
        .unwrap_or(details);
    let what = if reason.contains("CertificateRequired") {
        "the server requires a client certificate"
    } else if reason.contains("InvalidCertificate") || reason.contains("invalid peer certificate") {
        "the server's certificate is not accepted"
    } else {
        "refused"
    };
    format!("redis: TLS handshake with {url} failed: {what}: {reason}")
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
    /// The URL's secrets (and a rotated URL file's), scrubbed from connect and health check
    /// errors.
    secrets: redact::Secrets,
    /// Why the pool last failed to connect, added to the calls' `Unavailable` errors.
    pub(crate) errors: connection_errors::ConnectionErrors,
    pub(crate) mutant: mutants::Switch,
}

impl RedisStores {
    /// Builds the pool and starts connecting in the background; waits at most the connection
    /// timeout for the first connection, so a service can start while Redis is down (calls then
    /// fail with `Unavailable` until it is back, and the pool reconnects by itself).
    ///
    /// A TLS handshake the server or the client refuses (server certificate not signed by a
    /// trusted CA or not valid for the host name, client certificate missing or refused) is
    /// not Redis being down and does not heal by reconnecting: `connect` then fails at once
    /// with `Unavailable` saying `redis: TLS handshake with <URL> failed: ...`, and nothing
    /// retries in the background.
    pub async fn connect(config: &RedisConfig, clock: Arc<dyn Clock>) -> StoreResult<Self> {
        let secrets = redact::Secrets::new(redact::url_secrets(config.url.expose_secret()));
        let pool = config::client_builder_scrubbing(config, &secrets)?
            .build_pool(config.pool_size)
            .map_err(|e| secrets.scrub_error(map_err(e)))?;
        // Before connecting: the first failures are the ones that say the most.
        let connection_errors = connection_errors::ConnectionErrors::listen(
            &pool,
            config.redacted_url(),
            secrets.clone(),
        );
        // A refused TLS handshake does not heal by reconnecting (fred would retry it, and every
        // command would time out saying nothing of TLS): the first one fails `connect`.
        let mut errors = pool.clients().first().map(|c| c.error_rx());
        let task = pool.connect();
        let refused = async {
            while let Some(rx) = errors.as_mut() {
                match rx.recv().await {
                    Ok((e, _)) if is_tls_refusal(&e) => return e,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => errors = None,
                }
            }
            std::future::pending().await
        };
        let connected = tokio::time::timeout(
            config.connection_timeout,
            futures_util::future::select(Box::pin(pool.wait_for_connect()), Box::pin(refused)),
        )
        .await
        .map(|first| match first {
            futures_util::future::Either::Left((connected, _)) => Ok(connected),
            futures_util::future::Either::Right((refused, _)) => Err(refused),
        });
        let connected = match connected {
            Ok(Err(e)) => {
                // Stop the reconnect loops: nothing may retry the handshake in the background
                // (`quit` in a task of its own: on a pool that never connected it may wait for
                // the command timeout).
                task.abort();
                let quitting = pool.clone();
                tokio::spawn(async move { quitting.quit().await });
                let why = tls_refusal_text(&e, &config.redacted_url());
                return Err(StoreError::Unavailable(secrets.scrub(&why).into()));
            }
            Ok(Ok(connected)) => Ok(connected),
            Err(elapsed) => Err(elapsed),
        };
        tracing::debug!(url = %config.redacted_url(), pool = config.pool_size, "redis pool configured");
        if matches!(connected, Ok(Ok(()))) {
            let policy =
                tokio::time::timeout(config.command_timeout, health::eviction_policy(&pool)).await;
            match policy {
                Ok(Ok(policy)) if policy == "noeviction" => {}
                Ok(Ok(policy)) => tracing::warn!(
                    maxmemory_policy = %policy,
                    "redis: {}", health::eviction_warning(&policy)
                ),
                Ok(Err(why)) => tracing::warn!(
                    "redis: the eviction policy cannot be verified ({}); revoked tokens and \
                     rate-limit state are lost if it lets Redis evict keys",
                    secrets.scrub(&why)
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
            errors: connection_errors,
            mutant: mutants::Switch::default(),
        })
    }

    /// The same pool and prefix, evaluating time against another clock.
    #[must_use = "returns a new value and leaves this one unchanged"]
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            ..self.clone()
        }
    }

    /// The same pool, under another key prefix (test isolation).
    pub fn with_prefix(&self, prefix: &str) -> StoreResult<Self> {
        config::valid_prefix(prefix)?;
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

    /// Leases of the maintenance jobs of the sessions and rate limits kept here.
    pub fn leases(&self) -> Arc<dyn JobLeases> {
        Arc::new(leases::RedisLeases::new(self.clone()))
    }

    /// Sizes of the client pool (`main`), for metrics: `open` counts connected clients;
    /// commands are pipelined, so no client is ever "in use" apart from the others and
    /// `idle` equals `open`.
    pub fn pool_stats(&self) -> credo_ports::telemetry::PoolStats {
        let clients = self.pool.clients();
        let open = clients.iter().filter(|c| c.is_connected()).count() as u32;
        credo_ports::telemetry::PoolStats {
            pool: "main",
            max: clients.len() as u32,
            open,
            idle: open,
        }
    }

    /// Keys under this prefix by kind (`s` sessions, `u` user indexes, `jti` token
    /// revocations, `rl` rate-limit state, `sid` session id reservations, `lease`
    /// maintenance leases): what maintenance and key expiry shrink, for operators and tests.
    /// Walks the keys with `SCAN`.
    pub async fn key_counts(&self) -> StoreResult<std::collections::BTreeMap<String, u64>> {
        let mut out = std::collections::BTreeMap::new();
        let prefix = format!("{}:", self.prefix);
        let _: Vec<()> = self
            .purge_scan(format!("{}:*", self.prefix), usize::MAX, |key| {
                let kind = kind_of(key.strip_prefix(&prefix).unwrap_or(&key));
                *out.entry(kind.to_string()).or_insert(0) += 1;
                async { Ok(None) }
            })
            .await?;
        Ok(out)
    }

    /// A health check (`redis`) within `timeout`: `PING` (no answer: failed), then the
    /// eviction policy (see [`RedisStores::eviction_policy`]): anything but `noeviction`, or
    /// a policy that cannot be read, is degraded.
    pub fn health(&self, timeout: Duration) -> Arc<dyn HealthCheck> {
        Arc::new(health::RedisHealth {
            pool: self.pool.clone(),
            timeout,
            secrets: self.secrets.clone(),
            errors: self.errors.clone(),
        })
    }

    /// The server's `maxmemory-policy`: `CONFIG GET`, or `INFO memory` where `CONFIG` is
    /// renamed or denied (managed Redis). Under any policy but `noeviction` (the `volatile-*`
    /// ones included: revoked-token and rate-limit keys carry TTLs) Redis may evict
    /// revoked-token entries, so a revoked token becomes valid again, and rate-limit state.
    pub async fn eviction_policy(&self) -> StoreResult<String> {
        health::eviction_policy(&self.pool)
            .await
            .map_err(|why| StoreError::Unavailable(self.secrets.scrub(&why).into()))
    }

    /// Closes every connection.
    pub async fn close(&self) {
        let _ = self.pool.quit().await;
    }

    /// `SCRIPT FLUSH` on the server, on every master of a cluster (tests prove scripts are
    /// reloaded transparently). The script cache is server-wide, so one flush clears it for
    /// every pooled connection.
    pub async fn flush_scripts(&self) -> StoreResult<()> {
        self.pool
            .next()
            .script_flush_cluster(false)
            .await
            .map_err(map_err)
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
                    script.load(client).await.map_err(|e| self.errors.map(e))?;
                }
                result => return result.map_err(|e| self.errors.map(e)),
            }
        }
    }

    /// Walks the keys matching `pattern` (SCAN, pages of 500) and offers each to `purge`,
    /// until `limit` of them were purged (`Some`) or the walk ends; returns what `purge` said
    /// of each purged key. Each call walks from the start again, so a key left in place is
    /// offered again next time.
    pub(crate) async fn purge_scan<T, F, Fut>(
        &self,
        pattern: String,
        limit: usize,
        mut purge: F,
    ) -> StoreResult<Vec<T>>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = StoreResult<Option<T>>>,
    {
        use fred::types::scan::Scanner;
        use futures_util::StreamExt;
        let mut purged = Vec::new();
        if limit == 0 {
            return Ok(purged);
        }
        let client = self.pool.next();
        // A plain SCAN walks one node: on a cluster, walk every master.
        let mut scan = if client.is_clustered() {
            client.scan_cluster(pattern, Some(500), None).boxed()
        } else {
            client.scan(pattern, Some(500), None).boxed()
        };
        while let Some(page) = scan.next().await {
            let mut page = page.map_err(|e| self.errors.map(e))?;
            for key in page.take_results().into_iter().flatten() {
                let Some(key) = key.into_string() else {
                    continue;
                };
                if let Some(done) = purge(key).await? {
                    purged.push(done);
                    if purged.len() == limit {
                        return Ok(purged);
                    }
                }
            }
            page.next();
        }
        Ok(purged)
    }

    pub(crate) fn key(&self, tenant: credo_ports::TenantId, kind: &str, id: &str) -> String {
        format!("{}:{{t:{tenant}}}:{kind}:{id}", self.prefix)
    }
}

/// The kind of a key given without its prefix: `{t:<tenant>}:<kind>:...`, `sid:{<id>}`,
/// `{lease}:<job>`.
fn kind_of(rest: &str) -> &str {
    if let Some(tagged) = rest.strip_prefix("{t:") {
        return tagged
            .split_once("}:")
            .and_then(|(_, r)| r.split(':').next())
            .unwrap_or("?");
    }
    if rest.starts_with("{lease}") {
        return "lease";
    }
    rest.split(':').next().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // A refused TLS handshake, as fred passes it on, is told apart from a server that is
        // down, and said in words.
        let refused = Error::new(
            K::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
        );
        assert!(is_tls_refusal(&refused));
        assert_eq!(
            tls_refusal_text(&refused, "rediss://h:1"),
            "redis: TLS handshake with rediss://h:1 failed: the server's certificate is not \
             accepted: InvalidCertificate(UnknownIssuer)"
        );
        assert!(!is_tls_refusal(&Error::new(
            K::IO,
            "Connection refused (os error 111)"
        )));
        assert_eq!(
            server("LOADING Redis is loading the dataset"),
            "Unavailable"
        );
    }
}
