//! A rotated Redis password reaches new connections without a restart: with
//! `RedisConfig::url_file`, the credentials are read from the file for every `AUTH` (fred's
//! credential provider), so after the operator changes the ACL user's password and then the
//! secret, the next reconnection uses the new one. A store given the same URL inline cannot
//! reconnect, and a file that is half-written keeps the last good credentials.

mod support;

use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_ports::{Clock, StoreError, SystemClock, TenantId};
use credo_testkit::replace_file;
use std::sync::Arc;
use std::time::Duration;
use support::{acl_user, address, raw, test_url};

/// `CLIENT LIST`'s text.
fn client_list(addr: &str) -> String {
    let reply = raw(addr, &["CLIENT", "LIST"]);
    let (_, body) = reply.split_once("\r\n").unwrap();
    body.trim_end_matches("\r\n").to_string()
}

/// One store call: records a token revocation and reads it back.
async fn call(stores: &RedisStores) -> Result<(), StoreError> {
    let s = stores.sessions();
    let tenant = TenantId::new();
    let until = SystemClock.now().saturating_add(Duration::from_secs(60));
    s.revoke_token(tenant, "jti", until).await?;
    assert!(s.is_token_revoked(tenant, "jti").await?);
    Ok(())
}

/// Calls until one succeeds, within 10 s; how long that took.
async fn succeeds(stores: &RedisStores, what: &str) -> Duration {
    credo_testkit::succeeds_within(Duration::from_secs(10), what, || call(stores)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_password_reaches_new_connections_without_a_restart() {
    let Some(url) = test_url() else { return };
    let addr = address(&url);
    let pid = std::process::id();
    let prefix = format!("credo_rot_{pid}");
    let user = format!("credo_rot_test_{pid}");
    // URL delimiters, spaces and non-ASCII: the file holds the URL percent-encoded.
    let (first, second) = ("first p@ss:w/rd é", "second #?% pass/2");
    let _guards = acl_user(&url, &user, first, &prefix).await;
    let url_with = |p: &str| credo_testkit::url_as(&url, &user, p);
    let dir = std::env::temp_dir().join(credo_testkit::unique_name("credo_redis_secret"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redis-url");
    replace_file(&file, format!("{}\n", url_with(first)));

    let tune = |mut c: RedisConfig| {
        c.key_prefix = prefix.clone();
        c.pool_size = 2;
        c.command_timeout = Duration::from_millis(500);
        c.reconnect_max = Duration::from_millis(200);
        c.rate_limit_time = credo_adapters_redis::TimeSource::Clock;
        c
    };
    let rotating = RedisStores::connect(
        &tune(RedisConfig::from_url_file(&file).unwrap()),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let fixed = RedisStores::connect(
        &tune(RedisConfig::new(url_with(first))),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    call(&rotating).await.unwrap();
    call(&fixed).await.unwrap();

    // The operator's procedure: change the password in Redis, then the secret; here every
    // connection of the user is also ended, as a restart or failover of Redis would.
    assert_eq!(
        raw(
            &addr,
            &["ACL", "SETUSER", &user, "resetpass", &format!(">{second}")]
        ),
        "+OK\r\n"
    );
    replace_file(&file, format!("{}\n", url_with(second)));
    raw(&addr, &["CLIENT", "KILL", "USER", &user]);
    let took = succeeds(&rotating, "after the rotation").await;
    println!(
        "first successful call after the rotation: {:.2} s",
        took.as_secs_f64()
    );
    let err = call(&fixed).await.unwrap_err();
    println!("inline URL after the rotation -> {err}");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    for secret in [first, second] {
        assert!(!err.to_string().contains(secret), "{err}");
    }

    // A half-written (empty) or broken secret, or none at all, keeps the last good
    // credentials: the pool reconnects as the user (not as `default`, which needs none here).
    for broken in [Some(""), Some("not a url"), None] {
        match broken {
            Some(text) => replace_file(&file, text),
            None => std::fs::remove_file(&file).unwrap(),
        }
        raw(&addr, &["CLIENT", "KILL", "USER", &user]);
        succeeds(&rotating, &format!("{broken:?}")).await;
        let connected = client_list(&addr);
        assert!(
            connected.contains(&format!(" user={user} ")),
            "{broken:?}: {connected}"
        );
    }

    rotating.close().await;
    fixed.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
