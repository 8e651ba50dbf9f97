//! Redis-specific behaviour beyond the conformance suite: the server-`TIME` clock, script
//! reloading, admissions under load across connections, and a server stopped mid-run.

use credo_adapters_redis::{RedisConfig, RedisStores, TimeSource};
use credo_ports::{
    Clock, Device, ManualClock, NewSession, RateLimitPolicy, SessionId, SessionStatus, StoreError,
    SystemClock, TenantId, Timestamp, UserId,
};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn test_url() -> Option<String> {
    credo_testkit::required("CREDO_TEST_REDIS_URL")
}

fn prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("credo_it_{name}_{}_{nanos}", std::process::id())
}

async fn stores(url: &str, name: &str, time: TimeSource, clock: Arc<dyn Clock>) -> RedisStores {
    let mut config = RedisConfig::new(url);
    config.key_prefix = prefix(name);
    config.rate_limit_time = time;
    RedisStores::connect(&config, clock).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_time_ignores_a_skewed_client_clock() {
    let Some(url) = test_url() else { return };
    // A client clock 30 years behind: with server TIME it changes nothing.
    let skewed = Arc::new(ManualClock::new(Timestamp::from_secs(1_000_000_000)));
    let r = stores(&url, "time", TimeSource::Server, skewed.clone()).await;
    let limiter = r.rate_limits();
    let policy = RateLimitPolicy {
        limit: 1,
        period: Duration::from_secs(3600),
        burst: 2,
    };
    let t = TenantId::new();
    assert!(limiter.check(t, "k", policy, 1).await.unwrap().allowed);
    assert!(limiter.check(t, "k", policy, 1).await.unwrap().allowed);
    // Moving the client clock an hour ahead must not refill the bucket either.
    skewed.advance(Duration::from_secs(7200));
    let d = limiter.check(t, "k", policy, 1).await.unwrap();
    assert!(!d.allowed, "{d:?}");
    assert!(
        d.retry_after > Duration::from_secs(3500) && d.retry_after <= Duration::from_secs(3600),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let Some(url) = test_url() else { return };
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let r = stores(&url, "flush", TimeSource::Clock, clock.clone()).await;
    let sessions = r.sessions();
    let (t, u) = (TenantId::new(), UserId::new());
    let s = sessions
        .create(new_session(t, u, clock.now()))
        .await
        .unwrap();
    r.flush_scripts().await.unwrap();
    let revoked = sessions.revoke(t, s.id).await.unwrap();
    assert_eq!(revoked.status, SessionStatus::Revoked);
    r.flush_scripts().await.unwrap();
    assert!(
        r.rate_limits()
            .check(t, "k", RateLimitPolicy::per(5, Duration::from_secs(1)), 1)
            .await
            .unwrap()
            .allowed
    );
}

fn new_session(t: TenantId, u: UserId, now: Timestamp) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: t,
        user_id: u,
        client_id: "web".into(),
        scopes: vec!["openid".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: now.saturating_add(Duration::from_secs(600)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_on_one_key_never_exceed_the_policy() {
    let Some(url) = test_url() else { return };
    let mut config = RedisConfig::new(&url);
    config.key_prefix = prefix("load");
    config.pool_size = 4;
    let r = RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let limiter = r.rate_limits();
    let policy = RateLimitPolicy {
        limit: 100,
        period: Duration::from_secs(1),
        burst: 20,
    };
    let t = TenantId::new();
    let (attempts, admitted) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (limiter, attempts, admitted) =
                (limiter.clone(), attempts.clone(), admitted.clone());
            tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(2) {
                    let d = limiter
                        .check(t, "ip:198.51.100.7:auth", policy, 1)
                        .await
                        .unwrap();
                    attempts.fetch_add(1, Ordering::Relaxed);
                    admitted.fetch_add(u64::from(d.allowed), Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (attempts, admitted) = (
        attempts.load(Ordering::Relaxed),
        admitted.load(Ordering::Relaxed),
    );
    // GCRA admits the burst, then one per emission interval (10 ms) of server time.
    let allowed = 20 + (elapsed.as_micros() as u64).div_ceil(10_000);
    println!(
        "redis load: 64 tasks over 4 connections for {elapsed:.2?}: {attempts} attempts, \
         {admitted} admitted, at most {allowed} allowed by the policy"
    );
    assert!(
        attempts > 1000,
        "too little load to mean anything: {attempts}"
    );
    assert!(
        admitted <= allowed,
        "{admitted} admitted, policy allows {allowed}"
    );
    assert!(
        admitted >= 20 + 150,
        "{admitted} admitted: the limiter starves legitimate traffic"
    );
}

/// A private `redis-server` this test may kill and start again. Append-only file with
/// `fsync always`, as a deployment that keeps sessions across restarts would run it.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    fn dir(port: u16) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("credo-redisfault-{}-{port}", std::process::id()))
    }

    fn start(port: u16) -> Option<Self> {
        let dir = Self::dir(port);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn();
        match child {
            Ok(child) => {
                let deadline = Instant::now() + Duration::from_secs(5);
                while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                    assert!(
                        Instant::now() < deadline,
                        "redis-server did not listen on {port}"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(Self {
                    port,
                    child: Some(child),
                })
            }
            Err(e) if std::env::var("CREDO_TEST_REQUIRE").is_ok_and(|v| v == "all") => {
                panic!("redis-server: {e} (cargo xtask services up installs it)")
            }
            Err(e) => {
                eprintln!("SKIPPED: redis-server: {e}");
                None
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(Self::dir(self.port));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_redis_mid_run_yields_unavailable_then_recovers() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Some(mut server) = PrivateRedis::start(port) else {
        return;
    };
    let mut config = RedisConfig::new(format!("redis://127.0.0.1:{}", server.port));
    config.command_timeout = Duration::from_secs(1);
    config.connection_timeout = Duration::from_secs(1);
    config.reconnect_max = Duration::from_millis(500);
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let r = RedisStores::connect(&config, clock.clone()).await.unwrap();
    let (sessions, limiter, health) = (
        r.sessions(),
        r.rate_limits(),
        r.health(Duration::from_millis(500)),
    );
    let (t, u) = (TenantId::new(), UserId::new());
    let s = sessions
        .create(new_session(t, u, clock.now()))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (oks, unavailable) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let slowest = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (sessions, stop, oks, unavailable, slowest) = (
                sessions.clone(),
                stop.clone(),
                oks.clone(),
                unavailable.clone(),
                slowest.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = sessions.touch(t, s.id).await;
                    slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    match r {
                        Ok(_) => oks.fetch_add(1, Ordering::Relaxed),
                        Err(StoreError::Unavailable(_)) => {
                            unavailable.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(e) => panic!("expected Ok or Unavailable, got {e:?}"),
                    };
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.stop();
    let down_at = Instant::now();
    let t0 = Instant::now();
    let err = limiter
        .check(t, "k", RateLimitPolicy::per(5, Duration::from_secs(1)), 1)
        .await
        .unwrap_err();
    let first_error = t0.elapsed();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        first_error < Duration::from_secs(3),
        "call took {first_error:?} with a 1 s command timeout"
    );
    // A readiness probe against a Redis that is down answers within its timeout.
    let probed = Instant::now();
    let status = health.check().await;
    assert!(
        matches!(status, credo_ports::HealthStatus::Failed(_)),
        "{status:?}"
    );
    assert!(
        probed.elapsed() < Duration::from_millis(750),
        "the probe of a Redis that is down took {:?} (timeout 500 ms)",
        probed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = unavailable.load(Ordering::Relaxed);
    assert!(during > 0, "no Unavailable while Redis was down");

    // A new process on the same port and data: its script cache is empty. The same stores
    // must recover, reloading their scripts.
    // Forget the old handle: its Drop would delete the data directory the new process uses.
    std::mem::forget(server);
    server = PrivateRedis::start(port).expect("restart redis-server");
    let up_at = Instant::now();
    let mut recovered = None;
    while up_at.elapsed() < Duration::from_secs(10) {
        if limiter
            .check(t, "k", RateLimitPolicy::per(5, Duration::from_secs(1)), 1)
            .await
            .is_ok()
        {
            recovered = Some(up_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = recovered.expect("stores did not recover within 10 s");
    let fresh = sessions
        .create(new_session(t, u, clock.now()))
        .await
        .unwrap();
    assert_eq!(
        sessions.revoke(t, fresh.id).await.unwrap().status,
        SessionStatus::Revoked
    );
    assert_eq!(health.check().await, credo_ports::HealthStatus::Ok);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a worker panicked");
    }
    println!(
        "redis fault: down {:.1?}; first error after {first_error:.2?} (command timeout 1 s); \
         {during} Unavailable while down; slowest call {} ms; recovered {recovered:.2?} after restart \
         (scripts reloaded); {} successful touches",
        up_at - down_at,
        slowest.load(Ordering::Relaxed),
        oks.load(Ordering::Relaxed)
    );
    drop(server);
}
