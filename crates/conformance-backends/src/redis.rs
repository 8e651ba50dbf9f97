use async_trait::async_trait;
use credo_adapters_redis::{RedisConfig, RedisStores, TimeSource};
use credo_conformance::harness::{Harness, Port, Stores, Support};
use credo_ports::ManualClock;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Environment variable naming the test server.
pub const URL_VAR: &str = "CREDO_TEST_REDIS_URL";

#[cfg(feature = "testcontainers")]
type Container =
    testcontainers_modules::testcontainers::ContainerAsync<testcontainers_modules::redis::Redis>;

/// Redis from `CREDO_TEST_REDIS_URL`, else (feature `testcontainers`) a container when a Docker
/// engine answers, else skipped with the reason. Every set of fresh stores gets a key prefix of
/// its own (`credo_t_<pid>_<n>`); keys expire by themselves.
///
/// Two columns: `redis`, whose rate limiter reads the injected clock so results compare with
/// the model, and `redis-server-time`, the production default (the script reads Redis
/// `TIME`), which runs the rate-limit cases written for real time.
pub struct RedisHarness {
    url: Option<String>,
    base: tokio::sync::OnceCell<Result<RedisStores, String>>,
    /// Removed (by its `Drop`) when the harness is dropped.
    #[cfg(feature = "testcontainers")]
    container: parking_lot::Mutex<Option<Container>>,
    next: AtomicU32,
    time: TimeSource,
}

impl RedisHarness {
    /// The `redis-server-time` column: the rate limiter reads Redis `TIME`.
    pub fn server_time_from_env() -> Self {
        Self {
            time: TimeSource::Server,
            ..Self::from_env()
        }
    }

    /// A harness for the server named by `CREDO_TEST_REDIS_URL`, if set.
    pub fn from_env() -> Self {
        Self::new(std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()))
    }

    /// A harness for `url` (`None`: skipped).
    pub fn new(url: Option<String>) -> Self {
        Self {
            url,
            base: tokio::sync::OnceCell::new(),
            #[cfg(feature = "testcontainers")]
            container: parking_lot::Mutex::new(None),
            next: AtomicU32::new(0),
            time: TimeSource::Clock,
        }
    }

    /// Starts a container (feature `testcontainers`); it is removed when the harness is dropped.
    #[cfg(feature = "testcontainers")]
    async fn start_container(&self) -> Result<String, String> {
        use testcontainers_modules::testcontainers::runners::AsyncRunner;
        let node = testcontainers_modules::redis::Redis::default()
            .start()
            .await
            .map_err(|e| format!("testcontainers: starting redis: {e}"))?;
        let port = node
            .get_host_port_ipv4(6379)
            .await
            .map_err(|e| format!("testcontainers: {e}"))?;
        *self.container.lock() = Some(node);
        Ok(format!("redis://127.0.0.1:{port}"))
    }

    #[cfg(not(feature = "testcontainers"))]
    async fn start_container(&self) -> Result<String, String> {
        Err("built without the `testcontainers` feature".into())
    }

    async fn base(&self) -> Result<RedisStores, String> {
        self.base
            .get_or_init(|| async {
                let url = crate::server_url(self.url.as_ref(), URL_VAR, || self.start_container())
                    .await?;
                let mut config = RedisConfig::new(url);
                config.rate_limit_time = self.time;
                // Keys outlive their expiry by the clock long enough that Redis never drops
                // one during a case: purges then count exactly what the model counts.
                config.expiry_grace = Duration::from_secs(3600);
                RedisStores::connect(&config, Stores::new_clock())
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .clone()
    }
}

#[async_trait]
impl Harness for RedisHarness {
    fn name(&self) -> &'static str {
        match self.time {
            TimeSource::Clock => "redis",
            TimeSource::Server => "redis-server-time",
        }
    }

    fn reads_real_time(&self) -> bool {
        self.time == TimeSource::Server
    }

    async fn available(&self) -> Result<(), String> {
        let base = self.base().await?;
        match base.health(Duration::from_secs(3)).check().await {
            credo_ports::HealthStatus::Ok => Ok(()),
            other => Err(format!("redis unreachable: {other:?}")),
        }
    }

    fn supports(&self, port: Port) -> Support {
        if self.time == TimeSource::Server && port != Port::RateLimits {
            return Support::No("the server-time column is the rate limiter's");
        }
        match port {
            Port::Sessions | Port::RateLimits => Support::Yes,
            Port::Users => Support::No("Redis is not a user store: not a cache (DESIGN §3)"),
            Port::Consents => Support::No("consent read-model projection comes later (DESIGN §3)"),
            Port::Audit | Port::Outbox | Port::Pipeline => {
                Support::No("the audit log and outbox live in PostgreSQL (DESIGN §3)")
            }
        }
    }

    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let r = self
            .base()
            .await?
            .with_prefix(&format!("credo_t_{}_{n}", std::process::id()))
            .map_err(|e| e.to_string())?
            .with_clock(clock.clone());
        Ok(stores(clock, r))
    }
}

/// Wraps Redis stores (possibly a mutant) as [`Stores`]: sessions and rate limits.
pub fn stores(clock: Arc<ManualClock>, r: RedisStores) -> Stores {
    Stores {
        clock,
        users: None,
        sessions: Some(r.sessions()),
        consents: None,
        audit: None,
        audit_log: None,
        outbox: None,
        sink: None,
        raw_outbox: None,
        outbox_faults: None,
        rate_limits: Some(r.rate_limits()),
        lease: None,
    }
}
