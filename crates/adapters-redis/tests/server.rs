//! What the conformance suite cannot see: behaviour that depends on server-wide state (the
//! eviction policy, ACLs, the script cache, connections), what only the server's own
//! bookkeeping shows (key TTLs, index members, command counts), and instances whose clocks
//! disagree.
//!
//! Eviction is visible: under any `maxmemory-policy` but `noeviction`, Redis may drop revoked
//! tokens (which then become valid again) and rate-limit state, so the health check reports
//! `degraded` naming the policy; where `CONFIG` is denied it falls back to `INFO memory`, and
//! where that is denied too it says the policy cannot be verified.
//!
//! Runs against the shared test server (`CREDO_TEST_REDIS_URL`), one test at a time; every
//! server setting a test changes is restored by a guard, also when an assertion fails.

use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_ports::{
    Device, HealthStatus, ManualClock, NewSession, RateLimitPolicy, SessionId, SessionStatus,
    StoreError, SystemClock, TenantId, Timestamp, UserId,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

fn test_url() -> Option<String> {
    credo_testkit::required("CREDO_TEST_REDIS_URL")
}

/// `host:port` of a `redis://host:port[/db]` URL without credentials.
fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap().to_string()
}

/// One command over a plain connection (no client library, so `Drop` can use it), returning
/// the raw reply.
fn raw(addr: &str, args: &[&str]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(cmd.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

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

/// The tests of this file change one server-wide setting: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
async fn without_config_the_policy_comes_from_info_and_without_both_it_is_unverified() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let tag = std::process::id();
    let (no_config, no_either) = (
        format!("credo_noconfig_{tag}"),
        format!("credo_noinfo_{tag}"),
    );
    let _restore = Restore {
        addr: addr.clone(),
        policy: policy(&addr),
        users: vec![no_config.clone(), no_either.clone()],
    };
    // Managed Redis: CONFIG denied by ACL (or renamed).
    for (user, denied) in [(&no_config, "-config"), (&no_either, "-config -info")] {
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

/// How many times the server has run `command` (`INFO commandstats`).
fn calls(addr: &str, command: &str) -> u64 {
    let stats = raw(addr, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:");
    stats
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// How many times the server has run `SCRIPT LOAD` (Redis 7 names it `script|load`).
fn script_loads(addr: &str) -> u64 {
    calls(addr, "script|load") + calls(addr, "script")
}

/// Deletes every key under its prefix when dropped, also after a failed assertion.
struct Cleanup {
    addr: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for key in keys(&self.addr, &self.prefix) {
            raw(&self.addr, &["DEL", &key]);
        }
    }
}

/// Stores under a prefix of their own, on a clock that stands still, and the guard that
/// deletes their keys.
async fn prefixed(
    url: &str,
    name: &str,
    grace: Duration,
) -> (RedisStores, String, Timestamp, Cleanup) {
    let prefix = format!("credo_{name}_{}", std::process::id());
    let mut config = RedisConfig::new(url);
    config.key_prefix = prefix.clone();
    config.expiry_grace = grace;
    let now = Timestamp::from_secs(1_800_000_000);
    let stores = RedisStores::connect(&config, Arc::new(ManualClock::new(now)))
        .await
        .unwrap();
    let cleanup = Cleanup {
        addr: address(url),
        prefix: prefix.clone(),
    };
    (stores, prefix, now, cleanup)
}

fn session(tenant: TenantId, user: UserId, now: Timestamp, lifetime: Duration) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user,
        client_id: "web".into(),
        scopes: vec!["openid".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: now.saturating_add(lifetime),
    }
}

/// Every key under `prefix` (a test server holds few).
fn keys(addr: &str, prefix: &str) -> Vec<String> {
    let reply = raw(addr, &["KEYS", &format!("{prefix}:*")]);
    reply
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_string)
        .collect()
}

/// Every key a session writes expires with it, plus the grace (and never lives forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_of_a_session_lives_until_its_expiry_plus_the_grace() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let (stores, prefix, now, _cleanup) = prefixed(&url, "ttl", Duration::from_secs(1)).await;
    let lifetime = Duration::from_secs(600);
    stores
        .sessions()
        .create(session(TenantId::new(), UserId::new(), now, lifetime))
        .await
        .unwrap();
    let written = keys(&addr, &prefix);
    assert!(written.len() >= 2, "{written:?}");
    for key in &written {
        let pttl: i64 = raw(&addr, &["PTTL", key])
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!(
            (595_000..=601_000).contains(&pttl),
            "{key}: PTTL {pttl} ms, expected the 600 s lifetime plus the 1 s grace"
        );
    }
    stores.close().await;
}

/// A create whose id belongs to a live session (of another tenant) is refused after one look
/// at that session, not after the wait meant for a create still in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_of_a_live_session_is_refused_after_one_look() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let (stores, _, now, _cleanup) = prefixed(&url, "dup", Duration::from_secs(60)).await;
    let sessions = stores.sessions();
    let lifetime = Duration::from_secs(600);
    let first = sessions
        .create(session(TenantId::new(), UserId::new(), now, lifetime))
        .await
        .unwrap();
    let duplicate = NewSession {
        id: first.id,
        ..session(TenantId::new(), UserId::new(), now, lifetime)
    };
    let looks = calls(&addr, "hget");
    let result = sessions.create(duplicate).await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(calls(&addr, "hget") - looks, 1, "looks at the live session");
    stores.close().await;
}

