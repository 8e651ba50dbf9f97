//! The commands on Kafka: `audit rebuild` (an audit consumer in a group of its own, until it
//! has caught up) and `kafka-dead-letters` (the dead-letter topic, read with an assigned
//! consumer: no group join, no offset commit, so the service's consumers never rebalance;
//! purged with an admin client's DeleteRecords).

use super::{Failure, KafkaDeadLetterCommand, Output, Position, store_err};
use credo_storage::kafka::{KafkaConfig, KafkaSource, source_message};
use credo_storage::pipeline::{AuditConsumer, ConsumerConfig, ConsumerStats};
use credo_storage::{AuditSink, Backend, EventSource, SourceMessage, Storage, StorageConfig};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Kafka settings of the configuration, as the service's wiring builds them.
fn kafka_config(config: &StorageConfig) -> Result<KafkaConfig, Failure> {
    let k = config.kafka.as_ref().ok_or_else(|| {
        Failure::usage(
            "configuration: no [kafka] section: set kafka.brokers (CREDO_KAFKA_BROKERS), and \
             kafka.topic / kafka.dlq_topic if the service does",
        )
    })?;
    let mut c = k.kafka_config();
    c.health_timeout = config.health_timeout();
    c.validate()
        .map_err(|e| Failure::usage(format!("configuration: {e}")))?;
    Ok(c)
}

/// A client error, scrubbed of the secret property values librdkafka may echo.
fn kafka_err(
    c: &KafkaConfig,
    doing: &str,
) -> impl Fn(rdkafka::error::KafkaError) -> Failure + use<> {
    let mut secrets: Vec<String> = c
        .properties
        .iter()
        .filter(|(k, v)| credo_storage::redact::is_secret_name(k) && !v.expose_secret().is_empty())
        .map(|(_, v)| v.expose_secret().to_owned())
        .collect();
    // Longest first: a secret containing another is scrubbed whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let (doing, brokers) = (doing.to_string(), c.brokers.clone());
    move |e| {
        Failure::failed(format!(
            "kafka: {doing}: {} (brokers {brokers}; `credo-admin readiness` checks them)",
            credo_storage::redact::scrub(&e.to_string(), &secrets)
        ))
    }
}

/// A client librdkafka refused to create: its properties (`kafka.properties`) are wrong, a
/// configuration error (exit 2).
fn client_err(
    c: &KafkaConfig,
    doing: &str,
) -> impl Fn(rdkafka::error::KafkaError) -> Failure + use<> {
    let failed = kafka_err(c, &format!("{doing} (check kafka.properties)"));
    move |e| Failure {
        code: 2,
        ..failed(e)
    }
}

// ---------------------------------------------------------------------------------------
// audit rebuild

