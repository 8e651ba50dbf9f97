//! Model-based property testing: random operation sequences applied to the reference model and
//! to the backend, every result compared.

use crate::harness::Stores;
use crate::model::ModelStores;
use crate::support::{Ctx, drain, eq, without_id};
use credo_ports::StoreResult;
use futures_util::future::BoxFuture;
use proptest::prelude::prop_oneof;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use std::fmt::Debug;
use std::sync::Arc;

/// The backend's stores and the model's, on one shared clock, and the state `X` a property
/// keeps for the length of one generated sequence (see [`check_with`]).
pub struct Pair<X = ()> {
    /// The backend under test.
    pub backend: Stores,
    /// The reference model.
    pub model: Stores,
    /// The property's own state, built from the fresh stores (e.g. recording sinks).
    pub state: X,
    /// The last claim each side handed out (model, backend), for the operations that act on
    /// claimed rows (ack, release, reject).
    pub claims: parking_lot::Mutex<Option<(credo_ports::Claim, credo_ports::Claim)>>,
}

impl Pair {
    /// Fresh backend stores plus a fresh model reading the same clock.
    pub async fn fresh(ctx: &Ctx) -> Result<Pair, String> {
        let backend = ctx.fresh().await?;
        let model = model_stores(backend.clock.clone());
        Ok(Pair {
            backend,
            model,
            state: (),
            claims: parking_lot::Mutex::new(None),
        })
    }

    fn with<X>(self, state: X) -> Pair<X> {
        Pair {
            backend: self.backend,
            model: self.model,
            state,
            claims: self.claims,
        }
    }
}

/// The reference model as a set of [`Stores`].
pub fn model_stores(clock: Arc<credo_ports::ManualClock>) -> Stores {
    let m = ModelStores::new(clock.clone());
    Stores {
        clock,
        users: Some(m.users()),
        sessions: Some(m.sessions()),
        consents: Some(m.consents()),
        audit: Some(m.audit()),
        audit_log: Some(m.audit_log()),
        outbox: Some(m.outbox()),
        sink: Some(m.sinks()),
        raw_outbox: Some({
            let m = m.clone();
            Arc::new(move |message| {
                m.enqueue_raw(message);
                Box::pin(async { Ok(()) })
            })
        }),
        outbox_faults: None,
        rate_limits: Some(m.rate_limits()),
        job_leases: None,
        lease: None,
    }
}

/// Compares a model result with a backend result: values must be equal, errors must be the
/// same variant (messages may differ).
pub fn same<T: PartialEq + Debug>(
    what: impl Debug,
    model: StoreResult<T>,
    backend: StoreResult<T>,
) -> Result<(), String> {
    match (&model, &backend) {
        (Ok(m), Ok(b)) if m == b => Ok(()),
        (Err(m), Err(b)) if m.kind() == b.kind() => Ok(()),
        _ => Err(format!(
            "{what:?}: model returned {model:?}, backend returned {backend:?}"
        )),
    }
}

/// Walks a listing page by page on both sides (model and backend each fed the model's cursor),
/// comparing every page, until the last page or 50 pages.
pub(crate) async fn same_pages<T, FM, FB>(
    what: impl Debug,
    limit: usize,
    model: impl Fn(credo_ports::PageRequest) -> FM,
    backend: impl Fn(credo_ports::PageRequest) -> FB,
) -> Result<(), String>
where
    T: PartialEq + Debug + Clone,
    FM: std::future::Future<Output = StoreResult<credo_ports::Page<T>>>,
    FB: std::future::Future<Output = StoreResult<credo_ports::Page<T>>>,
{
    let mut after = None;
    for _ in 0..50 {
        let page = credo_ports::PageRequest { after, limit };
        let mp = model(page).await;
        same(&what, mp.clone(), backend(page).await)?;
        match mp {
            Ok(pg) if pg.next.is_some() => after = pg.next,
            _ => return Ok(()),
        }
    }
    Err(format!("{what:?}: listing did not end after 50 pages"))
}

/// Operation sequences: mostly short (1 to 39 operations), one in eight long (100 to 249), so
/// that state builds up as in a service that has run for a while.
pub(crate) fn sequence<Op: Clone + Debug, S: Strategy<Value = Op>>(
    op: fn() -> S,
) -> impl Strategy<Value = Vec<Op>> {
    prop_oneof![
        7 => proptest::collection::vec(op(), 1..40),
        1 => proptest::collection::vec(op(), 100..250),
    ]
}

