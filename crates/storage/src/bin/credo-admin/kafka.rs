//! The commands on Kafka: `audit rebuild` (an audit consumer in a group of its own, until it
//! has caught up) and `kafka-dead-letters` (the dead-letter topic, read with an assigned
//! consumer: no group join, no offset commit, so the service's consumers never rebalance).

use super::{Failure, KafkaDeadLetterCommand, Output, Position, store_err};
use credo_storage::kafka::{KafkaConfig, KafkaSource, source_message};
use credo_storage::pipeline::{AuditConsumer, ConsumerConfig, ConsumerStats};
use credo_storage::{AuditSink, Backend, EventSource, SourceMessage, Storage, StorageConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};
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
        .filter(|(k, v)| credo_storage::redact::is_secret_name(k) && !v.is_empty())
        .map(|(_, v)| v.clone())
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