/// Runs an [`AuditConsumer`] in group `group` over the audit topic into the configured log
/// until its lag is 0 on every assigned partition and it has handled all it read.
pub(crate) async fn audit_rebuild(
    storage: &Storage,
    config: &StorageConfig,
    group: Option<String>,
    timeout: Duration,
) -> Result<Output, Failure> {
    if config.backends.audit_sink != AuditSink::Kafka {
        return Err(Failure::usage(
            "`audit rebuild` reads the Kafka audit topic: the configuration's audit sink is \
             direct (set backends.audit_sink = \"kafka\", CREDO_BACKENDS_AUDIT_SINK=kafka, and \
             [kafka] as the service has them)",
        ));
    }
    if config.backends.audit == Backend::InMemory {
        return Err(Failure::usage(
            "`audit rebuild`: backends.audit is inmemory, so the log rebuilt would be \
             credo-admin's own and vanish when it exits (set CREDO_BACKENDS_AUDIT and the \
             backend's URL to the service's)",
        ));
    }
    let mut c = kafka_config(config)?;
    let group = group.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}.rebuild-{now}", c.group_id)
    });
    if group == c.group_id {
        return Err(Failure::usage(format!(
            "--group {group} is the service's consumer group (kafka.group_id): the rebuild \
             would take partitions from its consumers and start from their offsets; pass a new \
             name"
        )));
    }
    c.group_id = group.clone();
    // A missing topic would only show as a consumer never assigned: say so at once.
    let cc = c.clone();
    let held: i64 = tokio::task::spawn_blocking(move || {
        watermarks(&cc, &reader(&cc)?, &cc.topic, "kafka.topic")
    })
    .await
    .map_err(|e| Failure::failed(format!("kafka: reading: {e}")))??
    .iter()
    .map(|(_, low, high)| high - low)
    .sum();
    let started = Instant::now();
    let source = Arc::new(
        KafkaSource::new(&c).map_err(|e| Failure::usage(format!("configuration: kafka: {e}")))?,
    );
    let assignment = source.handle();
    let consumer = AuditConsumer::new(
        source.clone(),
        storage.audit_log.clone(),
        ConsumerConfig::default(),
    )
    .map_err(store_err("starting the audit consumer"))?;
    let counters = consumer.handle();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(consumer.run(stopped));
    eprintln!(
        "credo-admin: rebuilding the audit log from topic {} ({held} messages held) in \
         consumer group {group}",
        c.topic
    );

    let deadline = Instant::now() + timeout;
    // Stats at the previous poll, when the lag was 0 on every partition.
    let mut settled: Option<ConsumerStats> = None;
    let mut last_lag = String::from("no partition assigned yet");
    let caught_up = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if task.is_finished() {
            break false;
        }
        if !assignment.is_assigned() {
            settled = None;
        } else {
            match source.lag().await {
                Ok(lags) if !lags.is_empty() && lags.iter().all(|l| l.messages == 0) => {
                    let now = counters.stats();
                    let handled = now.materialized + now.duplicates + now.dead_lettered;
                    // Lag counts what the consumer has *read*: a batch may still be in hand.
                    // Done when nothing more was read for a whole poll and all was handled.
                    if settled == Some(now) && now.consumed == handled {
                        break true;
                    }
                    settled = Some(now);
                    last_lag = "0 messages".into();
                }
                Ok(lags) => {
                    settled = None;
                    let behind: u64 = lags.iter().map(|l| l.messages).sum();
                    last_lag = format!("{behind} messages on {} partition(s)", lags.len());
                }
                Err(e) => {
                    settled = None;
                    last_lag = format!("unknown ({e})");
                }
            }
        }
        if Instant::now() >= deadline {
            break false;
        }
    };
    stop.send_replace(true);
    let stats = match tokio::time::timeout(Duration::from_secs(30), task).await {
        Ok(Ok(stats)) => stats,
        _ => counters.stats(),
    };
    let seconds = started.elapsed().as_secs_f64();
    let json = json!({
        "topic": c.topic,
        "group": group,
        "caught_up": caught_up,
        "consumed": stats.consumed,
        "materialized": stats.materialized,
        "duplicates": stats.duplicates,
        "dead_lettered": stats.dead_lettered,
        "seconds": seconds,
    });
    let text = format!(
        "{}\nconsumed:     {}\nmaterialized: {}\nduplicates:   {}\ndead-lettered: {}\n\
         took {seconds:.1} s (group {group})\n",
        if caught_up {
            "rebuilt: caught up on every partition"
        } else {
            "NOT caught up"
        },
        stats.consumed,
        stats.materialized,
        stats.duplicates,
        stats.dead_lettered
    );
    if !caught_up {
        eprintln!(
            "credo-admin: error: the rebuild did not catch up within {} s (lag: {last_lag}); \
             what it materialized stays. Run it again with the same --group {group} to go on \
             from its offsets, with a longer --timeout-secs",
            timeout.as_secs()
        );
    }
    Ok(Output {
        json,
        text,
        ok: caught_up,
    })
}

// ---------------------------------------------------------------------------------------
// kafka-dead-letters

/// One message of the dead-letter topic, detached from its client.
struct DeadMessage(SourceMessage);

