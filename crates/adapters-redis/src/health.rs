//! The `redis` health check and the eviction policy it reports: a policy that may evict keys
//! makes revoked tokens valid again, so anything but `noeviction` is degraded.

use async_trait::async_trait;
use credo_ports::redact;
use credo_ports::{HealthCheck, HealthStatus, StoreError};
use fred::prelude::*;
use std::time::Duration;

pub(crate) struct RedisHealth {
    pub(crate) pool: Pool,
    pub(crate) timeout: Duration,
    /// The URL's secrets, scrubbed from the check's errors.
    pub(crate) secrets: redact::Secrets,
    /// Why the pool last failed to connect, for the log line of a failed probe.
    pub(crate) errors: crate::connection_errors::ConnectionErrors,
}

/// Why a policy that can evict is degraded.
pub(crate) fn eviction_warning(policy: &str) -> String {
    format!(
        "maxmemory-policy is {policy}: Redis may evict keys under memory pressure, so revoked \
         tokens may become valid again and rate-limit state may be lost; set \
         maxmemory-policy noeviction"
    )
}

/// `INFO memory`'s `maxmemory_policy`, falling back to `CONFIG GET maxmemory-policy` (for a
/// server or proxy whose `INFO` lacks the field); the error says why neither answered.
///
/// `INFO` first, because the adapter's ACL user has no `CONFIG GET`: that command reads every
/// setting, `requirepass` and key passphrases included ([`crate::acl`]). Asking it first would
/// put a denial in the server's `ACL LOG` on every health check.
pub(crate) async fn eviction_policy(pool: &Pool) -> Result<String, String> {
    use fred::types::{ClusterHash, CustomCommand};
    let client = pool.next();
    let info = CustomCommand::new_static("INFO", ClusterHash::Random, false);
    let info_err = match client.custom::<String, _>(info, vec!["memory"]).await {
        Ok(text) => match text
            .lines()
            .find_map(|l| l.trim().strip_prefix("maxmemory_policy:"))
        {
            Some(policy) => return Ok(policy.trim().to_string()),
            None => "INFO memory: no maxmemory_policy field".to_string(),
        },
        Err(e) => format!("INFO memory: {}", e.details()),
    };
    let config = CustomCommand::new_static("CONFIG", ClusterHash::Random, false);
    match client
        .custom::<Value, _>(config, vec!["GET", "maxmemory-policy"])
        .await
    {
        Ok(value) => policy_of_config_get(value)
            .ok_or_else(|| format!("{info_err}; CONFIG GET maxmemory-policy: no value")),
        Err(e) => Err(format!("{info_err}; CONFIG GET: {}", e.details())),
    }
}

/// The policy in a `CONFIG GET` answer: `[name, value]` (RESP2) or `{name: value}` (RESP3).
fn policy_of_config_get(value: Value) -> Option<String> {
    match value {
        Value::Array(items) => items.get(1).and_then(|v| v.as_string()),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .next()
            .and_then(|(_, v)| v.as_string()),
        _ => None,
    }
}

#[async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> &str {
        "redis"
    }

    async fn check(&self) -> HealthStatus {
        // The probe's own timeout, not the command timeout, bounds the PING. (`fail_fast` is
        // not set: while fred reconnects it still queued the PING about half of the time, so a
        // probe of a Redis that is down answers within its timeout, not at once.)
        let options = Options {
            timeout: Some(self.timeout),
            ..Default::default()
        };
        let bounded = self.pool.with_options(&options);
        let probe = async {
            bounded
                .ping::<String>(None)
                .await
                .map_err(|e| self.errors.map(e))?;
            Ok::<_, StoreError>(eviction_policy(&self.pool).await)
        };
        match tokio::time::timeout(self.timeout, probe).await {
            Ok(Ok(Ok(policy))) if policy == "noeviction" => HealthStatus::Ok,
            Ok(Ok(Ok(policy))) => HealthStatus::Degraded(eviction_warning(&policy)),
            // The report is served to anyone who can probe: the server's and the driver's
            // text (hosts, users, addresses) goes to the log only.
            Ok(Ok(Err(why))) => {
                tracing::warn!(
                    reason = %self.secrets.scrub(&why),
                    "redis: the eviction policy cannot be verified"
                );
                HealthStatus::Degraded(
                    "the eviction policy cannot be verified (CONFIG GET refused or unanswered; \
                     the reason is in the service log); revoked tokens and rate-limit state are \
                     lost if it lets Redis evict keys"
                        .into(),
                )
            }
            Ok(Err(e)) => {
                tracing::warn!(
                    error = %self.secrets.scrub(&e.to_string()),
                    "redis: readiness probe failed"
                );
                HealthStatus::Failed(format!(
                    "PING failed ({}); the reason is in the service log",
                    e.kind()
                ))
            }
            Err(_) => HealthStatus::Failed(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_get_answers_in_both_protocols() {
        let resp2 = Value::Array(vec!["maxmemory-policy".into(), "allkeys-lru".into()]);
        assert_eq!(policy_of_config_get(resp2).as_deref(), Some("allkeys-lru"));
        assert_eq!(policy_of_config_get(Value::Array(vec![])), None);
        let resp3 = fred::types::Map::try_from(vec![("maxmemory-policy", "volatile-ttl")]).unwrap();
        assert_eq!(
            policy_of_config_get(Value::Map(resp3)).as_deref(),
            Some("volatile-ttl")
        );
        assert_eq!(policy_of_config_get(Value::Null), None);
    }
}
