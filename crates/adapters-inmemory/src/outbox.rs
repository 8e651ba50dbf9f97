use crate::mutants::Switch;
use async_trait::async_trait;
use credo_ports::outbox::{Claim, ClaimToken, DeadLetter, Disposition};
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    AuditEvent, Clock, EncodedEvent, EventId, Outbox, OutboxRecord, StoreError, StoreResult,
    TenantId, Timestamp, UserId,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

struct Row {
    message: EncodedEvent,
    enqueued_at: Timestamp,
    /// Held (by `token`, or by nobody while a rejected row waits for its retry) until then.
    held_until: Option<Timestamp>,
    token: Option<ClaimToken>,
    published_at: Option<Timestamp>,
    /// When it was set aside.
    dead_at: Option<Timestamp>,
    /// The last rejection's reason.
    last_error: Option<String>,
    attempts: u32,
    failures: u32,
}

#[derive(Default)]
struct State {
    next_seq: u64,
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<EventId, u64>,
    /// Neither published nor set aside.
    pending: BTreeSet<u64>,
    /// Set aside.
    dead: BTreeSet<u64>,
    /// Pending rows that were claimed since they were last settled: a superset of those held
    /// now (a lease that ran out stays here until the row is settled), so a claim finds the
    /// held keys without walking every pending row.
    holds: BTreeSet<u64>,
}

impl State {
    /// The pending row `id` while `token` holds it.
    fn held_by(
        &mut self,
        token: ClaimToken,
        id: &EventId,
        mutant: Switch,
    ) -> Option<(u64, &mut Row)> {
        let seq = *self.by_id.get(id)?;
        if !self.pending.contains(&seq) {
            return None;
        }
        let row = self.rows.get_mut(&seq).expect("indexed row exists");
        mutant
            .may_settle(row.token == Some(token), row.held_until.is_some())
            .then_some((seq, row))
    }
}

/// The in-memory outbox. Stores enqueue into it while they still hold the lock of the record
/// they change, so no reader ever sees a change without its event. Leases are measured on the
/// store clock (the only clock of a single process).
pub struct InMemoryOutbox {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    mutant: Switch,
    /// Set by `fail_writes` (feature `test-support`): every write fails, as a full disk or a lost
    /// database would make it fail.
    failing: AtomicBool,
}

impl InMemoryOutbox {
    pub(crate) fn len(&self) -> usize {
        self.state.lock().rows.len()
    }

    pub(crate) fn new(clock: Arc<dyn Clock>, mutant: Switch) -> Self {
        Self {
            clock,
            state: Mutex::new(State::default()),
            mutant,
            failing: AtomicBool::new(false),
        }
    }

    /// Encodes `events` (once, here) and enqueues them, all or none, skipping ids already
    /// enqueued. Stores call it after every check and before they write their change, under
    /// the record's lock: if it fails, nothing of the change is written.
    pub(crate) fn enqueue(&self, events: impl IntoIterator<Item = AuditEvent>) -> StoreResult<()> {
        let messages: Vec<EncodedEvent> = events
            .into_iter()
            .map(|e| EncodedEvent::encode(&e))
            .collect();
        if messages.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        for m in messages {
            // A fresh UUIDv7 of the store's own is never another tenant's.
            let _ = self.insert(m);
        }
        Ok(())
    }

    fn check_writable(&self) -> StoreResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "outbox writes are failing (injected fault)".into(),
            ));
        }
        Ok(())
    }

    /// While `on`, every write into the outbox fails with `Unavailable`, and so does every
    /// change that would record an event. For the conformance case that proves a change and
    /// its event are written together or not at all. Only with the `test-support` feature.
    #[cfg(feature = "test-support")]
    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Enqueues an event given by a caller (`record`): idempotent for an id this tenant
    /// enqueued already, `Conflict` for an id another tenant's row holds.
    pub(crate) fn enqueue_recorded(&self, event: AuditEvent) -> StoreResult<()> {
        self.check_writable()?;
        self.insert(EncodedEvent::encode(&event))
    }

    fn insert(&self, message: EncodedEvent) -> StoreResult<()> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        if let Some(seq) = s.by_id.get(&message.id) {
            if s.rows[seq].message.tenant_id != message.tenant_id {
                return Err(StoreError::Conflict(format!(
                    "event id {} is in the outbox for another tenant",
                    message.id
                )));
            }
            return Ok(());
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.by_id.insert(message.id, seq);
        s.pending.insert(seq);
        let row = Row {
            message,
            enqueued_at: now,
            held_until: None,
            token: None,
            published_at: None,
            dead_at: None,
            last_error: None,
            attempts: 0,
            failures: 0,
        };
        s.rows.insert(seq, row);
        Ok(())
    }

    /// Enqueues a message as given, as another program (an older or newer version, or damage)
    /// could have left it. For tests of the pipeline's handling of such rows. Only with the
    /// `test-support` feature.
    #[cfg(feature = "test-support")]
    pub fn enqueue_raw(&self, message: EncodedEvent) {
        let _ = self.insert(message);
    }
}

