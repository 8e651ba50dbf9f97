//! A `Storage` dropped without `shutdown()` takes its background tasks with it: the relay stops
//! promptly and does not spin on its closed stop signal.

use credo_storage::{Clock, Storage, StorageConfig, SystemClock, Timestamp};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The system clock, counting how often it is read (every relay pass reads it).
#[derive(Debug, Default)]
struct CountingClock(AtomicU64);

impl Clock for CountingClock {
    fn now(&self) -> Timestamp {
        self.0.fetch_add(1, Ordering::SeqCst);
        SystemClock.now()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_storage_stops_the_relay_without_a_busy_loop() {
    let clock = Arc::new(CountingClock::default());
    let storage = Storage::connect_with_clock(&StorageConfig::default(), clock.clone())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = clock.0.load(Ordering::SeqCst);
    assert!(running > 0, "the relay never ran");
    drop(storage);
    // A pass in hand finishes; then nothing reads the clock any more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let settled = clock.0.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        clock.0.load(Ordering::SeqCst),
        settled,
        "something still runs after the drop (clock reads: {running} while running)"
    );
}
