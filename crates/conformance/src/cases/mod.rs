//! Every case of the suite, grouped by port. Each case builds fresh stores from the harness,
//! so cases never see each other's data.

mod audit;
mod consents;
mod edges;
mod histories;
mod maintenance;
mod outbox;
mod pipeline;
mod rate_limits;
mod sessions;
mod text;
mod users;

use crate::harness::Port;
use crate::support::Ctx;
pub(crate) use crate::support::{drain, ensure, eq, err_kind, ok, without_id};
use credo_ports::{ConsentId, EventId, SessionId, TenantId, UserId};
use futures_util::future::BoxFuture;
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
    v.extend(maintenance::cases());
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
