//! What only the Redis server's own bookkeeping shows (key TTLs, index members, command
//! counts), and instances whose clocks disagree: the keys a session or a rate limit leaves on
//! the server, and how a bad or stray key is handled.
//!
//! Runs against the shared test server (`CREDO_TEST_REDIS_URL`); every key a test writes is
//! deleted by a guard, also when an assertion fails.

mod support;

use credo_adapters_redis::{RedisConfig, RedisStores};
use credo_ports::{
    ManualClock, NewSession, RateLimitPolicy, StoreError, SystemClock, TenantId, UserId,
};
use std::sync::Arc;
use std::time::Duration;
use support::{SERIAL, address, calls, keys, prefixed, raw, script_loads, session, test_url};

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
    // Its scripts' first loads would count in another test's tally of SCRIPT LOADs.
    let _serial = SERIAL.lock().await;
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
    // Its scripts' first loads would count in another test's tally of SCRIPT LOADs.
    let _serial = SERIAL.lock().await;
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
    // Its scripts' first loads would count in another test's tally of SCRIPT LOADs.
    let _serial = SERIAL.lock().await;
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