impl DeadMessage {
    fn position(&self) -> Position {
        Position {
            partition: self.0.partition,
            offset: self.0.offset,
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.0
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    fn key(&self) -> Option<String> {
        self.0
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
    }

    fn summary(&self) -> Value {
        json!({
            "partition": self.0.partition,
            "offset": self.0.offset,
            "key": self.key(),
            "reason": self.header("dlq_reason"),
            "event_id": self.header("event_id"),
            // The broker's milliseconds, as `source_message` read them.
            "timestamp_ms": self.0.timestamp.map(|t| t.as_micros() / 1000),
        })
    }
}

/// A consumer that is only ever assigned partitions: it joins no group and, with
/// `enable.auto.commit=false` (the adapter's setting), commits nothing.
fn reader(c: &KafkaConfig) -> Result<BaseConsumer, Failure> {
    let mut settings = c.consumer_config();
    settings.set("enable.auto.commit", "false");
    settings
        .create()
        .map_err(client_err(c, "creating a consumer"))
}

/// The partitions of `topic` (the setting `setting` names it) with their low and high
/// watermarks.
fn watermarks(
    c: &KafkaConfig,
    consumer: &BaseConsumer,
    topic: &str,
    setting: &str,
) -> Result<Vec<(i32, i64, i64)>, Failure> {
    let metadata = consumer
        .fetch_metadata(Some(topic), c.health_timeout)
        .map_err(kafka_err(c, "reading topic metadata"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(Failure::failed(format!(
            "kafka: no topic {topic} ({setting})"
        )));
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(Failure::failed(format!(
            "kafka: the topic {topic} ({setting}) does not exist or cannot be read{}",
            t.error().map_or(String::new(), |e| format!(
                ": {}",
                rdkafka::types::RDKafkaErrorCode::from(e)
            ))
        )));
    }
    let mut out = Vec::new();
    let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, c.health_timeout)
            .map_err(kafka_err(c, "reading a topic's offsets"))?;
        out.push((p, low, high));
    }
    Ok(out)
}

/// Reads partition `p` from `from` up to `until` (exclusive), at most `max` messages.
fn read_partition(
    c: &KafkaConfig,
    consumer: &BaseConsumer,
    p: i32,
    from: i64,
    until: i64,
    max: usize,
) -> Result<Vec<DeadMessage>, Failure> {
    let topic = c.dlq_topic.as_str();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Offset(from))
        .map_err(kafka_err(c, "assigning a partition"))?;
    consumer
        .assign(&tpl)
        .map_err(kafka_err(c, "assigning a partition"))?;
    let mut out = Vec::new();
    // Generous: a partition's fetch can wait for a slow broker, never for new messages.
    let deadline = Instant::now() + Duration::from_secs(30).max(c.health_timeout * 5);
    while out.len() < max {
        if Instant::now() >= deadline {
            return Err(Failure::failed(format!(
                "kafka: reading {topic} partition {p}: no message up to offset {until} within \
                 30 s (read {} so far)",
                out.len()
            )));
        }
        let Some(m) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = m.map_err(kafka_err(c, "reading the dead-letter topic"))?;
        let offset = m.offset();
        out.push(DeadMessage(source_message(&m)));
        if offset + 1 >= until {
            break;
        }
    }
    Ok(out)
}

/// Up to `limit` messages, partition by partition, each from its low watermark.
fn list(c: &KafkaConfig, limit: usize) -> Result<(Vec<DeadMessage>, bool), Failure> {
    let consumer = reader(c)?;
    let mut out = Vec::new();
    let mut more = false;
    for (p, low, high) in watermarks(c, &consumer, &c.dlq_topic, "kafka.dlq_topic")? {
        if high <= low {
            continue;
        }
        if out.len() >= limit {
            more = true;
            break;
        }
        let read = read_partition(c, &consumer, p, low, high, limit - out.len())?;
        more |= read.last().is_some_and(|m| m.0.offset + 1 < high);
        out.extend(read);
    }
    Ok((out, more))
}

