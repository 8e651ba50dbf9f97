//! Every case of the suite, grouped by port. Each case builds fresh stores from the harness,
//! so cases never see each other's data.

mod audit;
mod consents;
mod edges;
mod histories;
mod outbox;
mod pipeline;
mod rate_limits;
mod sessions;
mod text;
mod users;

use crate::harness::{Port, Stores};
use crate::runner::Ctx;
use credo_ports::{
    AuditEvent, ConsentId, Delivery, EncodedEvent, EventId, SessionId, TenantId, UserId,
};
use futures_util::future::BoxFuture;
use std::fmt::Debug;
use std::time::Duration;
use uuid::Uuid;

/// A case: a port, a name, and the test.
#[derive(Clone, Copy)]
pub struct Case {
    /// Port the case belongs to.
    pub port: Port,
    /// Name in the report.
    pub name: &'static str,
    /// The test; `Err` is a failure with its reason.
    pub run: fn(Ctx) -> BoxFuture<'static, Result<(), String>>,
    /// Whether the case also holds when the stores read real time (it never moves the clock
    /// by hand, waits with [`Ctx::wait`], and bounds elapsed time instead of assuming none).
    pub real_time: bool,
}

/// `cases![Port::X; a, b]`: cases that move the injected clock; `cases![real_time Port::X;
/// a, b]`: cases that also run where the stores read real time.
macro_rules! cases {
    ($port:expr; $($f:ident),* $(,)?) => {
        cases!(@ false; $port; $($f),*)
    };
    (real_time $port:expr; $($f:ident),* $(,)?) => {
        cases!(@ true; $port; $($f),*)
    };
    (@ $rt:expr; $port:expr; $($f:ident),*) => {
        vec![$($crate::cases::Case {
            port: $port,
            name: stringify!($f),
            run: |ctx| Box::pin(async move { $f(&ctx).await }),
            real_time: $rt,
        }),*]
    };
}
pub(crate) use cases;

/// Every case, in report order.
pub fn all() -> Vec<Case> {
    let mut v = users::cases();
    v.extend(sessions::cases());
    v.extend(consents::cases());
    v.extend(audit::cases());
    v.extend(outbox::cases());
    v.extend(rate_limits::cases());
    v.extend(text::cases());
    v.extend(pipeline::cases());
    v.extend(edges::cases());
    v.extend(histories::cases());
    v.sort_by_key(|c| c.port);
    v
}

/// Spawns `n` tasks released together by a barrier (so they really contend) and returns their
/// results in task order.
pub(crate) async fn race<T, Fut>(n: usize, task: impl Fn(usize) -> Fut) -> Result<Vec<T>, String>
where
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, work) = (barrier.clone(), task(i));
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.map_err(|e| format!("task failed: {e}"))?);
    }
    Ok(out)
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

/// The i-th of a fixed set of tenants (stable across model and backend).
pub(crate) fn tenant(i: u8) -> TenantId {
    TenantId::from_uuid(Uuid::from_u128(
        0x7e7a_0000_0000_4000_8000_0000_0000_0000 | u128::from(i),
    ))
}

/// The i-th of a fixed set of user ids.
pub(crate) fn user_id(i: u8) -> UserId {
    UserId::from_uuid(Uuid::from_u128(
        0x0515_0000_0000_4000_8000_0000_0000_0000 | u128::from(i),
    ))
}

/// The i-th of a fixed set of session ids.
pub(crate) fn session_id(i: u8) -> SessionId {
    SessionId::from_uuid(Uuid::from_u128(
        0x5e55_0000_0000_4000_8000_0000_0000_0000 | u128::from(i),
    ))
}

/// The i-th of a fixed set of consent ids.
pub(crate) fn consent_id(i: u8) -> ConsentId {
    ConsentId::from_uuid(Uuid::from_u128(
        0xc025_0000_0000_4000_8000_0000_0000_0000 | u128::from(i),
    ))
}

/// The i-th of a fixed set of event ids (UUIDv7-shaped, time-ordered by `i`), for `i` below
/// 4,096 (higher bits would overlap the version nibble).
pub(crate) fn event_id(i: u16) -> EventId {
    EventId::from_uuid(Uuid::from_u128(
        0x0190_0000_0000_7000_8000_0000_0000_0000 | (u128::from(i) << 64),
    ))
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
