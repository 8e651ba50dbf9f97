//! [`KafkaHealth`] and [`ensure_topics`].

use crate::KafkaConfig;
use crate::context::BrokerErrors;
use async_trait::async_trait;
use credo_ports::{HealthCheck, HealthStatus, StoreError, StoreResult};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;

fn admin(config: &KafkaConfig) -> StoreResult<(AdminClient<BrokerErrors>, BrokerErrors)> {
    config.check()?;
    let errors = BrokerErrors::new(config.secrets());
    let admin = config
        .admin_config()
        .create_with_context(errors.clone())
        .map_err(|e| config.client_error(e))?;
    Ok((admin, errors))
}

/// Broker metadata within `health_timeout` and both topics present: ok; a topic missing:
/// degraded (publishing or dead-lettering would fail, the rest works); no answer: failed.
///
/// It asks for every topic's metadata rather than the audit topic's, because brokers that
/// auto-create topics would create it on a targeted request.
pub struct KafkaHealth {
    admin: Arc<AdminClient<BrokerErrors>>,
    errors: BrokerErrors,
    config: KafkaConfig,
}

impl KafkaHealth {
    /// A check for `config` (connects lazily).
    pub fn new(config: &KafkaConfig) -> StoreResult<Self> {
        let (admin, errors) = admin(config)?;
        Ok(Self {
            admin: Arc::new(admin),
            errors,
            config: config.clone(),
        })
    }
}

/// A topic the broker reports in error (being created, leader unknown) or without partitions
/// cannot take the pipeline's messages yet.
fn usable(in_error: bool, partitions: usize) -> bool {
    !in_error && partitions > 0
}

#[async_trait]
impl HealthCheck for KafkaHealth {
    fn name(&self) -> &str {
        "kafka"
    }

    async fn check(&self) -> HealthStatus {
        let (admin, timeout) = (self.admin.clone(), self.config.health_timeout);
        // fetch_metadata blocks for up to its timeout.
        let metadata = tokio::task::spawn_blocking(move || {
            admin.inner().fetch_metadata(None, timeout).map(|m| {
                m.topics()
                    .iter()
                    .filter(|t| usable(t.error().is_some(), t.partitions().len()))
                    .map(|t| t.name().to_string())
                    .collect::<Vec<_>>()
            })
        })
        .await;
        match metadata {
            Ok(Ok(topics)) => {
                let missing: Vec<&str> = [&self.config.topic, &self.config.dlq_topic]
                    .into_iter()
                    .filter(|t| !topics.contains(t))
                    .map(String::as_str)
                    .collect();
                if missing.is_empty() {
                    HealthStatus::Ok
                } else {
                    HealthStatus::Degraded(format!("topic missing: {}", missing.join(", ")))
                }
            }
            // The report is served to anyone who can probe: broker addresses and the client's
            // text go to the log only.
            Ok(Err(e)) => {
                tracing::warn!(
                    brokers = %self.config.brokers,
                    error = %self.errors.explain(e.to_string()),
                    "kafka: readiness probe got no metadata"
                );
                HealthStatus::Failed(format!(
                    "no broker metadata within {timeout:?}; the reason is in the service log"
                ))
            }
            Err(_) => HealthStatus::Failed("the probe task failed".into()),
        }
    }
}

/// Creates the audit and dead-letter topics with `config.partitions`, `config.replication`
/// and [`KafkaConfig::topic_settings`] (`retention.ms`, `min.insync.replicas`) unless they
/// exist; an existing topic is left as it is. Production clusters usually create topics by
/// their own tooling, with the same settings.
pub async fn ensure_topics(config: &KafkaConfig) -> StoreResult<()> {
    let (admin, errors) = admin(config)?;
    let settings = [&config.topic, &config.dlq_topic].map(|t| (t, config.topic_settings(t)));
    let topics: Vec<NewTopic<'_>> = settings
        .iter()
        .map(|(t, settings)| {
            settings.iter().fold(
                NewTopic::new(
                    t,
                    config.partitions,
                    TopicReplication::Fixed(config.replication),
                ),
                |topic, (name, value)| topic.set(name, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(config.health_timeout));
    let results = admin
        .create_topics(&topics, &options)
        .await
        .map_err(|e| errors.unavailable("creating topics", e))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StoreError::Unavailable(
                    format!("kafka: creating topic {topic}: {code}").into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_topic_in_error_or_without_partitions_is_not_usable() {
        assert!(super::usable(false, 1));
        assert!(!super::usable(true, 1));
        assert!(!super::usable(false, 0));
        assert!(!super::usable(true, 0));
    }
}