/// One bad key fails the calls on that key, at once and as `Corrupt`, without reloading the
/// script (a reload is for `NOSCRIPT` only) and without touching other keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_holding_garbage_fails_its_calls_as_corrupt_without_reloading_the_script() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let prefix = format!("credo_bad_{}", std::process::id());
    let mut config = RedisConfig::new(&url);
    config.key_prefix = prefix.clone();
    let stores = RedisStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let limiter = stores.rate_limits();
    let (tenant, policy) = (
        TenantId::new(),
        RateLimitPolicy::per(5, Duration::from_secs(1)),
    );
    limiter.check(tenant, "good", policy, 1).await.unwrap();
    let key = format!("{prefix}:{{t:{tenant}}}:rl:bad");
    for (kind, write) in [
        ("a string that is no number", vec!["SET", &key, "garbage"]),
        ("a list", vec!["RPUSH", &key, "x"]),
    ] {
        raw(&addr, &["DEL", &key]);
        raw(&addr, &write);
        let loads = script_loads(&addr);
        let result = tokio::time::timeout(
            Duration::from_secs(5),
            limiter.check(tenant, "bad", policy, 1),
        )
        .await
        .unwrap_or_else(|_| panic!("{kind}: the call did not return within 5 s"));
        assert!(
            matches!(result, Err(StoreError::Corrupt(_))),
            "{kind}: expected Corrupt, got {result:?}"
        );
        assert_eq!(
            script_loads(&addr),
            loads,
            "{kind}: the script was reloaded"
        );
        limiter.check(tenant, "good", policy, 1).await.unwrap();
    }
    raw(&addr, &["DEL", &key]);
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

/// A reservation whose session was never written (its creator died between the two steps)
/// keeps the id taken: a create of that id waits a bounded number of looks for the session to
/// appear (`CREATE_IN_FLIGHT_CHECKS`, 20), then answers `Conflict`; it never spins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_reservation_is_a_conflict_after_a_bounded_wait() {
    let Some(url) = test_url() else { return };
    let _serial = SERIAL.lock().await;
    let addr = address(&url);
    let (stores, prefix, now, _cleanup) = prefixed(&url, "orphan", Duration::from_secs(60)).await;
    let new = session(
        TenantId::new(),
        UserId::new(),
        now,
        Duration::from_secs(600),
    );
    let reservation = format!("{prefix}:sid:{{{}}}", new.id);
    let holder = format!("{}:{}", new.expires_at.as_micros(), TenantId::new());
    assert!(raw(&addr, &["SET", &reservation, &holder, "EX", "60"]).starts_with("+OK"));
    let looks = calls(&addr, "hget");
    let result = tokio::time::timeout(Duration::from_secs(5), stores.sessions().create(new))
        .await
        .expect("create did not return within 5 s");
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(
        calls(&addr, "hget") - looks,
        20,
        "looks at the missing session"
    );
    stores.close().await;
}

