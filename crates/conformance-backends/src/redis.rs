use async_trait::async_trait;
use credo_adapters_redis::{RedisConfig, RedisStores, TimeSource};
use credo_conformance::harness::{Harness, Port, Stores, Support};
use credo_ports::{ManualClock, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Environment variable naming the test server.
pub const URL_VAR: &str = "CREDO_TEST_REDIS_URL";
/// Environment variable naming the test cluster (`redis-cluster://host:port?node=...`).
pub const CLUSTER_URL_VAR: &str = "CREDO_TEST_REDIS_CLUSTER_URL";

#[cfg(feature = "testcontainers")]
type Container =
    testcontainers_modules::testcontainers::ContainerAsync<testcontainers_modules::redis::Redis>;

/// Redis from `CREDO_TEST_REDIS_URL`, else (feature `testcontainers`) a container when a Docker
/// engine answers, else skipped with the reason. Every set of fresh stores gets a key prefix of
/// its own (`credo_t_<pid>_<n>`), whose keys are unlinked when the stores are dropped (keys
/// left behind by an aborted run expire by themselves: a server that kept tens of thousands of
/// them made every purge case, which scans, ten times slower).
///
/// Three columns: `redis`, whose rate limiter reads the injected clock so results compare
/// with the model; `redis-server-time`, the production default (the script reads Redis
/// `TIME`), which runs the rate-limit cases written for real time; and `redis-cluster`, the
/// `redis` column against a Redis Cluster of several masters through fred's clustered
/// client, where a tenant's keys share a slot but tenants, session id reservations and
/// leases spread over the masters.
pub struct RedisHarness {
    url: Option<String>,
    base: tokio::sync::OnceCell<Result<(RedisStores, fred::clients::Client), String>>,
    /// Removed (by its `Drop`) when the harness is dropped.
    #[cfg(feature = "testcontainers")]
    container: parking_lot::Mutex<Option<Container>>,
    next: AtomicU32,
    time: TimeSource,
    /// The `redis-cluster` column (`url` names a cluster; no container fallback).
    cluster: bool,
    /// The ACL user the stores connect as and the admin URL it was created through; deleted
    /// when the harness is dropped.
    acl_user: parking_lot::Mutex<Option<(String, String)>>,
    /// Refusals of that user already reported (the servers' `ACL LOG` counts).
    refusals_seen: AtomicU64,
}

impl RedisHarness {
    /// The `redis-server-time` column: the rate limiter reads Redis `TIME`.
    pub fn server_time_from_env() -> Self {
        let mut harness = Self::from_env();
        harness.time = TimeSource::Server;
        harness
    }

    /// The `redis-cluster` column: the cluster named by `CREDO_TEST_REDIS_CLUSTER_URL`.
    pub fn cluster_from_env() -> Self {
        let mut harness = Self::new(
            std::env::var(CLUSTER_URL_VAR)
                .ok()
                .filter(|u| !u.is_empty()),
        );
        harness.cluster = true;
        harness
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
            cluster: false,
            acl_user: parking_lot::Mutex::new(None),
            refusals_seen: AtomicU64::new(0),
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

    /// The stores every case derives from, and a client of its own for the clean-up.
    async fn base(&self) -> Result<(RedisStores, fred::clients::Client), String> {
        self.base
            .get_or_init(|| async {
                let url = if self.cluster {
                    self.url.clone().ok_or_else(|| {
                        format!(
                            "{CLUSTER_URL_VAR} is not set (run `cargo xtask services up \
                             redis-cluster` and `eval \"$(cargo xtask services env)\"`)"
                        )
                    })?
                } else {
                    crate::server_url(self.url.as_ref(), URL_VAR, || self.start_container()).await?
                };
                // The stores connect as an ACL user with the adapter's rule
                // (`credo_adapters_redis::acl`), created through `url` (an admin, e.g.
                // `default`), for every prefix of this process; the clean-up client stays on
                // `url`.
                let user = format!("credo_conformance_{}_{}", self.name(), std::process::id());
                let password = uuid::Uuid::new_v4().simple().to_string();
                let keys = [format!("credo_t_{}_*", std::process::id())];
                credo_adapters_redis::acl::set_user(
                    &url,
                    &user,
                    &credo_adapters_redis::acl::rules_for_keys(&password, &keys),
                )
                .await
                .map_err(|e| format!("redis: creating the ACL user: {e}"))?;
                *self.acl_user.lock() = Some((user.clone(), url.clone()));
                let mut config = RedisConfig::new(with_user(&url, &user, &password));
                config.rate_limit_time = self.time;
                // Keys outlive their expiry by the clock long enough that Redis never drops
                // one during a case: purges then count exactly what the model counts.
                config.expiry_grace = Duration::from_secs(3600);
                let stores = RedisStores::connect(&config, Stores::new_clock())
                    .await
                    .map_err(|e| e.to_string())?;
                let cleaner = credo_adapters_redis::client_builder(&RedisConfig::new(url))
                    .and_then(|b| {
                        b.build()
                            .map_err(|e| StoreError::Unavailable(e.to_string().into()))
                    })
                    .map_err(|e| format!("redis clean-up client: {e}"))?;
                fred::prelude::ClientLike::init(&cleaner)
                    .await
                    .map_err(|e| format!("redis clean-up client: {e}"))?;
                Ok((stores, cleaner))
            })
            .await
            .clone()
    }
}

#[async_trait]
impl Harness for RedisHarness {
    fn name(&self) -> &'static str {
        match self.time {
            TimeSource::Clock if self.cluster => "redis-cluster",
            TimeSource::Clock => "redis",
            TimeSource::Server => "redis-server-time",
            other => unreachable!("the harness builds no {other:?} column"),
        }
    }

    fn reads_real_time(&self) -> bool {
        self.time == TimeSource::Server
    }

    /// Fails the case if a server refused one of the ACL user's commands since the last case:
    /// the adapter sent something its rule (`credo_adapters_redis::acl`) does not allow.
    async fn after_case(&self) -> Result<(), String> {
        let Some(user) = self.acl_user.lock().as_ref().map(|(u, _)| u.clone()) else {
            return Ok(());
        };
        let (_, admin) = self.base().await?;
        let (count, what) = acl_refusals(&admin, &user).await?;
        let before = self.refusals_seen.swap(count, Ordering::Relaxed);
        if count > before {
            return Err(format!(
                "redis refused {} of the adapter's commands (ACL LOG of {user}: {}); a command \
                 the adapter sends is missing from credo_adapters_redis::acl::COMMANDS",
                count - before,
                what.join("; ")
            ));
        }
        Ok(())
    }

    async fn available(&self) -> Result<(), String> {
        let (base, _) = self.base().await?;
        match base.health(Duration::from_secs(3)).check().await {
            credo_ports::HealthStatus::Ok => Ok(()),
            other => Err(format!("redis unreachable: {other:?}")),
        }
    }

    fn supports(&self, port: Port) -> Support {
        if self.time == TimeSource::Server && port != Port::RateLimits {
            return Support::No("the server-time column is the rate limiter's");
        }
        credo_adapters_redis::CAPABILITIES.supports(port)
    }

    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("credo_t_{}_{n}", std::process::id());
        let (base, cleaner) = self.base().await?;
        let r = base
            .with_prefix(&prefix)
            .map_err(|e| e.to_string())?
            .with_clock(clock.clone());
        Ok(Stores {
            lease: Some(Arc::new(PrefixLease { cleaner, prefix })),
            ..stores(clock, r)
        })
    }
}