/// The message at `at`, or (inner `Err`) why there is none; the outer `Err` is a broker
/// failure.
fn find(
    c: &KafkaConfig,
    consumer: &BaseConsumer,
    at: Position,
) -> Result<Result<DeadMessage, String>, Failure> {
    let topic = &c.dlq_topic;
    let Some((_, low, high)) = watermarks(c, consumer, topic, "kafka.dlq_topic")?
        .into_iter()
        .find(|(p, ..)| *p == at.partition)
    else {
        return Ok(Err(format!(
            "{at}: no such message: {topic} has no partition {}",
            at.partition
        )));
    };
    if low >= high {
        return Ok(Err(format!(
            "{at}: no such message: partition {} of {topic} is empty",
            at.partition
        )));
    }
    if at.offset < low || at.offset >= high {
        return Ok(Err(format!(
            "{at}: no such message: partition {} of {topic} holds offsets {low} to {} (older \
             ones are past retention)",
            at.partition,
            high - 1
        )));
    }
    let m = read_partition(c, consumer, at.partition, at.offset, high, 1)?
        .into_iter()
        .next()
        .filter(|m| m.position() == at);
    Ok(m.ok_or_else(|| format!("{at}: no such message (removed by compaction?)")))
}

/// The message at `at`; none is a failure (exit 1).
fn fetch(c: &KafkaConfig, consumer: &BaseConsumer, at: Position) -> Result<DeadMessage, Failure> {
    find(c, consumer, at)?.map_err(Failure::failed)
}

pub(crate) async fn dead_letters(
    config: &StorageConfig,
    command: &KafkaDeadLetterCommand,
) -> Result<Output, Failure> {
    let c = kafka_config(config)?;
    // librdkafka's consumer calls block: they run off the runtime's one thread.
    match command {
        KafkaDeadLetterCommand::List { limit } => {
            let limit = *limit as usize;
            let cc = c.clone();
            let (messages, more) = tokio::task::spawn_blocking(move || list(&cc, limit))
                .await
                .map_err(|e| Failure::failed(format!("kafka: reading: {e}")))??;
            let mut text = String::new();
            for m in &messages {
                let _ = writeln!(
                    text,
                    "{}  key {}  event {}\n    reason: {}",
                    m.position(),
                    m.key().unwrap_or_else(|| "-".into()),
                    m.header("event_id").unwrap_or_else(|| "-".into()),
                    m.header("dlq_reason").unwrap_or_else(|| "-".into()),
                );
            }
            if messages.is_empty() {
                let _ = writeln!(text, "no messages in {}", c.dlq_topic);
            }
            if more {
                let _ = writeln!(text, "more follow: raise --limit");
            }
            let items: Vec<Value> = messages.iter().map(DeadMessage::summary).collect();
            Ok(Output::ok(
                json!({"topic": c.dlq_topic, "messages": items, "more": more}),
                text,
            ))
        }
        KafkaDeadLetterCommand::Show { position } => {
            let (cc, at) = (c.clone(), *position);
            let m = tokio::task::spawn_blocking(move || fetch(&cc, &reader(&cc)?, at))
                .await
                .map_err(|e| Failure::failed(format!("kafka: reading: {e}")))??;
            let payload =
                m.0.payload
                    .as_deref()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
            let mut json = m.summary();
            json["topic"] = json!(c.dlq_topic);
            json["headers"] =
                m.0.headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            json!(
                                v.as_deref()
                                    .map(|v| String::from_utf8_lossy(v).into_owned())
                            ),
                        )
                    })
                    .collect::<serde_json::Map<String, Value>>()
                    .into();
            json["payload"] = json!(payload);
            let mut text = format!(
                "position:  {}\nkey:       {}\ntimestamp: {}\nheaders:\n",
                m.position(),
                m.key().unwrap_or_else(|| "-".into()),
                m.0.timestamp.map_or("-".into(), |t| t.to_rfc3339())
            );
            for (k, v) in &m.0.headers {
                let v = v
                    .as_deref()
                    .map_or("(null)".into(), |v| String::from_utf8_lossy(v).into_owned());
                let _ = writeln!(text, "  {k}: {v}");
            }
            // Pretty when it is JSON; a message set aside may well not be.
            let shown = payload.as_deref().map_or("(none)".into(), |p| {
                serde_json::from_str::<Value>(p)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or_else(|| p.to_string())
            });
            let _ = writeln!(text, "payload:\n{shown}");
            Ok(Output::ok(json, text))
        }
        KafkaDeadLetterCommand::Requeue { positions } => requeue(&c, positions).await,
        KafkaDeadLetterCommand::Purge { before, all, yes } => purge(&c, before, *all, *yes).await,
    }
}

