//! The audit pipeline: user and consent mutations and `record` go to the outbox in the same
//! step as the change; relays move them to the sink; the log ends up holding exactly the
//! events recorded, once each, each subject's events in the order they were recorded, however
//! many relays run; a row the sink cannot take is set aside without holding up the others.
//!
//! This file holds the list of cases and the helpers they share (relay set-up, reading the
//! log, recorded events); the doubles, the model-based property, the fault cases and the
//! concurrency cases live in files of their own.

mod concurrency;
mod doubles;
mod faults;
mod properties;

use concurrency::{
    concurrent_relays_publish_each_event_once, three_relays_keep_each_subject_in_order,
};
use faults::{
    a_poison_row_is_set_aside_and_holds_up_nothing, a_requeued_dead_letter_is_relayed,
    failed_publish_releases_the_batch, relay_crash_after_publish_is_absorbed,
};
use properties::model_based_pipeline;

use super::{cases, event_id, ok, tenant, user_id};
use crate::harness::{Port, Stores};
use credo_pipeline::{Backoff, OutboxRelay, RelayConfig};
use credo_ports::{AuditCategory, AuditEvent, AuditQuery, EventId, EventSink, PageRequest, UserId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Pipeline;
        model_based_pipeline,
        relay_crash_after_publish_is_absorbed,
        failed_publish_releases_the_batch,
        concurrent_relays_publish_each_event_once,
        three_relays_keep_each_subject_in_order,
        a_poison_row_is_set_aside_and_holds_up_nothing,
        a_requeued_dead_letter_is_relayed,
    ]
}

/// Longer than any sink's delivery timeout (the Kafka lane's: 30 s to the broker, 30 s to settle).
const LEASE: Duration = Duration::from_secs(90);

fn relay_config(batch: usize) -> RelayConfig {
    let mut c = RelayConfig::default();
    c.batch = batch;
    c.lease = LEASE;
    c.backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
    c.max_failures = 3;
    c
}

fn relay(s: &Stores, sink: Arc<dyn EventSink>, batch: usize) -> Result<OutboxRelay, String> {
    OutboxRelay::new(s.outbox()?, sink, relay_config(batch)).map_err(|e| e.to_string())
}

/// Every materialized event of the first three tenants, in log order.
async fn log(s: &Stores) -> Result<Vec<AuditEvent>, String> {
    let audit = s.audit_log()?;
    let mut all = Vec::new();
    for t in 0..3 {
        let mut after = None;
        loop {
            let page = ok(
                "query",
                audit
                    .query(
                        tenant(t),
                        AuditQuery::default(),
                        PageRequest { after, limit: 1000 },
                    )
                    .await,
            )?;
            all.extend(page.items);
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    Ok(all)
}

/// Per subject, the order in which `ids` name its events.
fn per_subject(
    ids: &[EventId],
    subject: &HashMap<EventId, UserId>,
) -> HashMap<UserId, Vec<EventId>> {
    let mut out: HashMap<UserId, Vec<EventId>> = HashMap::new();
    for id in ids {
        if let Some(s) = subject.get(id) {
            out.entry(*s).or_default().push(*id);
        }
    }
    out
}

fn recorded_event(i: u16, t: u8) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant(t),
        Stores::START,
        AuditCategory::Security,
        "auth.login_failed",
    );
    // One id space per tenant: recording another tenant's id is a conflict (see
    // `audit/event_ids_deduplicate_per_tenant`); re-recording one's own is idempotent.
    e.id = event_id(i + 100 * u16::from(t));
    e.subject_user_id = Some(user_id((i % 3) as u8));
    e
}
