//! Redis access control: the one list of commands and keys the adapter needs, so a service can
//! connect as an ACL user that can do nothing else (not the `default` user, which can do
//! everything, `FLUSHALL`, `CONFIG SET` and `ACL` included).
//!
//! The rule, for key prefix `credo` (see [`rules`]):
//!
//! ```text
//! ACL SETUSER credo reset on >PASSWORD resetchannels ~credo:* -@all +evalsha +script|load
//!     +hgetall +hget +get +del +scan +ping +info +client|id +cluster|info +cluster|slots +hset +hmget
//!     +hincrby +set +pexpire +pttl +type +time +zadd +zcount +zrangebyscore +zrem
//! ```
//!
//! - Keys: every key the adapter writes is `{prefix}:...` (`{prefix}:{t:<tenant>}:...`,
//!   `{prefix}:sid:{<id>}`, `{prefix}:{lease}:<job>`), so `~{prefix}:*` covers them all. Redis
//!   checks the pattern for the keys a command names and for every `redis.call` inside a
//!   script, so a script cannot reach outside the prefix either. `SCAN` names no key: it is
//!   allowed, and the adapter walks only `{prefix}:*` with it.
//! - No Pub/Sub channel (`resetchannels`).
//! - Commands: [`COMMANDS`]. `INFO` serves the eviction policy check (`INFO memory`) and fred,
//!   which sends `INFO server` and `CLIENT ID` on every new connection; `CLUSTER INFO` and
//!   `CLUSTER SLOTS` are how fred's clustered client checks a node and learns the slot map.
//!   A `/<db>` in the URL also needs `+select`. `AUTH` and `HELLO` need no permission.
//! - Not `CONFIG GET`: it reads every setting, `requirepass` (the admin's password) and TLS
//!   key passphrases included, so a compromised service could become the admin. Redis cannot
//!   allow it for one setting only ("Allowing first-arg of a subcommand is not supported").
//!
//! ACLs are per server: on a Redis Cluster, create the user on every node.

use crate::{RedisConfig, client_builder, config, map_err};
use credo_ports::{StoreError, StoreResult};
use fred::prelude::*;
use fred::types::{ClusterHash, CustomCommand};

/// The user name the documentation and the dev services use.
pub const USER: &str = "credo";

/// Every command the adapter sends, as ACL command names (`+<name>`): what it calls directly,
/// what its Lua scripts call, and what fred needs.
pub const COMMANDS: [&str; 24] = [
    // Scripts: every multi-step operation, by SHA, loaded again after NOSCRIPT.
    "evalsha",
    "script|load",
    // Direct reads and deletes (session get, token check, rate-limit reset, user moves).
    "hgetall",
    "hget",
    "get",
    "del",
    // Purges and key counts walk `{prefix}:*`.
    "scan",
    // Health: PING, then the eviction policy from INFO memory. Not CONFIG GET: it reads every
    // setting, `requirepass` (the admin's password) and key passphrases included.
    "ping",
    "info",
    // fred asks each new connection its id; its clustered client checks each node's state
    // and reads the slot map.
    "client|id",
    "cluster|info",
    "cluster|slots",
    // Inside the Lua scripts.
    "hset",
    "hmget",
    "hincrby",
    "set",
    "pexpire",
    "pttl",
    "type",
    "time",
    "zadd",
    "zcount",
    "zrangebyscore",
    "zrem",
];

/// The key pattern of a key prefix: `{prefix}:*`. Errors on a prefix
/// [`RedisConfig::key_prefix`] refuses (it has no glob characters).
pub fn key_pattern(prefix: &str) -> StoreResult<String> {
    config::valid_prefix(prefix)?;
    Ok(format!("{prefix}:*"))
}

/// The rules of `ACL SETUSER <user> <rules...>` for a user with password `password` and the
/// keys of `prefix`: `reset on >PASSWORD resetchannels ~{prefix}:* -@all +<command>...`.
/// `reset` first, so applying them again replaces an earlier password or rule.
pub fn rules(password: &str, prefix: &str) -> StoreResult<Vec<String>> {
    Ok(rules_for_keys(password, &[key_pattern(prefix)?]))
}

