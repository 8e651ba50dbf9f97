//! Runs every case of the suite against one backend and reports each outcome.

use crate::cases::{self, Case};
use crate::harness::{Harness, Support};
use crate::report::{CaseReport, Outcome};
pub use crate::support::{Ctx, RunOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the suite (or the cases matching `options.filter`) against `harness`.
///
/// Must be called inside a multi-threaded Tokio runtime: the concurrency cases need real
/// parallelism and the property tests block a worker of their own.
pub async fn run_suite(harness: Arc<dyn Harness>, options: RunOptions) -> Vec<CaseReport> {
    let filter = options.filter.clone();
    let suite = Suite::new(harness, options).await;
    let mut out = Vec::new();
    for case in cases::all() {
        let full = format!("{}/{}", case.port, case.name);
        if filter.as_ref().is_some_and(|f| !full.contains(f.as_str())) {
            continue;
        }
        out.push(suite.run(&case).await);
    }
    out
}

/// Why `case` does not apply to `harness` (the port is not served, or the case moves the
/// injected clock and this column reads the server's time); `None` when it applies. Needs no
/// server.
pub fn not_applicable(harness: &dyn Harness, case: &Case) -> Option<String> {
    if let Support::No(why) = harness.supports(case.port) {
        return Some(why.to_string());
    }
    if harness.reads_real_time() && !case.real_time {
        return Some("moves the injected clock; this column reads the server's time".into());
    }
    None
}

/// The suite against one backend, one case at a time: what [`run_suite`] loops over, and what
/// a test harness with one trial per case drives (`credo-conformance-backends`'
/// `tests/conformance.rs`). Whether the backend can be reached is checked once, here.
pub struct Suite {
    ctx: Ctx,
    available: Result<(), String>,
}

impl Suite {
    /// The suite against `harness` (the filter of `options` is not applied here).
    pub async fn new(harness: Arc<dyn Harness>, options: RunOptions) -> Self {
        let available = harness.available().await;
        Self {
            ctx: Ctx { harness, options },
            available,
        }
    }

    /// Runs `case` and reports it: n/a, skipped (the backend cannot be reached), pass or fail.
    pub async fn run(&self, case: &Case) -> CaseReport {
        let report = |outcome, reason: Option<String>, took: Duration| CaseReport {
            backend: self.ctx.harness.name().to_string(),
            port: case.port,
            case: case.name.to_string(),
            outcome,
            reason,
            duration_ms: took.as_millis() as u64,
        };
        if let Some(why) = not_applicable(self.ctx.harness.as_ref(), case) {
            return report(Outcome::NotApplicable, Some(why), Duration::ZERO);
        }
        if let Err(why) = &self.available {
            return report(Outcome::Skipped, Some(why.clone()), Duration::ZERO);
        }
        let started = Instant::now();
        let timeout = self.ctx.options.case_timeout;
        let mut result = run_one(case, self.ctx.clone(), timeout).await;
        if result.is_ok() {
            result = self.ctx.harness.after_case().await;
        }
        let took = started.elapsed();
        match result {
            Ok(()) => report(Outcome::Pass, None, took),
            Err(why) => report(Outcome::Fail, Some(why), took),
        }
    }
}

async fn run_one(case: &Case, ctx: Ctx, timeout: Duration) -> Result<(), String> {
    let task = tokio::spawn((case.run)(ctx));
    match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(format!("timed out after {timeout:?}")),
        Ok(Err(join)) if join.is_panic() => {
            let p = join.into_panic();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            Err(format!("panicked: {msg}"))
        }
        Ok(Err(join)) => Err(format!("task failed: {join}")),
        Ok(Ok(r)) => r,
    }
}
