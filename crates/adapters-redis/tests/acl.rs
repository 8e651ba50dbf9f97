//! The adapter as an ACL user with only [`credo_adapters_redis::acl`]'s rule: every store
//! operation works, and what the rule leaves out (keys outside the prefix, `FLUSHALL`,
//! `CONFIG SET`, `KEYS`, `DEBUG`, `ACL`) is refused with `NOPERM`.

mod support;

use credo_adapters_redis::{RedisConfig, RedisStores, acl};
use credo_ports::{Clock, SessionStatus};
use credo_ports::{HealthStatus, ManualClock, RateLimitPolicy, SystemClock, TenantId, UserId};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use support::{DropUser, acl_user, address, raw, session, test_url};

use credo_testkit::url_as;

/// The server's `ACL LOG` (its last 128 refusals), as text.
async fn acl_log(admin: &Client) -> String {
    let log: Value = admin
        .custom(
            CustomCommand::new_static("ACL", ClusterHash::Random, false),
            vec!["LOG", "128"],
        )
        .await
        .unwrap();
    format!("{log:?}")
}

/// The server's error text for `args` sent by `client`, which must be refused.
async fn refused(client: &Client, args: &[&str]) -> String {
    let cmd = CustomCommand::new(args[0].to_string(), ClusterHash::Random, false);
    let rest: Vec<String> = args[1..].iter().map(|a| a.to_string()).collect();
    match client.custom::<Value, _>(cmd, rest).await {
        Ok(v) => panic!("{args:?} was allowed: {v:?}"),
        Err(e) => e.details().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_runs_every_operation_and_nothing_else() {
    let Some(url) = test_url() else { return };
    let addr = address(&url);
    let pid = std::process::id();
    let prefix = format!("credo_acl_{pid}");
    let user = format!("credo_acl_test_{pid}");
    // URL delimiters, spaces and non-ASCII: the URL carries it percent-encoded.
    let password = format!("p@ss:w/rd %#?é {}", uuid::Uuid::new_v4().simple());
    let _guards = acl_user(&url, &user, &password, &prefix).await;

    let mut config = RedisConfig::new(url_as(&url, &user, &password));
    config.key_prefix = prefix.clone();
    config.expiry_grace = Duration::from_secs(1);
    config.rate_limit_time = credo_adapters_redis::TimeSource::Clock;
    let now = SystemClock.now();
    let clock = Arc::new(ManualClock::new(now));
    let r = RedisStores::connect(&config, clock.clone()).await.unwrap();

    // Health: PING, and the eviction policy by CONFIG GET.
    assert_eq!(
        r.health(Duration::from_secs(3)).check().await,
        HealthStatus::Ok
    );
    assert!(!r.eviction_policy().await.unwrap().is_empty());

    // Sessions and token revocations.
    let s = r.sessions();
    let (t, u) = (TenantId::new(), UserId::new());
    let a = s
        .create(session(t, u, now, Duration::from_secs(60)))
        .await
        .unwrap();
    let b = s
        .create(session(t, u, now, Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(s.get(t, a.id).await.unwrap().unwrap().id, a.id);
    s.touch(t, a.id).await.unwrap();
    s.mark_refreshed(t, a.id).await.unwrap();
    let mut pending = session(t, u, now, Duration::from_secs(60));
    pending.status = SessionStatus::PendingConsent;
    let c = s.create(pending).await.unwrap();
    assert_eq!(
        s.activate(t, c.id).await.unwrap().status,
        SessionStatus::Active
    );
    assert_eq!(s.list_for_user(t, u).await.unwrap().len(), 3);
    assert_eq!(
        s.revoke(t, b.id).await.unwrap().status,
        SessionStatus::Revoked
    );
    assert_eq!(s.revoke_all_for_user(t, u).await.unwrap(), 2);
    let exp = now.saturating_add(Duration::from_secs(60));
    s.revoke_token(t, "jti-1", exp).await.unwrap();
    assert!(s.is_token_revoked(t, "jti-1").await.unwrap());
    assert!(!s.is_token_revoked(t, "jti-2").await.unwrap());

    // Rate limits.
    let l = r.rate_limits();
    let policy = RateLimitPolicy::per(1, Duration::from_secs(10));
    assert!(l.check(t, "k", policy, 1).await.unwrap().allowed);
    assert!(!l.peek(t, "k", policy).await.unwrap().allowed);
    l.reset(t, "k").await.unwrap();
    assert!(l.check(t, "k", policy, 1).await.unwrap().allowed);

    // Leases.
    let leases = r.leases();
    assert!(
        leases
            .acquire("job", "me", Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        !leases
            .acquire("job", "you", Duration::from_secs(30))
            .await
            .unwrap()
    );
    leases.release("job", "me").await.unwrap();

    // Scripts are reloaded (SCRIPT LOAD) after a flush by the admin.
    raw(&addr, &["SCRIPT", "FLUSH"]);
    assert!(s.is_token_revoked(t, "jti-1").await.unwrap());

    // Purges, once everything expired; key counts walk the prefix with SCAN.
    assert!(!r.key_counts().await.unwrap().is_empty());
    clock.advance(Duration::from_secs(7200));
    let limit = NonZeroU32::new(100).unwrap();
    // Three sessions and one token revocation.
    assert_eq!(s.purge_expired(limit).await.unwrap(), 4);
    assert_eq!(l.purge_idle(limit).await.unwrap(), 1);

    // The adapter's own operations were never refused: the server logs every ACL denial
    // (`ACL LOG`, server-wide), and none names this user. A rule missing a command that some
    // path sends only sometimes (a fallback, a reconnect) shows here.
    let admin = credo_adapters_redis::client_builder(&RedisConfig::new(url.as_str()))
        .unwrap()
        .build()
        .unwrap();
    admin.init().await.unwrap();
    let log = acl_log(&admin).await;
    assert!(
        !log.contains(&user),
        "the adapter's operations were refused: {log}"
    );

    // Denials, through a client of the same user.
    let client = credo_adapters_redis::client_builder(&config)
        .unwrap()
        .build()
        .unwrap();
    client.init().await.unwrap();
    let cases: [&[&str]; 8] = [
        &["SET", "other:key", "x"],
        &["GET", "other:key"],
        &["FLUSHALL"],
        &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
        // It would answer the admin's password and the TLS key passphrases.
        &["CONFIG", "GET", "requirepass"],
        &["CONFIG", "GET", "*"],
        &["KEYS", "*"],
        &["ACL", "WHOAMI"],
    ];
    for args in cases {
        let why = refused(&client, args).await;
        println!("{} -> {why}", args.join(" "));
        assert!(why.starts_with("NOPERM"), "{args:?}: {why}");
    }
    // DEBUG: the server refuses it to everyone unless `enable-debug-command` allows it
    // (before ACLs are checked), so `ACL DRYRUN` shows the rule denies it too.
    let why = refused(&client, &["DEBUG", "SLEEP", "0"]).await;
    println!("DEBUG SLEEP 0 -> {why}");
    assert!(why.starts_with("NOPERM") || why.starts_with("ERR DEBUG command not allowed"));
    let dry = raw(&addr, &["ACL", "DRYRUN", &user, "DEBUG", "SLEEP", "0"]);
    println!("ACL DRYRUN {user} DEBUG SLEEP 0 -> {}", dry.trim_end());
    assert!(
        dry.contains("no permissions to run the 'debug' command"),
        "{dry}"
    );
    // A script cannot reach outside the prefix either: EVAL is not allowed at all.
    let why = refused(
        &client,
        &[
            "EVAL",
            "return redis.call('SET', KEYS[1], 'x')",
            "1",
            "other:key",
        ],
    )
    .await;
    println!("EVAL -> {why}");
    assert!(why.starts_with("NOPERM"), "{why}");
    assert_eq!(raw(&addr, &["EXISTS", "other:key"]), ":0\r\n");
    // ... and the denials above are in the log under this user.
    let log = acl_log(&admin).await;
    assert!(log.contains(&user), "{log}");
    // Deleting the user (what an operator retiring it runs) leaves no user behind, and deleting
    // it again succeeds.
    credo_adapters_redis::acl::del_user(&url, &user)
        .await
        .unwrap();
    let gone = raw(&addr, &["ACL", "GETUSER", &user]);
    assert!(matches!(gone.as_str(), "$-1\r\n" | "*-1\r\n"), "{gone}");
    credo_adapters_redis::acl::del_user(&url, &user)
        .await
        .unwrap();
    let _ = admin.quit().await;
    let _ = client.quit().await;
    r.close().await;
}

/// The `aclfile` line is valid Redis ACL syntax (applied here through `ACL SETUSER`, which
/// takes the same rules): its `#<sha256>` authenticates the password, with spaces and `#` in
/// it, and the user gets the same rule as [`acl::rules`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_file_line_is_accepted_and_its_hash_authenticates() {
    let Some(url) = test_url() else { return };
    let addr = address(&url);
    let user = format!("credo_aclfile_test_{}", std::process::id());
    let password = "a pass#word >with: odd@chars";
    let prefix = "credo_aclfile";
    let line = acl::acl_file_line(&user, password, prefix).unwrap();
    assert!(!line.contains(password));
    let mut args = vec!["ACL", "SETUSER"];
    args.extend(line.strip_prefix("user ").unwrap().split(' '));
    assert_eq!(raw(&addr, &args), "+OK\r\n");
    let _user = DropUser {
        addr: addr.clone(),
        user: user.clone(),
    };
    let auth = |pw: &str| raw(&addr, &["AUTH", &user, pw]);
    assert_eq!(auth(password), "+OK\r\n");
    assert!(auth("a pass#word").starts_with("-WRONGPASS"));
    // Same keys and commands as the rule the tests above use (minus the password).
    let by_file = raw(&addr, &["ACL", "GETUSER", &user]);
    let reference = format!("{user}_ref");
    let mut set: Vec<String> = vec!["ACL".into(), "SETUSER".into(), reference.clone()];
    set.extend(acl::rules(password, prefix).unwrap());
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    assert_eq!(raw(&addr, &set), "+OK\r\n");
    let _ref_user = DropUser {
        addr: addr.clone(),
        user: reference.clone(),
    };
    assert_eq!(by_file, raw(&addr, &["ACL", "GETUSER", &reference]));
}