/// [`rules`] with key patterns of your own (`~<pattern>` each), e.g. one that covers several
/// prefixes of a test run.
pub fn rules_for_keys(password: &str, key_patterns: &[String]) -> Vec<String> {
    let mut rules = vec![
        "reset".to_string(),
        "on".to_string(),
        format!(">{password}"),
        "resetchannels".to_string(),
    ];
    rules.extend(key_patterns.iter().map(|p| format!("~{p}")));
    rules.push("-@all".to_string());
    rules.extend(COMMANDS.iter().map(|c| format!("+{c}")));
    rules
}

/// The same rule as an ACL file line (`user credo reset on #<sha256> ...`), for `aclfile`.
/// The password is written as its SHA-256 (`#<hex>`), so the file holds no password and any
/// character is allowed in it.
pub fn acl_file_line(user: &str, password: &str, prefix: &str) -> StoreResult<String> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(StoreError::invalid(
            "user",
            "must be non-empty, without spaces or control characters",
        ));
    }
    let mut rules = rules(password, prefix)?;
    rules[2] = format!("#{}", password_hash(password));
    Ok(format!("user {user} {}", rules.join(" ")))
}

/// The hex SHA-256 of `password`: the `#<hash>` form Redis accepts in place of `>password`.
pub fn password_hash(password: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `ACL SETUSER <user> <rules...>` through `admin_url` (a user allowed to, e.g. `default`),
/// on the server or, for a `redis-cluster://` URL, on every node it is connected to.
pub async fn set_user(admin_url: &str, user: &str, rules: &[String]) -> StoreResult<()> {
    let mut args = vec!["SETUSER".to_string(), user.to_string()];
    args.extend(rules.iter().cloned());
    on_every_node(admin_url, args).await
}

/// Runs `ACL DELUSER <user>` through `admin_url`, as [`set_user`] does (every node of a
/// cluster): the user's connections are closed by the server. Deleting a user that does not
/// exist succeeds.
pub async fn del_user(admin_url: &str, user: &str) -> StoreResult<()> {
    on_every_node(admin_url, vec!["DELUSER".to_string(), user.to_string()]).await
}

/// `ACL <args...>` on the server of `admin_url`, or on every node of a cluster.
async fn on_every_node(admin_url: &str, args: Vec<String>) -> StoreResult<()> {
    let config = RedisConfig::new(admin_url);
    let client = client_builder(&config)?.build().map_err(map_err)?;
    client.init().await.map_err(map_err)?;
    let acl = CustomCommand::new_static("ACL", ClusterHash::Random, false);
    let result = async {
        if client.is_clustered() {
            let nodes = client.active_connections();
            if nodes.is_empty() {
                return Err(StoreError::Unavailable(
                    format!("redis: ACL {}: no cluster node connected", args[0]).into(),
                ));
            }
            for node in nodes {
                let _: Value = client
                    .with_cluster_node(node)
                    .custom(acl.clone(), args.clone())
                    .await
                    .map_err(map_err)?;
            }
        } else {
            let _: Value = client.custom(acl, args).await.map_err(map_err)?;
        }
        Ok(())
    }
    .await;
    let _ = client.quit().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command a Lua script calls is in [`COMMANDS`]: a script that starts calling a new
    /// one fails here, not with `NOPERM` in production.
    #[test]
    fn every_script_command_is_allowed() {
        for call in crate::lua::script_calls() {
            let command = call.command.to_lowercase();
            assert!(
                COMMANDS.contains(&command.as_str()),
                "{}: {command} is not in acl::COMMANDS",
                call.path.display()
            );
        }
    }

    #[test]
    fn rules_name_the_prefix_and_deny_everything_else() {
        let r = rules("pw", "app").unwrap();
        assert_eq!(
            r[..6],
            ["reset", "on", ">pw", "resetchannels", "~app:*", "-@all"]
        );
        assert!(r.contains(&"+evalsha".to_string()));
        assert!(rules("pw", "a*").is_err());
        let line = acl_file_line("credo", "p w#>", "app").unwrap();
        assert!(
            line.starts_with(&format!(
                "user credo reset on #{} resetchannels ~app:* -@all +evalsha ",
                password_hash("p w#>")
            )),
            "{line}"
        );
        assert!(!line.contains("p w"));
        assert_eq!(
            password_hash("pw"),
            "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4"
        );
        assert!(acl_file_line("cre do", "pw", "app").is_err());
    }
}