/// Publishes each message at `positions` to the audit topic again, without its `dlq_*`
/// headers.
async fn requeue(c: &KafkaConfig, positions: &[Position]) -> Result<Output, Failure> {
    let mut wanted = positions.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let cc = c.clone();
    let found = tokio::task::spawn_blocking(move || {
        let consumer = reader(&cc)?;
        wanted
            .into_iter()
            .map(|at| Ok((at, find(&cc, &consumer, at)?)))
            .collect::<Result<Vec<_>, Failure>>()
    })
    .await
    .map_err(|e| Failure::failed(format!("kafka: reading: {e}")))??;
    let producer: FutureProducer = c
        .producer_config()
        .create()
        .map_err(client_err(c, "creating a producer"))?;
    let mut requeued = Vec::new();
    let mut missing = Vec::new();
    let mut text = String::new();
    for (at, m) in found {
        let m = match m {
            Ok(m) => m,
            Err(why) => {
                eprintln!("credo-admin: {why}; left alone");
                missing.push(at.to_string());
                continue;
            }
        };
        let mut headers = OwnedHeaders::new();
        for (key, value) in m.0.headers.iter().filter(|(k, _)| !k.starts_with("dlq_")) {
            headers = headers.insert(Header {
                key,
                value: value.as_deref(),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&c.topic).headers(headers);
        if let Some(k) = &m.0.key {
            record = record.key(k);
        }
        if let Some(p) = &m.0.payload {
            record = record.payload(p);
        }
        let (partition, offset) = producer
            .send(record, c.delivery_timeout)
            .await
            .map(|d| (d.partition, d.offset))
            .map_err(|(e, _)| kafka_err(c, "publishing to the audit topic")(e))?;
        let _ = writeln!(
            text,
            "{at} -> {} {partition}:{offset}  event {}",
            c.topic,
            m.header("event_id").unwrap_or_else(|| "-".into())
        );
        requeued.push(json!({
            "from": at.to_string(),
            "partition": partition,
            "offset": offset,
            "event_id": m.header("event_id"),
        }));
    }
    let _ = writeln!(
        text,
        "re-published {} of {} message(s) to {}",
        requeued.len(),
        positions.len(),
        c.topic
    );
    let ok = !requeued.is_empty();
    Ok(Output {
        json: json!({"topic": c.topic, "requeued": requeued, "not_found": missing}),
        text,
        ok,
    })
}

// ---------------------------------------------------------------------------------------
// kafka-dead-letters purge

/// Why DeleteRecords deleted nothing, in the classes an operator acts on differently.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PurgeRefusal {
    /// The broker closed the connection on the request, gave no answer, or does not know the
    /// API: how a broker without DeleteRecords fails (tansu closes the connection, which
    /// librdkafka reports as `Local: Broker transport failure`).
    Unsupported(RDKafkaErrorCode),
    /// The client's principal may not delete records of the topic (ACL `Delete`).
    NotAuthorized(RDKafkaErrorCode),
    /// Any other answer: the broker's code, or librdkafka's text when it has none.
    Other(String),
}

impl PurgeRefusal {
    fn from_code(code: RDKafkaErrorCode) -> Self {
        use RDKafkaErrorCode as C;
        match code {
            C::BrokerTransportFailure
            | C::UnsupportedVersion
            | C::UnsupportedFeature
            | C::InvalidRequest
            | C::OperationTimedOut
            | C::RequestTimedOut => Self::Unsupported(code),
            C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
                Self::NotAuthorized(code)
            }
            other => Self::Other(other.to_string()),
        }
    }

    /// The refusal of a whole request: an admin result's code, or the client's own error.
    fn from_error(e: &KafkaError) -> Self {
        match e {
            KafkaError::AdminOp(code) => Self::from_code(*code),
            e => e
                .rdkafka_error_code()
                .map_or_else(|| Self::Other(e.to_string()), Self::from_code),
        }
    }

    /// What failed. Neither this nor [`Self::instead`] names a broker address: the message
    /// may be pasted into tickets (`credo-admin readiness` names the brokers).
    fn what(&self) -> String {
        match self {
            Self::Unsupported(code) => format!(
                "the broker did not carry out DeleteRecords ({code}): it may not support that \
                 request (tansu does not; Apache Kafka >= 0.11 and Redpanda do)"
            ),
            Self::NotAuthorized(code) => format!("the broker refused DeleteRecords ({code})"),
            Self::Other(why) => format!("the broker refused DeleteRecords ({why})"),
        }
    }

    /// What to do instead, when there is something better to say than to retry.
    fn instead(&self, c: &KafkaConfig) -> Option<String> {
        let topic = &c.dlq_topic;
        match self {
            Self::Unsupported(_) => {
                // ensure_topics sets retention.ms from kafka.dlq_retention_ms and leaves
                // segment.ms to the broker.
                let restore = c.dlq_retention.map_or_else(
                    || {
                        "remove both overrides (`--delete-config retention.ms,segment.ms`; rpk \
                         `--delete retention.ms --delete segment.ms`)"
                            .to_string()
                    },
                    |r| {
                        format!(
                            "set retention.ms back to {} (kafka.dlq_retention_ms) and remove \
                             the segment.ms override (`--delete-config segment.ms`; rpk \
                             `--delete segment.ms`)",
                            r.as_millis()
                        )
                    },
                );
                Some(format!(
                    "Let retention empty the topic instead: lower its retention.ms for a while, \
                     and segment.ms, since only closed segments expire. Apache Kafka: \
                     `kafka-configs.sh --bootstrap-server <BROKER> --alter --entity-type topics \
                     --entity-name {topic} --add-config retention.ms=60000,segment.ms=60000`; \
                     Redpanda: `rpk topic alter-config {topic} --set retention.ms=60000 --set \
                     segment.ms=60000`. Once `credo-admin kafka-dead-letters list` shows it \
                     empty, {restore}"
                ))
            }
            Self::NotAuthorized(_) => Some(format!(
                "The client's principal needs the Delete operation on topic {topic} (Apache \
                 Kafka: `kafka-acls.sh --bootstrap-server <BROKER> --add --allow-principal \
                 <PRINCIPAL> --operation Delete --topic {topic}`)"
            )),
            Self::Other(_) => None,
        }
    }

    /// [`Self::what`], then [`Self::instead`].
    fn explain(&self, c: &KafkaConfig) -> String {
        match self.instead(c) {
            Some(instead) => format!("{}. {instead}", self.what()),
            None => self.what(),
        }
    }
}

