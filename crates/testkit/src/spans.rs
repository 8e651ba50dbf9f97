//! The `tracing` spans a piece of code opens, with their fields, for tests of what a trace
//! shows (and of what it must never show).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span: its name, the name of its parent span (if any), and every field recorded on it,
/// as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpanRecord {
    /// The span's name, e.g. `credo.store`.
    pub name: String,
    /// The name of the span it was opened in.
    pub parent: Option<String>,
    /// Field name → value as `Display`/`Debug` wrote it.
    pub fields: BTreeMap<String, String>,
}

impl SpanRecord {
    /// The value of `field`, if recorded.
    #[must_use]
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
}

/// Every span at any level opened in the process from [`CapturedSpans::install`] on, across
/// all threads, with its fields as last recorded (kept when it closes). Tests share one
/// process-wide subscriber, so each picks its own spans out by a value only it used (a trace
/// id, a tenant).
///
/// ```
/// let spans = credo_testkit::CapturedSpans::install();
/// tracing::info_span!("work", tenant = "t-42").in_scope(|| {});
/// let seen = spans.named("work");
/// assert!(seen.iter().any(|s| s.field("tenant") == Some("t-42")));
/// ```
#[derive(Clone)]
pub struct CapturedSpans {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

impl CapturedSpans {
    /// Installs the capture as the process's subscriber on first use, and returns it.
    ///
    /// # Panics
    /// When the process already has another global `tracing` subscriber.
    #[must_use]
    pub fn install() -> Self {
        static ONE: OnceLock<CapturedSpans> = OnceLock::new();
        ONE.get_or_init(|| {
            let capture = CapturedSpans {
                spans: Arc::new(Mutex::new(Vec::new())),
            };
            let subscriber = tracing_subscriber::registry().with(Recorder(capture.clone()));
            tracing::subscriber::set_global_default(subscriber)
                .expect("CapturedSpans needs to be the process's tracing subscriber");
            capture
        })
        .clone()
    }

    /// Every span seen so far (open ones with the fields recorded until now).
    #[must_use]
    pub fn all(&self) -> Vec<SpanRecord> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans called `name`.
    #[must_use]
    pub fn named(&self, name: &str) -> Vec<SpanRecord> {
        self.all().into_iter().filter(|s| s.name == name).collect()
    }
}

/// Where in the list a live span's record is.
struct Slot(usize);

struct Recorder(CapturedSpans);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl<S> Layer<S> for Recorder
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.name().to_string());
        let mut spans = self.0.spans.lock().unwrap();
        spans.push(SpanRecord {
            name: attrs.metadata().name().to_string(),
            parent,
            fields,
        });
        let slot = spans.len() - 1;
        drop(spans);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(slot));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(slot) = span.extensions().get::<Slot>().map(|s| s.0) else {
            return;
        };
        let mut spans = self.0.spans.lock().unwrap();
        values.record(&mut Fields(&mut spans[slot].fields));
    }
}