/// Where the ids of drained events come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ids {
    /// The stores generated them: each side's must be UUIDv7, in recording order; the
    /// events are then compared without them.
    Generated,
    /// The caller gave them: compared as they are.
    Given,
}

/// Drains the outbox of both sides and compares the events published.
pub(crate) async fn same_drained_events(p: &Pair, what: &str, ids: Ids) -> Result<(), String> {
    let me = drain(&p.model).await?;
    let be = drain(&p.backend).await?;
    if ids == Ids::Given {
        return eq(what, be, me);
    }
    time_ordered_v7(&format!("{what} (model)"), &me)?;
    time_ordered_v7(&format!("{what} (backend)"), &be)?;
    let strip = |v: Vec<credo_ports::AuditEvent>| v.into_iter().map(without_id).collect::<Vec<_>>();
    eq(what, strip(be), strip(me))
}

/// Store-generated event ids are UUIDv7 (RFC 9562: version 7, variant 10) and strictly
/// increasing in recording order, so they sort by creation time (DESIGN §5).
pub(crate) fn time_ordered_v7(
    what: &str,
    events: &[credo_ports::AuditEvent],
) -> Result<(), String> {
    let mut last: Option<u128> = None;
    for e in events {
        let n = e.id.as_uuid().as_u128();
        let version = (n >> 76) & 0xF;
        let variant = (n >> 62) & 0b11;
        if version != 7 || variant != 0b10 {
            return Err(format!(
                "{what}: event id {} is not a UUIDv7 (version {version}, variant {variant:#b})",
                e.id
            ));
        }
        if last.is_some_and(|l| l >= n) {
            return Err(format!(
                "{what}: event id {} does not sort after the one recorded before it",
                e.id
            ));
        }
        last = Some(n);
    }
    Ok(())
}

/// Applies one operation to both sides of a pair; `Err` is the first divergence.
pub type Step<Op, X = ()> = for<'a> fn(&'a Pair<X>, &'a Op) -> BoxFuture<'a, Result<(), String>>;

/// Runs a property: operation sequences from `strategy()` are generated, each applied step by
/// step to a fresh pair by `apply`, which returns `Err` on the first divergence. Failures
/// shrink to a minimal sequence and (unless disabled) are saved to
/// `proptest-regressions/<file>.txt` and replayed first on every later run.
pub async fn check<Op, S>(
    ctx: &Ctx,
    file: &'static str,
    strategy: fn() -> S,
    apply: Step<Op>,
) -> Result<(), String>
where
    Op: Debug + Clone + Send + Sync + 'static,
    S: Strategy<Value = Vec<Op>> + 'static,
{
    check_with(ctx, file, strategy, |_| Ok(()), apply).await
}

/// [`check`] for a property with state of its own: `init` builds it from each sequence's
/// fresh pair, and `apply` finds it in [`Pair::state`].
pub async fn check_with<Op, S, X>(
    ctx: &Ctx,
    file: &'static str,
    strategy: fn() -> S,
    init: fn(&Pair) -> Result<X, String>,
    apply: Step<Op, X>,
) -> Result<(), String>
where
    Op: Debug + Clone + Send + Sync + 'static,
    S: Strategy<Value = Vec<Op>> + 'static,
    X: Send + Sync + 'static,
{
    let ctx = ctx.clone();
    let handle = tokio::runtime::Handle::current();
    let path: &'static str = Box::leak(
        format!(
            "{}/proptest-regressions/{file}.txt",
            env!("CARGO_MANIFEST_DIR")
        )
        .into_boxed_str(),
    );
    let config = Config {
        cases: ctx.options.proptest_cases,
        failure_persistence: if ctx.options.persist_failures {
            Some(Box::new(FileFailurePersistence::Direct(path)))
        } else {
            None
        },
        max_shrink_iters: 2048,
        ..Config::default()
    };
    let outcome = tokio::task::spawn_blocking(move || {
        // Built on this thread: boxed strategies are neither Send nor Sync.
        let strategy = strategy();
        let mut runner = TestRunner::new(config);
        runner.run(&strategy, |ops| {
            handle.block_on(async {
                let pair = Pair::fresh(&ctx).await.map_err(TestCaseError::fail)?;
                let state = init(&pair).map_err(TestCaseError::fail)?;
                let pair = pair.with(state);
                for (step, op) in ops.iter().enumerate() {
                    apply(&pair, op)
                        .await
                        .map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
                }
                Ok(())
            })
        })
    })
    .await
    .map_err(|e| format!("property runner crashed: {e}"))?;
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, ops)) => Err(format!("{why}\nminimal failing sequence: {ops:#?}")),
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
    }
}
