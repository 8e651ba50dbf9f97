use async_trait::async_trait;
use credo_adapters_postgres::{LeaseClock, PgConfig, PgStores};
use credo_conformance::harness::{Harness, Port, Stores, Support};
use credo_ports::ManualClock;
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Environment variable naming the test server.
pub const URL_VAR: &str = "CREDO_TEST_POSTGRES_URL";

/// The application role the stores act as (`SET ROLE` at connection start): the suite runs
/// with exactly the grants of `PgStores::grant_app_role`, as a service does; schema set-up,
/// clean-up and injected faults run as the server's login role, the schema's owner.
pub const APP_ROLE: &str = "credo_conformance_app";

#[cfg(feature = "testcontainers")]
type Container = testcontainers_modules::testcontainers::ContainerAsync<
    testcontainers_modules::postgres::Postgres,
>;

/// PostgreSQL from `CREDO_TEST_POSTGRES_URL`, else (feature `testcontainers`) a container when
/// a Docker engine answers, else skipped with the reason. Each set of fresh stores gets a schema
/// of its own (`credo_t_<pid>_<n>`), emptied and reused once the previous holder dropped it, so
/// cases and test processes never see each other's rows and the suite can run any number of
/// times against one server. The stores run as [`APP_ROLE`].
pub struct PostgresHarness {
    configured: Option<String>,
    url: tokio::sync::OnceCell<Result<String, String>>,
    /// Removed (by its `Drop`) when the harness is dropped.
    #[cfg(feature = "testcontainers")]
    container: Mutex<Option<Container>>,
    free: Arc<Mutex<Vec<Schema>>>,
    next: AtomicU32,
    schema_prefix: &'static str,
}

impl PostgresHarness {
    /// A harness for the server named by `CREDO_TEST_POSTGRES_URL`, if set.
    pub fn from_env() -> Self {
        Self::new(std::env::var(URL_VAR).ok().filter(|u| !u.is_empty()))
    }

    /// A harness for `url` (`None`: a container if possible, else skipped).
    pub fn new(url: Option<String>) -> Self {
        Self {
            configured: url,
            url: tokio::sync::OnceCell::new(),
            #[cfg(feature = "testcontainers")]
            container: Mutex::new(None),
            free: Arc::default(),
            next: AtomicU32::new(0),
            schema_prefix: "credo_t",
        }
    }

    /// Names this harness's schemas `<prefix>_<pid>_<n>`, so that two harnesses in one process
    /// (the `kafka` pipeline harness holds one of its own) never share a schema.
    pub fn with_schema_prefix(mut self, prefix: &'static str) -> Self {
        self.schema_prefix = prefix;
        self
    }

    /// The server's URL: configured, or a container started now, or why there is none.
    async fn url(&self) -> Result<String, String> {
        self.url
            .get_or_init(|| {
                crate::server_url(self.configured.as_ref(), URL_VAR, || self.start_container())
            })
            .await
            .clone()
    }

    /// Starts a container (feature `testcontainers`); it is removed when the harness is dropped.
    #[cfg(feature = "testcontainers")]
    async fn start_container(&self) -> Result<String, String> {
        use testcontainers_modules::testcontainers::runners::AsyncRunner;
        let node = testcontainers_modules::postgres::Postgres::default()
            .start()
            .await
            .map_err(|e| format!("testcontainers: starting postgres: {e}"))?;
        let port = node
            .get_host_port_ipv4(5432)
            .await
            .map_err(|e| format!("testcontainers: {e}"))?;
        *self.container.lock() = Some(node);
        Ok(format!(
            "postgres://postgres:postgres@127.0.0.1:{port}/postgres"
        ))
    }

    #[cfg(not(feature = "testcontainers"))]
    async fn start_container(&self) -> Result<String, String> {
        Err("built without the `testcontainers` feature".into())
    }