/// Two instances whose clocks disagree (by less than the grace): the one ahead lists a user's
/// sessions at the instant one expires, and must not drop it from the user's index, since for
/// the one behind it is still live and must still be listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_behind_still_lists_a_session_one_ahead_saw_expire() {
    let Some(url) = test_url() else { return };
    let (ahead, _, now, _cleanup) = prefixed(&url, "skew", Duration::from_secs(60)).await;
    let behind = ahead.with_clock(Arc::new(ManualClock::new(
        now.saturating_sub(Duration::from_secs(1)),
    )));
    let (tenant, user) = (TenantId::new(), UserId::new());
    let new = session(tenant, user, now, Duration::ZERO);
    // Created by the instance behind, for which it is live for one more second.
    let created = behind.sessions().create(new).await.unwrap();
    assert!(
        ahead
            .sessions()
            .list_for_user(tenant, user)
            .await
            .unwrap()
            .is_empty()
    );
    let listed = behind.sessions().list_for_user(tenant, user).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![created.id],
        "the instance behind lost a session it holds live"
    );
    ahead.close().await;
}

/// A user's index entry that points to a session of another user (an index written by hand,
/// or left by a bug) is dropped the next time that user's sessions are listed, and the other
/// user's session is never shown to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_entry_for_another_users_session_is_dropped_when_listed() {
    let Some(url) = test_url() else { return };
    let addr = address(&url);
    let (stores, prefix, now, _cleanup) = prefixed(&url, "stray", Duration::from_secs(60)).await;
    let sessions = stores.sessions();
    let (tenant, owner, other) = (TenantId::new(), UserId::new(), UserId::new());
    let theirs = sessions
        .create(session(tenant, owner, now, Duration::from_secs(600)))
        .await
        .unwrap();
    let index = format!("{prefix}:{{t:{tenant}}}:u:{other}");
    let score = theirs.expires_at.as_micros().to_string();
    raw(&addr, &["ZADD", &index, &score, &theirs.id.to_string()]);
    assert!(
        sessions
            .list_for_user(tenant, other)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        raw(&addr, &["ZCARD", &index]).trim(),
        ":0",
        "the stray entry stayed"
    );
    stores.close().await;
}

/// Index entries go with their session keys, never by a clock alone: a list and a write by
/// an instance whose clock is a year ahead keep the entry of a session whose key is still
/// there; once the key is gone (expired on the server, or purged), the next list or write
/// drops the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_entry_goes_with_its_session_key_not_by_a_clock() {
    let Some(url) = test_url() else { return };
    let addr = address(&url);
    let grace = Duration::from_millis(1);
    let (stores, prefix, now, _cleanup) = prefixed(&url, "edge", grace).await;
    let (tenant, user) = (TenantId::new(), UserId::new());
    let lifetime = Duration::from_secs(60);
    let first = stores
        .sessions()
        .create(session(tenant, user, now, lifetime))
        .await
        .unwrap();
    let index = format!("{prefix}:{{t:{tenant}}}:u:{user}");
    let members = || raw(&addr, &["ZRANGE", &index, "0", "-1"]);
    let then = now.saturating_add(Duration::from_secs(366 * 86_400));
    let ahead = stores.with_clock(Arc::new(ManualClock::new(then)));
    assert!(
        ahead
            .sessions()
            .list_for_user(tenant, user)
            .await
            .unwrap()
            .is_empty()
    );
    let second = ahead
        .sessions()
        .create(session(tenant, user, then, lifetime))
        .await
        .unwrap();
    assert!(members().contains(&first.id.to_string()), "{}", members());
    let first_key = format!("{prefix}:{{t:{tenant}}}:s:{}", first.id);
    assert_eq!(raw(&addr, &["DEL", &first_key]).trim(), ":1");
    ahead
        .sessions()
        .create(session(tenant, user, then, lifetime))
        .await
        .unwrap();
    let left = members();
    assert!(!left.contains(&first.id.to_string()), "not trimmed: {left}");
    assert!(left.contains(&second.id.to_string()), "{left}");
    // The same for a list, by any clock.
    let second_key = format!("{prefix}:{{t:{tenant}}}:s:{}", second.id);
    assert_eq!(raw(&addr, &["DEL", &second_key]).trim(), ":1");
    assert_eq!(
        stores
            .sessions()
            .list_for_user(tenant, user)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(!members().contains(&second.id.to_string()), "{}", members());
    stores.close().await;
}
