use async_trait::async_trait;
use credo_ports::{
    AuditEvent, Clock, EventId, Outbox, OutboxRecord, StoreError, StoreResult, Timestamp,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

struct Row {
    event: AuditEvent,
    enqueued_at: Timestamp,
    held_until: Option<Timestamp>,
    published_at: Option<Timestamp>,
    attempts: u32,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<EventId, u64>,
    pending: BTreeSet<u64>,
}

/// The in-memory outbox. Stores enqueue into it while they still hold the lock of the record
/// they change, so no reader ever sees a change without its event.
pub struct InMemoryOutbox {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

impl InMemoryOutbox {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(State::default()),
        }
    }

    /// Enqueues `event` unless a row with its id exists already (idempotent record).
    pub(crate) fn enqueue(&self, event: AuditEvent) {
        let now = self.clock.now();
        let mut s = self.state.lock();
        if s.by_id.contains_key(&event.id) {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.by_id.insert(event.id, seq);
        s.pending.insert(seq);
        let row = Row {
            event,
            enqueued_at: now,
            held_until: None,
            published_at: None,
            attempts: 0,
        };
        s.rows.insert(seq, row);
    }
}

#[async_trait]
impl Outbox for InMemoryOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Vec<OutboxRecord>> {
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let now = self.clock.now();
        let until = now.saturating_add(lease);
        let mut s = self.state.lock();
        let State { rows, pending, .. } = &mut *s;
        let mut out = Vec::with_capacity(batch.min(pending.len()));
        for seq in pending.iter() {
            if out.len() == batch {
                break;
            }
            let row = rows.get_mut(seq).expect("pending row exists");
            if row.held_until.is_some_and(|h| h > now) {
                continue;
            }
            row.held_until = Some(until);
            row.attempts += 1;
            out.push(OutboxRecord {
                event: row.event.clone(),
                enqueued_at: row.enqueued_at,
                attempts: row.attempts,
            });
        }
        Ok(out)
    }

    async fn ack(&self, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            let Some(&seq) = s.by_id.get(id) else {
                continue;
            };
            if s.pending.remove(&seq) {
                let row = s.rows.get_mut(&seq).expect("indexed row exists");
                row.published_at = Some(now);
                row.held_until = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release(&self, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            let Some(&seq) = s.by_id.get(id) else {
                continue;
            };
            if !s.pending.contains(&seq) {
                continue;
            }
            let row = s.rows.get_mut(&seq).expect("indexed row exists");
            if row.held_until.is_some_and(|h| h > now) {
                row.held_until = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn depth(&self) -> StoreResult<u64> {
        Ok(self.state.lock().pending.len() as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.clock.now();
        let s = self.state.lock();
        let oldest = s.pending.iter().map(|seq| s.rows[seq].enqueued_at).min();
        Ok(oldest.map(|t| now.duration_since(t)))
    }

    async fn purge_published(&self, before: Timestamp) -> StoreResult<u64> {
        let mut s = self.state.lock();
        let doomed: Vec<(u64, EventId)> = s
            .rows
            .iter()
            .filter(|(_, r)| r.published_at.is_some_and(|p| p < before))
            .map(|(seq, r)| (*seq, r.event.id))
            .collect();
        for (seq, id) in &doomed {
            s.rows.remove(seq);
            s.by_id.remove(id);
        }
        Ok(doomed.len() as u64)
    }
}