/// One partition to cut: delete its messages below `before`; `low` and `high` are its
/// watermarks as read first.
struct Cut {
    partition: i32,
    before: i64,
    low: i64,
    high: i64,
}

/// The cuts `--before` / `--all` ask for, checked against the topic's watermarks, so that
/// nothing is deleted when any of them is wrong.
fn plan(
    c: &KafkaConfig,
    marks: &[(i32, i64, i64)],
    before: &[Position],
    all: bool,
) -> Result<Vec<Cut>, Failure> {
    let topic = &c.dlq_topic;
    if all {
        return Ok(marks
            .iter()
            .map(|&(partition, low, high)| Cut {
                partition,
                before: high,
                low,
                high,
            })
            .collect());
    }
    before
        .iter()
        .map(|at| {
            let Some(&(partition, low, high)) = marks.iter().find(|m| m.0 == at.partition) else {
                return Err(Failure::failed(format!(
                    "--before {at}: {topic} has no partition {} (it has {} partition(s), from 0); \
                     nothing was deleted",
                    at.partition,
                    marks.len()
                )));
            };
            // DeleteRecords refuses an offset past the end; say so before any partition is cut.
            if at.offset > high {
                return Err(Failure::failed(format!(
                    "--before {at}: partition {partition} of {topic} ends at offset {high} (its \
                     next message's); pass at most {partition}:{high}, or --all; nothing was \
                     deleted"
                )));
            }
            Ok(Cut {
                partition,
                before: at.offset,
                low,
                high,
            })
        })
        .collect()
}

