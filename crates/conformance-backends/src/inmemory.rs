use async_trait::async_trait;
use credo_adapters_inmemory::{InMemoryConfig, InMemoryStores};
use credo_conformance::harness::{Harness, Port, Stores, Support};
use credo_ports::ManualClock;
use std::sync::Arc;
use std::time::Duration;

/// The embedded in-memory backend: always available, every port.
pub struct InMemoryHarness;

/// The settings the suite runs with: the rate limiter's idle-key sweep (a memory safety net,
/// tested on its own in the adapter) never runs during a case, so purges count exactly what
/// the model counts.
pub fn config() -> InMemoryConfig {
    InMemoryConfig {
        rate_limit_sweep_interval: Duration::from_secs(100 * 366 * 86_400),
    }
}

/// Wraps a set of in-memory stores (possibly a mutant) as [`Stores`].
pub fn stores(clock: Arc<ManualClock>, m: InMemoryStores) -> Stores {
    Stores {
        clock,
        users: Some(m.users()),
        sessions: Some(m.sessions()),
        consents: Some(m.consents()),
        audit: Some(m.audit()),
        audit_log: Some(m.audit_log()),
        outbox: Some(m.outbox()),
        sink: Some(credo_conformance::harness::direct_sinks()),
        raw_outbox: Some({
            let outbox = m.outbox_inner();
            Arc::new(move |message| {
                outbox.enqueue_raw(message);
                Box::pin(async { Ok(()) })
            })
        }),
        outbox_faults: Some({
            let outbox = m.outbox_inner();
            Arc::new(move |on| {
                outbox.fail_writes(on);
                Box::pin(async { Ok(()) })
            })
        }),
        rate_limits: Some(m.rate_limits()),
        job_leases: Some(m.leases()),
        lease: None,
    }
}

#[async_trait]
impl Harness for InMemoryHarness {
    fn name(&self) -> &'static str {
        "inmemory"
    }

    async fn available(&self) -> Result<(), String> {
        Ok(())
    }

    fn supports(&self, port: Port) -> Support {
        credo_adapters_inmemory::CAPABILITIES.supports(port)
    }

    async fn fresh(&self, clock: Arc<ManualClock>) -> Result<Stores, String> {
        Ok(stores(
            clock.clone(),
            InMemoryStores::with_config(clock, config()),
        ))
    }
}
