//! Server-wide state the conformance suite cannot see: the eviction policy, ACLs, start-up
//! warnings, the health probe's timeout and the pool's connections.
//!
//! Eviction is visible: under any `maxmemory-policy` but `noeviction`, Redis may drop revoked
//! tokens (which then become valid again) and rate-limit state, so the health check reports
//! `degraded` naming the policy, read from `INFO memory` or, where that is denied, from
//! `CONFIG GET`; where both are denied it says the policy cannot be verified.
//!
//! Runs against the shared test server (`CREDO_TEST_REDIS_URL`), one test at a time; every
//! server setting a test changes is restored by a guard, also when an assertion fails.
//! `tests/stored_keys.rs` holds what only the server's own bookkeeping shows.

mod support;

use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_ports::{HealthStatus, RateLimitPolicy, StoreError, SystemClock, TenantId};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;
use support::{SERIAL, address, raw, test_url};

fn policy(addr: &str) -> String {
    let reply = raw(addr, &["CONFIG", "GET", "maxmemory-policy"]);
    reply.lines().nth(4).expect("CONFIG GET reply").to_string()
}

/// Restores the policy and removes the test's ACL users, whatever happened.
struct Restore {
    addr: String,
    policy: String,
    users: Vec<String>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        raw(
            &self.addr,
            &["CONFIG", "SET", "maxmemory-policy", &self.policy],
        );
        for u in &self.users {
            raw(&self.addr, &["ACL", "DELUSER", u]);
        }
    }
}

