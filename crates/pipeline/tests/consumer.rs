//! `AuditConsumer` over an in-memory source: one decode per message, what cannot be
//! materialized is set aside, offsets are committed only after the write, and the loop ends
//! when its owner is gone.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_pipeline::{AuditConsumer, ConsumerConfig};
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, Clock, EncodedEvent, EventSource, PartitionLag,
    SourceMessage, StoreResult, SystemClock, TenantId, Timestamp,
};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
struct MemorySource {
    queue: Mutex<VecDeque<SourceMessage>>,
    reads: AtomicU64,
    dead: Mutex<Vec<(i64, String)>>,
    committed: Mutex<Vec<i64>>,
}

impl MemorySource {
    fn push(&self, payload: &[u8]) {
        let mut q = self.queue.lock();
        let offset = q.len() as i64 + self.committed.lock().len() as i64;
        q.push_back(SourceMessage {
            partition: 0,
            offset,
            key: None,
            headers: Vec::new(),
            payload: Some(payload.to_vec()),
            // Produced a minute ago.
            timestamp: Some(SystemClock.now().saturating_sub(Duration::from_secs(60))),
        });
    }
}

#[async_trait]
impl EventSource for MemorySource {
    async fn next_batch(
        &self,
        max: usize,
        _idle: Duration,
        _wait: Duration,
    ) -> StoreResult<Vec<SourceMessage>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let batch: Vec<_> = {
            let mut q = self.queue.lock();
            let n = q.len().min(max);
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            // Like a broker poll that found nothing.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(batch)
    }
    async fn dead_letter(&self, m: &SourceMessage, reason: &str) -> StoreResult<()> {
        self.dead.lock().push((m.offset, reason.to_string()));
        Ok(())
    }
    async fn commit(&self, batch: &[SourceMessage]) -> StoreResult<()> {
        self.committed.lock().extend(batch.iter().map(|m| m.offset));
        Ok(())
    }
    async fn lag(&self) -> StoreResult<Vec<PartitionLag>> {
        Ok(vec![PartitionLag {
            partition: 0,
            messages: self.queue.lock().len() as u64,
        }])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materializes_sets_aside_commits_and_ends_with_its_owner() {
    let log = InMemoryStores::new(Arc::new(SystemClock)).audit_log();
    let source = Arc::new(MemorySource::default());
    let tenant = TenantId::new();
    let good = AuditEvent::new(
        tenant,
        Timestamp::from_secs(1_800_000_000),
        AuditCategory::Security,
        "auth.login_failed",
    );
    let mut invalid = good.clone();
    invalid.id = credo_ports::EventId::new();
    invalid.action = "Not An Action".into();
    source.push(EncodedEvent::encode(&good).payload.as_bytes());
    source.push(b"not json");
    source.push(EncodedEvent::encode(&invalid).payload.as_bytes());
    source.push(EncodedEvent::encode(&good).payload.as_bytes()); // a redelivery

    let consumer =
        AuditConsumer::new(source.clone(), log.clone(), ConsumerConfig::default()).unwrap();
    let handle = consumer.handle();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(consumer.run(stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while source.committed.lock().len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "not handled");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = handle.stats();
    assert_eq!(
        (
            stats.consumed,
            stats.materialized,
            stats.duplicates,
            stats.dead_lettered
        ),
        (4, 1, 1, 2),
        "{stats:?}"
    );
    let dead = source.dead.lock().clone();
    assert_eq!(dead.len(), 2);
    assert!(dead[0].1.starts_with("not an audit envelope"), "{dead:?}");
    assert!(dead[1].1.contains("rejected by the audit log"), "{dead:?}");
    assert_eq!(log.count(tenant, AuditQuery::default()).await.unwrap(), 1);

    // The owner goes away without saying stop: the loop ends, and stops reading.
    let reads = source.reads.load(Ordering::SeqCst);
    drop(stop);
    tokio::time::timeout(Duration::from_millis(500), task)
        .await
        .expect("the consumer outlived its owner")
        .unwrap();
    let at_stop = source.reads.load(Ordering::SeqCst);
    assert!(at_stop <= reads + 1, "reads {reads} -> {at_stop}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(source.reads.load(Ordering::SeqCst), at_stop);
}

#[test]
fn the_consumer_reports_lag_per_partition_and_its_last_pass() {
    use credo_ports::telemetry;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let lag_before_reading = metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(async {
                let log = InMemoryStores::new(Arc::new(SystemClock)).audit_log();
                let source = Arc::new(MemorySource::default());
                let e = AuditEvent::new(
                    TenantId::new(),
                    Timestamp::from_secs(1_800_000_000),
                    AuditCategory::Security,
                    "auth.login_failed",
                );
                for _ in 0..3 {
                    source.push(EncodedEvent::encode(&e).payload.as_bytes());
                }
                let consumer =
                    AuditConsumer::new(source.clone(), log, ConsumerConfig::default()).unwrap();
                // The first sample sees the 3 unread messages.
                consumer.sample_lag().await;
                let before = snapshotter.snapshot().into_vec();
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(consumer.run(stopped));
                while source.committed.lock().len() < 3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                stop.send(true).unwrap();
                task.await.unwrap();
                before
            })
    });
    // A snapshot resets what it reads: read each once, into name -> (labels, value).
    let read = |snapshot: Vec<(metrics_util::CompositeKey, _, _, DebugValue)>| {
        snapshot
            .into_iter()
            .map(|(k, _, _, v)| {
                let labels: Vec<String> = k
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                (k.key().name().to_string(), (labels, v))
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let before = read(lag_before_reading);
    let (labels, lag) = &before[telemetry::CONSUMER_LAG_MESSAGES];
    assert_eq!(labels, &["partition=0"]);
    assert_eq!(lag, &DebugValue::Gauge(3.0.into()));
    let after = read(snapshotter.snapshot().into_vec());
    match &after[telemetry::CONSUMER_LAG_SECONDS] {
        (labels, DebugValue::Gauge(s)) => {
            assert_eq!(labels, &["partition=0"]);
            assert!((59.0..120.0).contains(&s.into_inner()), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    match &after[telemetry::CONSUMER_LAST_PASS] {
        (_, DebugValue::Gauge(t)) => assert!(t.into_inner() > 1.7e9, "{t:?}"),
        other => panic!("{other:?}"),
    }
}
