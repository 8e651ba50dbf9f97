//! The key layout on a Redis Cluster (`CREDO_TEST_REDIS_CLUSTER_URL`, three masters from
//! `cargo xtask services up redis-cluster`): where one large tenant's keys land beside many
//! small tenants', and what a session costs in memory. Prints the figures `docs/scale.md`
//! quotes.
//!
//! The per-tenant hash tag (`{t:<tenant>}`) keeps a tenant's sessions, user indexes, revoked
//! tokens and rate-limit keys in one slot, so one master holds all of a tenant; session id
//! reservations (`sid:{<id>}`) spread over every master.

use credo_adapters_redis::{RedisConfig, RedisStores, client_builder};
use credo_ports::{
    Device, ManualClock, NewSession, RateLimitPolicy, SessionId, SessionStatus, TenantId,
    Timestamp, UserId,
};
use fred::prelude::*;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cluster_url() -> Option<String> {
    credo_testkit::required("CREDO_TEST_REDIS_CLUSTER_URL")
}

/// Every master, by address, as the seed node of `url` reports them (`CLUSTER NODES`).
async fn masters(client: &Client, url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let seed = rest.split(['/', '?']).next().unwrap();
    let seed = seed.rsplit_once('@').map_or(seed, |(_, a)| a);
    let nodes: String = on_node(client, seed, "CLUSTER", vec!["NODES"]).await;
    nodes
        .lines()
        .filter(|l| l.contains("master"))
        .map(|l| {
            let addr = l.split_whitespace().nth(1).unwrap();
            addr.split('@').next().unwrap().to_string()
        })
        .collect()
}

/// A command on one node (by `host:port`), not routed by key.
async fn on_node<R: FromValue>(
    client: &Client,
    node: &str,
    cmd: &'static str,
    args: Vec<&str>,
) -> R {
    let (host, port) = node.rsplit_once(':').unwrap();
    let server = fred::types::config::Server::new(host, port.parse().unwrap());
    let args: Vec<Value> = args.into_iter().map(Value::from).collect();
    client
        .with_cluster_node(server)
        .custom(
            fred::types::CustomCommand::new_static(cmd, fred::types::ClusterHash::Random, false),
            args,
        )
        .await
        .unwrap_or_else(|e| panic!("{cmd} on {node}: {e}"))
}

/// `used_memory` of `node`, in bytes.
async fn used_memory(client: &Client, node: &str) -> i64 {
    let info: String = on_node(client, node, "INFO", vec!["memory"]).await;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Keys under `pattern` on `node` (SCAN on that node only).
async fn keys_on(client: &Client, node: &str, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, page): (String, Vec<String>) = on_node(
            client,
            node,
            "SCAN",
            vec![&cursor, "MATCH", pattern, "COUNT", "1000"],
        )
        .await;
        out.extend(page);
        if next == "0" {
            return out;
        }
        cursor = next;
    }
}

fn new_session(tenant: TenantId, now: Timestamp) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: UserId::new(),
        client_id: "web".into(),
        scopes: vec!["openid".into(), "profile".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: now.saturating_add(Duration::from_secs(3600)),
    }
}

/// Writes `sessions` sessions (each of its own user) and as many rate-limit keys for each
/// tenant, 64 calls at a time.
async fn write(stores: &RedisStores, tenants: &[TenantId], per_tenant: usize, now: Timestamp) {
    let sessions = stores.sessions();
    let limits = stores.rate_limits();
    let policy = RateLimitPolicy::per(100, Duration::from_secs(60));
    let work: Vec<(TenantId, usize)> = tenants
        .iter()
        .flat_map(|t| (0..per_tenant).map(move |i| (*t, i)))
        .collect();
    futures_util::stream::iter(work)
        .for_each_concurrent(64, |(tenant, i)| {
            let (sessions, limits) = (sessions.clone(), limits.clone());
            async move {
                sessions.create(new_session(tenant, now)).await.unwrap();
                limits
                    .check(tenant, &format!("login:198.51.100.{i}"), policy, 1)
                    .await
                    .unwrap();
            }
        })
        .await;
}