#[async_trait]
impl Outbox for InMemoryOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim> {
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let now = self.clock.now();
        let token = ClaimToken::new();
        let until = now.saturating_add(lease);
        let mut s = self.state.lock();
        let State {
            rows,
            pending,
            holds,
            ..
        } = &mut *s;
        // Keys with a row under a live claim or waiting for its retry: none of their rows is
        // handed out, and none takes a place in the batch, so a dead relay's claim stalls
        // only its own keys.
        let blocked: HashSet<(TenantId, Option<UserId>)> = holds
            .iter()
            .filter_map(|seq| rows.get(seq))
            .filter(|row| row.held_until.is_some_and(|h| h > now))
            .map(|row| row.message.order_key())
            .collect();
        // Walk pending rows in order until `batch` unheld rows of unblocked keys are taken.
        let mut candidates = 0;
        let mut records = Vec::new();
        for seq in pending.iter() {
            if candidates == batch {
                break;
            }
            let row = rows.get_mut(seq).expect("pending row exists");
            if row.held_until.is_some_and(|h| h > now) {
                continue;
            }
            let key_blocked = blocked.contains(&row.message.order_key());
            let handed_out = !self.mutant.holds_back(key_blocked);
            if self.mutant.takes_a_place(handed_out, key_blocked) {
                candidates += 1;
            }
            if !handed_out {
                continue;
            }
            holds.insert(*seq);
            row.held_until = Some(until);
            row.token = Some(token);
            row.attempts += 1;
            records.push(OutboxRecord {
                message: row.message.clone(),
                enqueued_at: row.enqueued_at,
                attempts: row.attempts,
                failures: row.failures,
            });
        }
        Ok(Claim { token, records })
    }

    async fn ack(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            if let Some((seq, row)) = s.held_by(token, id, self.mutant) {
                row.published_at = Some(now);
                row.held_until = None;
                row.token = None;
                s.pending.remove(&seq);
                s.holds.remove(&seq);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            if let Some((seq, row)) = s.held_by(token, id, self.mutant) {
                row.held_until = None;
                row.token = None;
                s.holds.remove(&seq);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn reject(
        &self,
        token: ClaimToken,
        id: EventId,
        reason: &str,
        then: Disposition,
    ) -> StoreResult<bool> {
        let now = self.clock.now();
        let mut s = self.state.lock();
        let Some((seq, row)) = s.held_by(token, &id, self.mutant) else {
            return Ok(false);
        };
        row.failures = row.failures.saturating_add(1);
        row.token = None;
        row.last_error = Some(reason.to_string());
        match self.mutant.disposition(then) {
            Disposition::RetryAfter(delay) => row.held_until = Some(now.saturating_add(delay)),
            Disposition::SetAside => {
                row.held_until = None;
                row.dead_at = Some(now);
                s.pending.remove(&seq);
                s.holds.remove(&seq);
                s.dead.insert(seq);
            }
        }
        Ok(true)
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

    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>> {
        page.validate()?;
        let s = self.state.lock();
        let mut dead: Vec<DeadLetter> = s
            .dead
            .iter()
            .map(|seq| &s.rows[seq])
            .filter_map(|r| {
                Some(DeadLetter {
                    message: r.message.clone(),
                    enqueued_at: r.enqueued_at,
                    failed_at: r.dead_at?,
                    failures: r.failures,
                    reason: r.last_error.clone().unwrap_or_default(),
                })
            })
            .filter(|d| page.after.is_none_or(|after| d.cursor() > after))
            .collect();
        dead.sort_by_key(DeadLetter::cursor);
        dead.truncate(page.limit + 1);
        Ok(Page::from_overfetch(dead, page.limit, DeadLetter::cursor))
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        let s = self.state.lock();
        Ok(s.dead.len() as u64)
    }

    async fn requeue(&self, ids: &[EventId]) -> StoreResult<u64> {
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            let Some(&seq) = s.by_id.get(id) else {
                continue;
            };
            let row = s.rows.get_mut(&seq).expect("indexed row exists");
            if row.dead_at.take().is_some() {
                row.failures = 0;
                row.last_error = None;
                s.pending.insert(seq);
                s.dead.remove(&seq);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge_dead_letters(&self, ids: &[EventId]) -> StoreResult<u64> {
        let mut s = self.state.lock();
        let mut n = 0;
        for id in ids {
            let Some(&seq) = s.by_id.get(id) else {
                continue;
            };
            if s.dead.remove(&seq) {
                s.rows.remove(&seq);
                s.by_id.remove(id);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge_published(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64> {
        let mut s = self.state.lock();
        let doomed: Vec<(u64, EventId)> = s
            .rows
            .iter()
            .filter(|(_, r)| r.published_at.is_some_and(|p| p < before))
            .map(|(seq, r)| (*seq, r.message.id))
            .take(limit.get() as usize)
            .collect();
        for (seq, id) in &doomed {
            s.rows.remove(seq);
            s.by_id.remove(id);
        }
        Ok(doomed.len() as u64)
    }
}
