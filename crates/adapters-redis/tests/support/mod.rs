//! Helpers shared by the Redis server tests: the test server's address, raw commands over a
//! plain connection (usable from `Drop`), the server's command counts, key listings, and
//! stores under a prefix of their own that a guard cleans up.
#![allow(dead_code)] // each test binary uses a different part

use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_ports::{
    Device, ManualClock, NewSession, SessionId, SessionStatus, TenantId, Timestamp, UserId,
};
use std::sync::Arc;
use std::time::Duration;

pub fn test_url() -> Option<String> {
    credo_testkit::required("CREDO_TEST_REDIS_URL")
}

/// `host:port` of a `redis://host:port[/db]` URL without credentials.
pub fn address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap().to_string()
}

/// One command over a plain connection (no client library, so `Drop` can use it), returning
/// the raw reply.
pub fn raw(addr: &str, args: &[&str]) -> String {
    credo_testkit::redis::resp(addr, None, args)
}

/// Tests that change one server-wide setting, or count the server's commands: one at a time
/// (within a test binary; cargo runs the binaries one after another).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How many times the server has run `command` (`INFO commandstats`).
pub fn calls(addr: &str, command: &str) -> u64 {
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
pub fn script_loads(addr: &str) -> u64 {
    calls(addr, "script|load") + calls(addr, "script")
}

/// Deletes every key under its prefix when dropped, also after a failed assertion.
pub struct Cleanup {
    pub addr: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for key in keys(&self.addr, &self.prefix) {
            raw(&self.addr, &["DEL", &key]);
        }
    }
}

/// Deletes an ACL user when dropped, also after a failed assertion.
pub struct DropUser {
    pub addr: String,
    pub user: String,
}

impl Drop for DropUser {
    fn drop(&mut self) {
        raw(&self.addr, &["ACL", "DELUSER", &self.user]);
    }
}

/// Creates ACL user `user` with the adapter's rule (`credo_adapters_redis::acl::rules`) for
/// `password` and `prefix`, through the admin `url`; the guards delete the user and the keys
/// of `prefix`.
pub async fn acl_user(url: &str, user: &str, password: &str, prefix: &str) -> (DropUser, Cleanup) {
    use credo_adapters_redis::acl;
    acl::set_user(url, user, &acl::rules(password, prefix).unwrap())
        .await
        .unwrap();
    let addr = address(url);
    (
        DropUser {
            addr: addr.clone(),
            user: user.to_string(),
        },
        Cleanup {
            addr,
            prefix: prefix.to_string(),
        },
    )
}

/// Stores under a prefix of their own, on a clock that stands still, and the guard that
/// deletes their keys.
pub async fn prefixed(
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

pub fn session(tenant: TenantId, user: UserId, now: Timestamp, lifetime: Duration) -> NewSession {
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
pub fn keys(addr: &str, prefix: &str) -> Vec<String> {
    let reply = raw(addr, &["KEYS", &format!("{prefix}:*")]);
    reply
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('*') && !l.starts_with('$'))
        .map(str::to_string)
        .collect()
}