/// What a request that deleted nothing left, read back rather than assumed: a connection
/// closed after the broker acted would have deleted some.
async fn left_behind(c: &KafkaConfig, cuts: &[Cut]) -> String {
    let cc = c.clone();
    let now = tokio::task::spawn_blocking(move || {
        watermarks(&cc, &reader(&cc)?, &cc.dlq_topic, "kafka.dlq_topic")
    })
    .await;
    let Ok(Ok(now)) = now else {
        return "whether anything was deleted is unknown: `credo-admin kafka-dead-letters list` \
                shows what the topic holds"
            .into();
    };
    let moved: Vec<String> = cuts
        .iter()
        .filter_map(|cut| {
            let low = now.iter().find(|m| m.0 == cut.partition)?.1;
            (low != cut.low).then(|| format!("partition {} now starts at {low}", cut.partition))
        })
        .collect();
    if moved.is_empty() {
        "nothing was deleted (every partition starts where it did)".into()
    } else {
        format!("some records went all the same: {}", moved.join(", "))
    }
}

/// Deletes the dead-letter topic's messages below each cut with DeleteRecords, and reports
/// each partition's new low watermark. Every cut refused: a failure (exit 1) saying what the
/// topic holds now and what to do instead; some refused: the report, exit 1.
async fn purge(
    c: &KafkaConfig,
    before: &[Position],
    all: bool,
    yes: bool,
) -> Result<Output, Failure> {
    let topic = c.dlq_topic.clone();
    // Two cuts of one partition: which would win is not for the broker to guess.
    let mut seen = BTreeSet::new();
    if let Some(twice) = before.iter().find(|at| !seen.insert(at.partition)) {
        return Err(Failure::usage(format!(
            "--before names partition {} twice: pass one <PARTITION>:<OFFSET> per partition",
            twice.partition
        )));
    }
    if !yes {
        let what = if all {
            format!("every message of every partition of {topic}")
        } else {
            let cuts: Vec<String> = before
                .iter()
                .map(|at| format!("below offset {} of partition {}", at.offset, at.partition))
                .collect();
            format!("the messages {} of {topic}", cuts.join(", "))
        };
        return Err(Failure::usage(format!(
            "this would delete {what} for good (`kafka-dead-letters list` shows them; \
             `requeue` the ones to keep first); pass --yes"
        )));
    }
    let cc = c.clone();
    let marks = tokio::task::spawn_blocking(move || {
        watermarks(&cc, &reader(&cc)?, &cc.dlq_topic, "kafka.dlq_topic")
    })
    .await
    .map_err(|e| Failure::failed(format!("kafka: reading: {e}")))??;
    let cuts = plan(c, &marks, before, all)?;

    // Only partitions with something below their cut are sent.
    let mut tpl = TopicPartitionList::new();
    for cut in cuts.iter().filter(|cut| cut.before > cut.low) {
        tpl.add_partition_offset(&topic, cut.partition, Offset::Offset(cut.before))
            .map_err(kafka_err(c, "preparing DeleteRecords"))?;
    }
    // partition -> its new low watermark, or why it was not cut.
    let mut results: Vec<(i32, Result<i64, PurgeRefusal>)> = Vec::new();
    if tpl.count() > 0 {
        let admin: AdminClient<DefaultClientContext> = c
            .admin_config()
            .create()
            .map_err(client_err(c, "creating an admin client"))?;
        let timeout = Duration::from_secs(30).max(c.health_timeout * 5);
        let options = AdminOptions::new().request_timeout(Some(timeout));
        match admin.delete_records(&tpl, &options).await {
            Ok(done) => {
                for e in done.elements() {
                    let r = match e.error() {
                        Err(e) => Err(PurgeRefusal::from_error(&e)),
                        Ok(()) => Ok(e.offset().to_raw().unwrap_or(-1)),
                    };
                    results.push((e.partition(), r));
                }
            }
            // The request as a whole: every partition sent shares its fate.
            Err(e) => {
                let why = PurgeRefusal::from_error(&e);
                for cut in cuts.iter().filter(|cut| cut.before > cut.low) {
                    results.push((cut.partition, Err(why.clone())));
                }
            }
        }
        if results.iter().all(|(_, r)| r.is_err()) {
            let mut refusals: Vec<(i32, PurgeRefusal)> = results
                .into_iter()
                .filter_map(|(p, r)| r.err().map(|why| (p, why)))
                .collect();
            refusals.sort_by_key(|(p, _)| *p);
            let left = left_behind(c, &cuts).await;
            let message = if refusals.iter().all(|(_, why)| *why == refusals[0].1) {
                let why = &refusals[0].1;
                let instead = why.instead(c).map_or(String::new(), |i| format!(". {i}"));
                format!("{}; {left}{instead}", why.what())
            } else {
                let each: Vec<String> = refusals
                    .iter()
                    .map(|(p, why)| format!("partition {p}: {}", why.explain(c)))
                    .collect();
                format!("{left}. {}", each.join("; "))
            };
            return Err(Failure::failed(format!(
                "kafka: purging {topic}: {message}"
            )));
        }
    }

    let mut text = String::new();
    let mut items = Vec::new();
    let (mut deleted, mut refused) = (0_i64, Vec::new());
    for cut in &cuts {
        let p = cut.partition;
        let mut item = json!({
            "partition": p,
            "before": cut.before,
            "low_watermark_before": cut.low,
            "high_watermark": cut.high,
        });
        match results.iter().find(|(rp, _)| *rp == p).map(|(_, r)| r) {
            // Not sent: nothing below the cut.
            None => {
                item["deleted"] = json!(0);
                item["low_watermark"] = json!(cut.low);
                let _ = writeln!(
                    text,
                    "partition {p}: nothing below offset {} (it starts at {})",
                    cut.before, cut.low
                );
            }
            Some(Ok(low)) => {
                // No offset in the answer: the partition starts at the cut.
                let low = if *low < 0 { cut.before } else { *low };
                let n = (low - cut.low).max(0);
                deleted += n;
                item["deleted"] = json!(n);
                item["low_watermark"] = json!(low);
                let _ = writeln!(
                    text,
                    "partition {p}: deleted {n} message(s) below offset {}; it now starts at \
                     {low}",
                    cut.before
                );
            }
            Some(Err(why)) => {
                let why = why.explain(c);
                eprintln!("credo-admin: error: partition {p} of {topic}: {why}");
                item["deleted"] = json!(0);
                item["error"] = json!(why);
                let _ = writeln!(text, "partition {p}: NOT purged (the error is on stderr)");
                refused.push(p);
            }
        }
        items.push(item);
    }
    let _ = writeln!(
        text,
        "deleted {deleted} message(s) from {topic}{}",
        if refused.is_empty() {
            String::new()
        } else {
            format!("; {} partition(s) refused", refused.len())
        }
    );
    Ok(Output {
        json: json!({
            "topic": topic,
            "deleted": deleted,
            "partitions": items,
            "refused": refused,
        }),
        text,
        // Nothing below any cut is not a failure: purging an emptied topic again is a no-op.
        ok: refused.is_empty(),
    })
}
