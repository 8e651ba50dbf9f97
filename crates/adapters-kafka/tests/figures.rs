//! Throughput and enqueue-to-materialized latency of the Kafka audit pipeline, printed for the
//! record (their own test binary, so no other test shares the two cores while they run).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Figures for the closing note (no timing assertion: speed belongs to the benchmarks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_throughput_and_latency_figures() {
    let Some(p) = Pipeline::start("figures").await else {
        return;
    };
    let p = Arc::new(p);
    let (_consumer, consuming) = p.consumer().await;
    let sink = p.sink();
    let relay = run_relay(p.relay(sink.clone(), Duration::from_secs(30)));

    // Steady 1,000 events/s: a 1 s warm-up (connections, producer id), then 10 s measured
    // for the enqueue-to-materialized latency.
    const WARM_UP: usize = 1_000;
    p.record(0, WARM_UP, Some(1_000)).await;
    p.record(WARM_UP, WARM_UP + EVENTS, Some(1_000)).await;
    p.wait_materialized(WARM_UP + EVENTS, Duration::from_secs(60))
        .await;
    let (mut total, mut to_broker, mut to_log) = (Vec::new(), Vec::new(), Vec::new());
    {
        let (arrivals, acked) = (p.log.arrivals.lock(), sink.acked_at.lock());
        for (id, _, at) in p.recorded.lock().iter().skip(WARM_UP) {
            let (published, written) = (acked[id], arrivals.1[id]);
            total.push(written.saturating_duration_since(*at));
            to_broker.push(published.saturating_duration_since(*at));
            to_log.push(written.saturating_duration_since(published));
        }
    }
    let pct = |v: &mut Vec<Duration>| {
        v.sort();
        let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
        format!(
            "p50 {:.1?} p95 {:.1?} p99 {:.1?}",
            at(0.5),
            at(0.95),
            at(0.99)
        )
    };
    let latency = format!(
        "enqueue->materialized {}; enqueue->acknowledged by the broker {}; \
         acknowledged->materialized {}",
        pct(&mut total),
        pct(&mut to_broker),
        pct(&mut to_log)
    );

    // Throughput: 20,000 events pre-filled in the outbox, relayed and materialized.
    let steady = relay.stop().await;
    let before = WARM_UP + EVENTS;
    p.record(before, before + 2 * EVENTS, None).await;
    let started = Instant::now();
    let relay = run_relay(p.relay(sink.clone(), Duration::from_secs(30)));
    p.wait_materialized(before + 2 * EVENTS, Duration::from_secs(120))
        .await;
    let took = started.elapsed();
    relay.stop().await;
    let stats = consuming.stop().await;
    p.assert_exact().await;
    println!(
        "steady 1,000 events/s x {EVENTS}: {latency}; outbox of {} drained to the log in \
         {took:.2?} = {:.0} events/s end to end; relay during the steady phase {steady:?}; \
         consumer {stats:?}",
        EVENTS * 2,
        (EVENTS * 2) as f64 / took.as_secs_f64(),
    );
    p.finish().await;
}
