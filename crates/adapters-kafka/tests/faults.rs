//! The audit pipeline (PostgreSQL outbox → relay → Kafka → consumer → PostgreSQL) under faults,
//! with at least 10,000 events each, plus its throughput and latency figures.
//!
//! Each test runs a private tansu broker whose advertised address is a fault-injecting TCP
//! proxy, so every client connection goes through the proxy and can be cut. (tansu from the
//! PyPI wheel keeps topics in memory, so broker outages are simulated by the proxy, never by a
//! restart.) Needs `CREDO_TEST_POSTGRES_URL` and `CREDO_TEST_TANSU_BIN`, both exported by
//! `cargo xtask services env`.

mod support;

use async_trait::async_trait;
use credo_ports::{Delivery, EncodedEvent, EventSink, StoreResult};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;
use tokio::sync::Notify;

// --- the tests ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_the_broker_path_mid_stream_loses_and_duplicates_nothing() {
    let Some(p) = Pipeline::start("cut").await else {
        return;
    };
    let p = Arc::new(p);
    let (consumer, consuming) = p.consumer().await;
    let sink = p.sink();
    let relay = run_relay(p.relay(sink.clone(), Duration::from_secs(30)));

    p.record(0, EVENTS / 2, None).await;
    p.wait_materialized(EVENTS / 10, Duration::from_secs(60))
        .await;
    p.broker.proxy.cut();
    let cut_at = Instant::now();
    // The outbox accumulates while the path is cut.
    p.record(EVENTS / 2, EVENTS, None).await;
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(cut_at.elapsed())).await;
    let depth_during_cut = p.pg.outbox().depth().await.unwrap();
    let written_during_cut = p.log.written.load(Ordering::SeqCst);
    p.broker.proxy.restore();
    let restored_at = Instant::now();
    p.wait_materialized(EVENTS, Duration::from_secs(120)).await;
    let recovered_in = restored_at.elapsed();
    let relay_stats = relay.stop().await;
    let stats = consuming.stop().await;
    drop(consumer);
    let materialized = p.assert_exact().await;
    println!(
        "proxy cut for 5 s: recorded {EVENTS}, outbox depth during the cut {depth_during_cut}, \
         materialized before the path returned {written_during_cut}, relay failures \
         {failures}, published {published} (acknowledged), duplicates absorbed {dups}, \
         materialized {materialized}, all materialized {recovered_in:.2?} after the path returned, \
         producer rebuilds {rebuilds}",
        failures = relay_stats.failures,
        published = sink.published.load(Ordering::Relaxed),
        dups = stats.duplicates,
        rebuilds = sink.inner.rebuilds(),
    );
    assert!(depth_during_cut > 0, "the outbox did not accumulate");
    assert!(
        relay_stats.failures > 0,
        "the relay never failed: the cut did not bite"
    );
    assert_eq!(stats.materialized, EVENTS as u64, "{stats:?}");
    p.finish().await;
}

/// A sink that publishes its first batch and then never returns, like a relay process that
/// dies after the broker acknowledged the batch and before it acked the outbox rows.
struct DiesAfterPublish {
    inner: Arc<CountingSink>,
    published_batches: AtomicUsize,
    died: Notify,
    batches_before_death: usize,
}

#[async_trait]
impl EventSink for DiesAfterPublish {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let deliveries = self.inner.publish(batch).await?;
        if self.published_batches.fetch_add(1, Ordering::SeqCst) + 1 >= self.batches_before_death {
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(deliveries)
    }

    fn delivery_timeout(&self) -> Option<Duration> {
        self.inner.delivery_timeout()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_after_publish_before_ack_is_absorbed_by_the_consumer() {
    let Some(p) = Pipeline::start("relaykill").await else {
        return;
    };
    let p = Arc::new(p);
    let (consumer, consuming) = p.consumer().await;
    p.record(0, EVENTS, None).await;
    let counting = p.sink();
    let dying = Arc::new(DiesAfterPublish {
        inner: counting.clone(),
        published_batches: AtomicUsize::new(0),
        died: Notify::new(),
        batches_before_death: 1,
    });
    // Just longer than the 3 s delivery timeout, so the orphaned batch comes back soon.
    let lease = Duration::from_secs(4);
    let first = run_relay(p.relay(dying.clone(), lease));
    dying.died.notified().await;
    first.kill().await; // mid-batch: published, not acked
    let orphaned = counting.published.load(Ordering::Relaxed);
    let second = run_relay(p.relay(counting.clone(), lease));
    p.wait_materialized(EVENTS, Duration::from_secs(120)).await;
    // The orphaned batch comes back after its lease and is published again.
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.pg.outbox().depth().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "outbox never emptied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = counting.published.load(Ordering::Relaxed);
    // Let the consumer handle the republished batch.
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.stats().consumed < sent {
        assert!(
            Instant::now() < deadline,
            "consumer never read the republished batch"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.stop().await;
    let stats = consuming.stop().await;
    let materialized = p.assert_exact().await;
    println!(
        "relay killed after publishing {orphaned} events, before acking them: recorded \
         {EVENTS}, published {sent}, duplicates absorbed {dups}, materialized {materialized}",
        dups = stats.duplicates,
    );
    assert!(orphaned > 0);
    assert_eq!(
        sent,
        EVENTS as u64 + orphaned,
        "the orphaned batch is published twice"
    );
    assert_eq!(stats.duplicates, orphaned, "{stats:?}");
    assert_eq!(stats.materialized, EVENTS as u64, "{stats:?}");
    p.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_after_write_before_commit_duplicates_nothing() {
    let Some(p) = Pipeline::start("consumerkill").await else {
        return;
    };
    let p = Arc::new(p);
    p.record(0, EVENTS, None).await;
    let sink = p.sink();
    let drained = p
        .relay(sink.clone(), Duration::from_secs(30))
        .drain()
        .await
        .unwrap();
    assert_eq!(drained, EVENTS as u64);

    p.log
        .hang_after_events
        .store(EVENTS * 2 / 5, Ordering::SeqCst);
    let (first, first_running) = p.consumer().await;
    tokio::time::timeout(Duration::from_secs(120), p.log.hung.notified())
        .await
        .expect("the first consumer wrote 40 % of the events");
    first_running.kill().await; // written, offsets not committed
    let first_stats = first.stats();
    drop(first);
    let written_by_first = p.log.written.load(Ordering::SeqCst);

    let (second, second_running) = p.consumer().await;
    p.wait_materialized(EVENTS, Duration::from_secs(120)).await;
    let second_stats = second_running.stop().await;
    drop(second);
    let materialized = p.assert_exact().await;
    println!(
        "consumer killed after writing and before committing: recorded {EVENTS}, published \
         {published}, first consumer wrote {written_by_first}, second consumer re-read \
         {reread} and absorbed {dups} duplicates, materialized {materialized}",
        published = sink.published.load(Ordering::Relaxed),
        reread = second_stats.consumed,
        dups = second_stats.duplicates,
    );
    // The batch in hand when the first consumer died was written but not committed: the
    // second one reads it again and the log absorbs every copy.
    let uncommitted = written_by_first as u64 - first_stats.materialized;
    assert!(
        uncommitted > 0,
        "the first consumer died with no batch in hand"
    );
    assert_eq!(second_stats.duplicates, uncommitted, "{second_stats:?}");
    assert_eq!(
        written_by_first as u64 + second_stats.materialized,
        EVENTS as u64
    );
    p.finish().await;
}