impl Drop for RedisHarness {
    /// Deletes the ACL user on every node through the admin URL (its password, TLS and cluster
    /// nodes included), on a runtime of its own: `Drop` may run outside one, or inside one
    /// that must not be blocked. Best effort, at most 10 s.
    fn drop(&mut self) {
        let Some((user, admin_url)) = self.acl_user.lock().take() else {
            return;
        };
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    credo_adapters_redis::acl::del_user(&admin_url, &user),
                )
                .await
                .map_err(|_| "no answer within 10 s".to_string())?
                .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = deleted {
            eprintln!("redis harness: deleting its ACL user: {e}");
        }
    }
}

/// How many times the servers (every node of a cluster) refused `user`, by their `ACL LOG`,
/// and what each entry says (reason, command or key, context).
async fn acl_refusals(
    admin: &fred::clients::Client,
    user: &str,
) -> Result<(u64, Vec<String>), String> {
    use fred::prelude::{ClientLike, Value};
    use fred::types::{ClusterHash, CustomCommand};
    let cmd = CustomCommand::new_static("ACL", ClusterHash::Random, false);
    let mut logs: Vec<Value> = Vec::new();
    if admin.is_clustered() {
        for node in admin.active_connections() {
            logs.push(
                admin
                    .with_cluster_node(node)
                    .custom(cmd.clone(), vec!["LOG", "128"])
                    .await
                    .map_err(|e| format!("ACL LOG: {e}"))?,
            );
        }
    } else {
        logs.push(
            admin
                .custom(cmd, vec!["LOG", "128"])
                .await
                .map_err(|e| format!("ACL LOG: {e}"))?,
        );
    }
    let (mut count, mut what) = (0, Vec::new());
    for entry in logs.into_iter().flat_map(|l| match l {
        Value::Array(entries) => entries,
        _ => Vec::new(),
    }) {
        let fields: Vec<(String, Value)> = match entry {
            Value::Array(flat) => flat
                .chunks(2)
                .filter_map(|kv| Some((kv[0].as_string()?, kv.get(1)?.clone())))
                .collect(),
            Value::Map(map) => map
                .inner()
                .into_iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v)))
                .collect(),
            _ => continue,
        };
        let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if field("username").and_then(Value::as_string).as_deref() != Some(user) {
            continue;
        }
        count += field("count").and_then(Value::as_u64).unwrap_or(1);
        let text = |name: &str| field(name).and_then(Value::as_string).unwrap_or_default();
        what.push(format!(
            "{} {} in {}",
            text("reason"),
            text("object"),
            text("context")
        ));
    }
    Ok((count, what))
}

/// `url` with `user:password@` as its credentials (any it had replaced).
fn with_user(url: &str, user: &str, password: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let rest = match rest[..end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    format!("{scheme}://{user}:{password}@{rest}")
}

/// Unlinks every key under its prefix when the last clone of the stores is dropped.
struct PrefixLease {
    cleaner: fred::clients::Client,
    prefix: String,
}

impl Drop for PrefixLease {
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, pattern) = (self.cleaner.clone(), format!("{}:*", self.prefix));
        runtime.spawn(async move {
            use fred::prelude::{ClientLike, KeysInterface};
            use fred::types::scan::Scanner;
            use futures_util::StreamExt;
            // Every master's keys: a plain SCAN walks only one node of a cluster.
            let mut pages = if client.is_clustered() {
                client.scan_cluster(pattern, Some(500), None).boxed()
            } else {
                client.scan(pattern, Some(500), None).boxed()
            };
            while let Some(Ok(mut page)) = pages.next().await {
                let keys = page.take_results().unwrap_or_default();
                if !keys.is_empty() {
                    // Best effort: what is left expires by itself.
                    let _: Result<i64, _> = client.unlink(keys).await;
                }
                page.next();
            }
        });
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
        job_leases: Some(r.leases()),
        lease: None,
    }
}