    async fn new_schema(&self, url: &str) -> Result<Schema, String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut config = PgConfig::new(url);
        config.schema = Some(format!("{}_{}_{n}", self.schema_prefix, std::process::id()));
        config.max_connections = 10;
        // Cases move time by hand; the database-clock default is proven by the adapter's
        // own tests (a skewed store clock does not move leases).
        config.lease_clock = LeaseClock::Store;
        let owner = PgStores::connect(&config, Stores::new_clock())
            .await
            .map_err(|e| e.to_string())?;
        owner
            .drop_schema()
            .await
            .map_err(|e| format!("drop stale schema: {e}"))?;
        owner.migrate().await.map_err(|e| format!("migrate: {e}"))?;
        // Roles are the server's, shared by every schema and test process: created once, by
        // whichever process comes first.
        owner
            .create_role_if_missing(APP_ROLE)
            .await
            .map_err(|e| format!("create role {APP_ROLE}: {e}"))?;
        owner
            .grant_app_role(APP_ROLE)
            .await
            .map_err(|e| format!("grant {APP_ROLE}: {e}"))?;
        config.role = Some(APP_ROLE.into());
        let app = PgStores::connect(&config, Stores::new_clock())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Schema { owner, app })
    }
}

/// One schema: its owner's stores (set-up, clean-up, faults) and the application role's.
struct Schema {
    owner: PgStores,
    app: PgStores,
}

/// Returns the schema to the free list when the last clone of the stores is dropped.
struct SchemaLease {
    stores: Option<Schema>,
    free: Arc<Mutex<Vec<Schema>>>,
}

impl Drop for SchemaLease {
    fn drop(&mut self) {
        if let Some(s) = self.stores.take() {
            self.free.lock().push(s);
        }
    }
}

#[async_trait]
impl Harness for PostgresHarness {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn available(&self) -> Result<(), String> {
        let mut config = PgConfig::new(self.url().await?);
        config.max_connections = 1;
        config.acquire_timeout = Duration::from_secs(5);
        let stores = PgStores::connect(&config, Stores::new_clock())
            .await
            .map_err(|e| e.to_string())?;
        let status = stores.health(Duration::from_secs(5)).check().await;
        stores.close().await;
        match status {
            credo_ports::HealthStatus::Ok => Ok(()),
            other => Err(format!("{} unreachable: {other:?}", config.redacted_url())),
        }
    }

    fn supports(&self, port: Port) -> Support {
        credo_adapters_postgres::CAPABILITIES.supports(port)
    }

    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        let url = self.url().await?;
        let reused = self.free.lock().pop();
        let base = match reused {
            Some(s) => {
                s.owner
                    .clear_all_tables()
                    .await
                    .map_err(|e| format!("clearing schema: {e}"))?;
                // A case that failed half-way may have left its injected fault on.
                s.owner
                    .fail_outbox_writes(false)
                    .await
                    .map_err(|e| format!("clearing faults: {e}"))?;
                s
            }
            None => self.new_schema(&url).await?,
        };
        let pg = base.app.with_clock(clock.clone());
        let owner = base.owner.clone();
        let lease = SchemaLease {
            stores: Some(base),
            free: self.free.clone(),
        };
        Ok(Stores {
            clock,
            users: Some(pg.users()),
            sessions: Some(pg.sessions()),
            consents: Some(pg.consents()),
            audit: Some(pg.audit()),
            audit_log: Some(pg.audit_log()),
            outbox: Some(pg.outbox()),
            sink: Some(credo_conformance::harness::direct_sinks()),
            raw_outbox: Some({
                let pg = pg.clone();
                Arc::new(move |message| {
                    let pg = pg.clone();
                    Box::pin(async move { pg.enqueue_raw(&message).await })
                })
            }),
            // A trigger: DDL, so the owner's.
            outbox_faults: Some({
                Arc::new(move |on| {
                    let owner = owner.clone();
                    Box::pin(async move { owner.fail_outbox_writes(on).await })
                })
            }),
            rate_limits: Some(pg.rate_limits()),
            job_leases: Some(pg.leases()),
            lease: Some(Arc::new(lease)),
        })
    }
}
