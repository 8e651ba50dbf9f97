//! What the runner, the property machinery and the cases share: the context a case gets,
//! and the helpers that judge results. A leaf: it uses only the harness and ports, so no
//! module of the suite depends on another in a circle.

use crate::harness::{Harness, Stores};
use credo_ports::{AuditEvent, Delivery, EncodedEvent, EventId};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How the suite runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Generated sequences per property test (`PROPTEST_CASES`, default 256).
    pub proptest_cases: u32,
    /// Whether property-test failures are saved to `proptest-regressions/` (off for mutants).
    pub persist_failures: bool,
    /// Run only cases whose `port/name` contains this text.
    pub filter: Option<String>,
    /// Bound on one case; a case still running then fails.
    pub case_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        let proptest_cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        Self {
            proptest_cases,
            persist_failures: true,
            filter: None,
            case_timeout: Duration::from_secs(300),
        }
    }
}

/// What a case gets: the backend and the run options. Cases build their own fresh stores.
#[derive(Clone)]
pub struct Ctx {
    /// The backend under test.
    pub harness: Arc<dyn Harness>,
    /// Run options.
    pub options: RunOptions,
}

impl Ctx {
    /// Fresh, isolated stores with the clock at [`Stores::START`].
    pub async fn fresh(&self) -> Result<Stores, String> {
        self.harness.fresh(Stores::new_clock()).await
    }

    /// Lets `d` pass for the stores: the injected clock moves, or (where the stores read real
    /// time) the case sleeps.
    pub async fn wait(&self, stores: &Stores, d: std::time::Duration) {
        if self.harness.reads_real_time() {
            tokio::time::sleep(d).await;
        } else {
            stores.clock.advance(d);
        }
    }
}

/// Fails with `msg` unless `cond`.
pub(crate) fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// Fails unless `a == b`.
pub(crate) fn eq<T: PartialEq + Debug>(what: &str, a: T, b: T) -> Result<(), String> {
    ensure(a == b, || format!("{what}: expected {b:?}, got {a:?}"))
}

/// Fails unless `r` is an error of variant `kind`.
pub(crate) fn err_kind<T: Debug>(
    what: &str,
    r: credo_ports::StoreResult<T>,
    kind: &str,
) -> Result<(), String> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        other => Err(format!("{what}: expected {kind}, got {other:?}")),
    }
}

/// Maps a store error into a case failure.
pub(crate) fn ok<T>(what: &str, r: credo_ports::StoreResult<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: unexpected error {e:?}"))
}

/// Claims, publishes and acks until the outbox is empty, every message required to be
/// published. Returns the events published, decoded, in order.
pub(crate) async fn drain(s: &Stores) -> Result<Vec<AuditEvent>, String> {
    let outbox = s.outbox()?;
    let sink = s.sink()?;
    let mut all = Vec::new();
    loop {
        let claim = ok("claim", outbox.claim(100, Duration::from_secs(30)).await)?;
        if claim.records.is_empty() {
            break;
        }
        let messages: Vec<EncodedEvent> = claim.records.into_iter().map(|r| r.message).collect();
        let deliveries = ok("publish", sink.publish(&messages).await)?;
        ensure(deliveries.iter().all(|d| *d == Delivery::Published), || {
            format!("every event published, got {deliveries:?}")
        })?;
        let ids: Vec<EventId> = messages.iter().map(|m| m.id).collect();
        ok("ack", outbox.ack(claim.token, &ids).await)?;
        for m in messages {
            all.push(m.decode()?);
        }
    }
    Ok(all)
}

/// An audit event with its generated id blanked, for comparing events recorded by stores
/// (whose ids are fresh UUIDv7s) across model and backend.
pub(crate) fn without_id(mut e: AuditEvent) -> AuditEvent {
    e.id = EventId::from_uuid(Uuid::nil());
    e
}