async fn check(url: &str) -> (HealthStatus, RedisStores) {
    let mut config = RedisConfig::new(url);
    config.connection_timeout = Duration::from_secs(2);
    let stores = RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let health = stores.health(Duration::from_secs(2));
    assert_eq!(health.name(), "redis");
    (health.check().await, stores)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicting_policy_is_degraded_and_named_and_noeviction_is_ok() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let _restore = Restore {
        addr: addr.clone(),
        policy: policy(&addr),
        users: vec![],
    };
    for evicting in [
        "volatile-lru",
        "allkeys-lru",
        "volatile-ttl",
        "allkeys-random",
    ] {
        assert!(raw(&addr, &["CONFIG", "SET", "maxmemory-policy", evicting]).starts_with("+OK"));
        let (status, stores) = check(&url).await;
        match &status {
            HealthStatus::Degraded(reason) => {
                assert!(reason.contains(evicting), "{reason}");
                assert!(reason.contains("revoked tokens"), "{reason}");
                assert!(reason.contains("noeviction"), "{reason}");
            }
            other => panic!("{evicting}: expected degraded, got {other:?}"),
        }
        assert_eq!(stores.eviction_policy().await.unwrap(), evicting);
        stores.close().await;
    }
    raw(&addr, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let (status, stores) = check(&url).await;
    assert_eq!(status, HealthStatus::Ok);
    stores.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_comes_from_info_else_config_and_without_both_it_is_unverified() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let tag = std::process::id();
    let (no_config, no_info, no_either) = (
        format!("credo_noconfig_{tag}"),
        format!("credo_noinfo_{tag}"),
        format!("credo_noeither_{tag}"),
    );
    let _restore = Restore {
        addr: addr.clone(),
        policy: policy(&addr),
        users: vec![no_config.clone(), no_info.clone(), no_either.clone()],
    };
    // Managed Redis: CONFIG denied by ACL (or renamed), as for the adapter's own ACL user;
    // INFO denied (or lacking the field, as behind some proxies).
    for (user, denied) in [
        (&no_config, "-config"),
        (&no_info, "-info"),
        (&no_either, "-config -info"),
    ] {
        let mut args = vec![
            "ACL", "SETUSER", user, "reset", "on", ">pw", "~*", "&*", "+@all",
        ];
        args.extend(denied.split(' '));
        assert!(raw(&addr, &args).starts_with("+OK"), "ACL SETUSER {user}");
    }
    raw(&addr, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let as_user = |u: &str| url.replacen("://", &format!("://{u}:pw@"), 1);

    let (status, stores) = check(&as_user(&no_config)).await;
    match &status {
        HealthStatus::Degraded(reason) => assert!(reason.contains("allkeys-lru"), "{reason}"),
        other => panic!("expected degraded from INFO, got {other:?}"),
    }
    stores.close().await;

    let (status, stores) = check(&as_user(&no_info)).await;
    match &status {
        HealthStatus::Degraded(reason) => assert!(reason.contains("allkeys-lru"), "{reason}"),
        other => panic!("expected degraded from CONFIG GET, got {other:?}"),
    }
    stores.close().await;

    let (status, stores) = check(&as_user(&no_either)).await;
    match &status {
        HealthStatus::Degraded(reason) => {
            assert!(reason.contains("cannot be verified"), "{reason}");
            assert!(!reason.contains("pw@"), "{reason}");
        }
        other => panic!("expected degraded (unverifiable), got {other:?}"),
    }
    stores.close().await;
}

/// The log lines `RedisStores::connect` writes to `url` (the test runs on one thread, so the
/// thread-local subscriber sees every event of the connection).
async fn connect_logs(url: &str) -> String {
    let logs = credo_testkit::CapturedLogs::start(tracing::Level::WARN);
    let stores = RedisStores::connect(&RedisConfig::new(url), Arc::new(SystemClock))
        .await
        .unwrap();
    stores.close().await;
    logs.text()
}

/// An operator learns at start-up, not at the first probe, that Redis may evict revoked tokens.
#[tokio::test(flavor = "current_thread")]
async fn connecting_warns_under_an_evicting_policy_and_not_under_noeviction() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let _restore = Restore {
        addr: addr.clone(),
        policy: policy(&addr),
        users: vec![],
    };
    raw(
        &addr,
        &["CONFIG", "SET", "maxmemory-policy", "volatile-lru"],
    );
    let logs = connect_logs(&url).await;
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("volatile-lru"), "{logs}");
    raw(&addr, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let logs = connect_logs(&url).await;
    assert!(logs.is_empty(), "noeviction must connect silently: {logs}");
}

/// The health check's own timeout governs its probe, not the (shorter) command timeout: a
/// server that answers after 1.5 s is up for a 3 s probe even when commands time out at 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_waits_its_own_timeout_not_the_command_timeout() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let _restore = Restore {
        addr: addr.clone(),
        policy: policy(&addr),
        users: vec![],
    };
    raw(&addr, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let mut config = RedisConfig::new(&url);
    config.command_timeout = Duration::from_secs(1);
    let stores = RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let health = stores.health(Duration::from_secs(3));
    assert!(raw(&addr, &["CLIENT", "PAUSE", "1500", "ALL"]).starts_with("+OK"));
    let status = health.check().await;
    assert_eq!(status, HealthStatus::Ok);
    stores.close().await;
}

/// `close` ends the pool's connections: later calls fail as `Unavailable` instead of
/// reconnecting, and the server sees the connections go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_ends_every_connection() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    // One connection for every probe: a connection per probe would itself be counted, and
    // linger after it closes.
    let probe = std::cell::RefCell::new(TcpStream::connect(&addr).unwrap());
    let connected = || -> u64 {
        let mut conn = probe.borrow_mut();
        conn.write_all(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO clients")
    };
    let before = connected();
    let mut config = RedisConfig::new(&url);
    config.pool_size = 3;
    // After `close` a call waits out the command timeout before it fails.
    config.command_timeout = Duration::from_millis(300);
    let stores = RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let limiter = stores.rate_limits();
    let policy = RateLimitPolicy::per(5, Duration::from_secs(1));
    limiter
        .check(TenantId::new(), "k", policy, 1)
        .await
        .unwrap();
    // The server notices connections come and go a moment later.
    let settles_at = |want: u64| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while connected() != want && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        connected()
    };
    assert_eq!(settles_at(before + 3).await, before + 3);
    stores.close().await;
    let result = limiter.check(TenantId::new(), "k", policy, 1).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "after close: {result:?}"
    );
    assert_eq!(settles_at(before).await, before);
}