/// One tenant with as many keys as 1,000 small tenants together: all of its keys sit on one
/// master, while the small tenants' spread over all three. Prints keys and memory per master,
/// and the memory one session costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_large_tenant_sits_on_one_master_small_tenants_spread() {
    let Some(url) = cluster_url() else { return };
    let prefix = credo_testkit::unique_name("skew");
    let mut config = RedisConfig::new(&url);
    config.key_prefix = prefix.clone();
    config.pool_size = 4;
    let now = Timestamp::from_secs(1_800_000_000);
    let stores = RedisStores::connect(&config, Arc::new(ManualClock::new(now)))
        .await
        .unwrap();
    let client = client_builder(&config).unwrap().build().unwrap();
    client.init().await.unwrap();
    let masters = masters(&client, &url).await;
    assert_eq!(masters.len(), 3, "a cluster of three masters: {masters:?}");

    let mut before = BTreeMap::new();
    for m in &masters {
        before.insert(m.clone(), used_memory(&client, m).await);
    }
    const PER_LARGE: usize = 10_000;
    const SMALL: usize = 1_000;
    const PER_SMALL: usize = 10;
    let large = TenantId::new();
    let small: Vec<TenantId> = (0..SMALL).map(|_| TenantId::new()).collect();
    let t = Instant::now();
    write(&stores, &[large], PER_LARGE, now).await;
    write(&stores, &small, PER_SMALL, now).await;
    let took = t.elapsed();

    let large_tag = format!("{prefix}:{{t:{large}}}:*");
    let mut rows = Vec::new();
    let mut on_large_master = Vec::new();
    let (mut all_keys, mut all_small, mut memory) = (0usize, 0usize, 0i64);
    for m in &masters {
        let all = keys_on(&client, m, &format!("{prefix}:*")).await;
        let large_here = keys_on(&client, m, &large_tag).await.len();
        let sid = all.iter().filter(|k| k.contains(":sid:")).count();
        let small_here = all.len() - large_here - sid;
        let grown = used_memory(&client, m).await - before[m];
        if large_here > 0 {
            on_large_master.push(m.clone());
        }
        all_keys += all.len();
        all_small += small_here;
        memory += grown;
        rows.push((m.clone(), all.len(), large_here, small_here, sid, grown));
    }
    println!(
        "cluster layout: 1 tenant x {PER_LARGE} sessions + {PER_LARGE} rate-limit keys, and \
         {SMALL} tenants x {PER_SMALL} + {PER_SMALL}, written in {took:.1?}"
    );
    println!("  master           keys  large-tenant  small-tenants  sid-reservations  memory");
    for (m, all, large_here, small_here, sid, grown) in &rows {
        println!(
            "  {m:<15} {all:>6}  {large_here:>12}  {small_here:>13}  {sid:>16}  {:>6.1} MB",
            *grown as f64 / 1e6
        );
    }
    // Each session: its hash, its user's index (one user per session here), its id
    // reservation; each rate-limit key: one string.
    let sessions = PER_LARGE + SMALL * PER_SMALL;
    println!(
        "  {all_keys} keys, {:.1} MB in all: about {:.0} bytes per session with its index, \
         reservation and one rate-limit key; {:.2} GB per million such sessions",
        memory as f64 / 1e6,
        memory as f64 / sessions as f64,
        memory as f64 / sessions as f64 * 1e6 / 1e9
    );

    assert_eq!(
        on_large_master.len(),
        1,
        "the large tenant's keys are on one master only: {rows:?}"
    );
    assert_eq!(
        rows.iter().map(|r| r.2).sum::<usize>(),
        3 * PER_LARGE,
        "session, index and rate-limit key per entry of the large tenant"
    );
    assert_eq!(all_small, 3 * SMALL * PER_SMALL);
    for (m, _, _, small_here, sid, _) in &rows {
        // 1,000 tenants hashed over three masters (slot ranges of 5,461 or 5,462): each
        // holds a third, give or take; sid reservations spread by session id.
        let share = *small_here as f64 / all_small as f64;
        assert!(
            (0.25..0.42).contains(&share),
            "{m} holds {share:.2} of the small tenants' keys"
        );
        let sid_share = *sid as f64 / sessions as f64;
        assert!(
            (0.28..0.39).contains(&sid_share),
            "{m} holds {sid_share:.2} of the reservations"
        );
    }

    // Clean-up: every key under the prefix, node by node.
    for m in &masters {
        for key in keys_on(&client, m, &format!("{prefix}:*")).await {
            let _: i64 = client.del(key).await.unwrap();
        }
    }
    stores.close().await;
    let _ = client.quit().await;
}
