//! The model's relay-facing [`Outbox`] over `World::outbox`: claims, leases, acks,
//! releases, rejections, dead letters and the purge.

use super::order_key;
use crate::model::{Inner, OutboxRow, page_of, remove_up_to, rules};
use credo_ports::outbox::{Claim, ClaimToken, DeadLetter, Disposition};
use credo_ports::{
    Cursor, EventId, Outbox, OutboxRecord, Page, PageRequest, StoreError, StoreResult, Timestamp,
};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// The relay-facing side of the outbox.
pub(crate) struct ModelOutbox(pub(crate) Arc<Inner>);

/// A dead letter's position: `(enqueued_at, id)`.
fn dead_position(d: &DeadLetter) -> Cursor {
    Cursor {
        at: d.enqueued_at,
        id: d.message.id.0,
    }
}

impl ModelOutbox {
    /// Runs `f` on the pending row `id` if claim `token` holds it.
    fn with_held<T>(
        &self,
        token: ClaimToken,
        id: EventId,
        f: impl FnOnce(&mut OutboxRow) -> T,
    ) -> Option<T> {
        let mut w = self.0.world.lock();
        w.outbox
            .iter_mut()
            .find(|r| r.message.id == id && r.pending() && r.token == Some(token))
            .map(f)
    }
}

#[async_trait::async_trait]
impl Outbox for ModelOutbox {
    async fn claim(&self, batch: usize, lease: Duration) -> StoreResult<Claim> {
        let now = self.0.now();
        if batch == 0 {
            return Err(StoreError::invalid("batch", "must be at least 1"));
        }
        if lease.is_zero() {
            return Err(StoreError::invalid("lease", "must be longer than zero"));
        }
        let token = ClaimToken::new();
        let mut w = self.0.world.lock();
        let mut pending: Vec<OutboxRow> =
            w.outbox.iter().filter(|r| r.pending()).cloned().collect();
        pending.sort_by_key(|r| r.seq);
        // Keys with a pending row under a live claim or waiting for its retry: none of their
        // rows is handed out, and none takes a place in the batch (a dead relay's claim must
        // not stall other keys).
        let held: Vec<_> = pending
            .iter()
            .filter(|r| r.claimed_until.is_some_and(|c| c > now))
            .map(|r| order_key(&r.message))
            .collect();
        // Candidates: the oldest `batch` pending rows no live claim holds, of keys not held.
        let candidates: Vec<u64> = pending
            .iter()
            .filter(|r| r.claimed_until.is_none_or(|c| c <= now))
            .filter(|r| !held.contains(&order_key(&r.message)))
            .take(batch)
            .map(|r| r.seq)
            .collect();
        // Handed out: candidates with no earlier pending row of their key outside the candidates.
        let eligible: Vec<u64> = candidates
            .iter()
            .copied()
            .filter(|&seq| {
                let row = pending.iter().find(|r| r.seq == seq).unwrap();
                let key = order_key(&row.message);
                !pending.iter().any(|o| {
                    o.seq < seq && order_key(&o.message) == key && !candidates.contains(&o.seq)
                })
            })
            .collect();
        let mut records = Vec::new();
        for seq in eligible {
            let r = w.outbox.iter_mut().find(|r| r.seq == seq).unwrap();
            r.claimed_until = Some(now.saturating_add(lease));
            r.token = Some(token);
            r.attempts += 1;
            records.push(OutboxRecord {
                message: r.message.clone(),
                enqueued_at: r.enqueued_at,
                attempts: r.attempts,
                failures: r.failures,
            });
        }
        Ok(Claim { token, records })
    }

    async fn ack(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let now = self.0.now();
        let mut n = 0;
        for id in ids {
            let acked = self.with_held(token, *id, |r| {
                r.published_at = Some(now);
                r.claimed_until = None;
                r.token = None;
            });
            n += u64::from(acked.is_some());
        }
        Ok(n)
    }

    async fn release(&self, token: ClaimToken, ids: &[EventId]) -> StoreResult<u64> {
        let mut n = 0;
        for id in ids {
            let released = self.with_held(token, *id, |r| {
                r.claimed_until = None;
                r.token = None;
            });
            n += u64::from(released.is_some());
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
        let now = self.0.now();
        let rejected = self.with_held(token, id, |r| {
            r.token = None;
            r.failures += 1;
            r.last_error = Some(reason.to_string());
            match then {
                Disposition::RetryAfter(d) => r.claimed_until = Some(now.saturating_add(d)),
                Disposition::SetAside => {
                    r.claimed_until = None;
                    r.dead_at = Some(now);
                }
            }
        });
        Ok(rejected.is_some())
    }

    async fn depth(&self) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.outbox.iter().filter(|r| r.pending()).count() as u64)
    }

    async fn oldest_pending_age(&self) -> StoreResult<Option<Duration>> {
        let now = self.0.now();
        let w = self.0.world.lock();
        Ok(w.outbox
            .iter()
            .filter(|r| r.pending())
            .map(|r| r.enqueued_at)
            .min()
            .map(|oldest| now.duration_since(oldest)))
    }

    async fn dead_letters(&self, page: PageRequest) -> StoreResult<Page<DeadLetter>> {
        rules::page(&page)?;
        let w = self.0.world.lock();
        let mut dead: Vec<DeadLetter> = w
            .outbox
            .iter()
            .filter_map(|r| {
                Some(DeadLetter {
                    message: r.message.clone(),
                    enqueued_at: r.enqueued_at,
                    failed_at: r.dead_at?,
                    failures: r.failures,
                    reason: r.last_error.clone().unwrap_or_default(),
                })
            })
            .filter(|d| page.after.is_none_or(|after| dead_position(d) > after))
            .collect();
        dead.sort_by_key(dead_position);
        Ok(page_of(dead, page.limit, dead_position))
    }

    async fn dead_letter_count(&self) -> StoreResult<u64> {
        let w = self.0.world.lock();
        Ok(w.outbox.iter().filter(|r| r.dead_at.is_some()).count() as u64)
    }

    async fn requeue(&self, ids: &[EventId]) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let mut n = 0;
        for r in w.outbox.iter_mut() {
            if ids.contains(&r.message.id) && r.dead_at.is_some() {
                r.dead_at = None;
                r.failures = 0;
                r.last_error = None;
                r.claimed_until = None;
                r.token = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn purge_dead_letters(&self, ids: &[EventId]) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        let before = w.outbox.len();
        w.outbox
            .retain(|r| !(ids.contains(&r.message.id) && r.dead_at.is_some()));
        Ok((before - w.outbox.len()) as u64)
    }

    async fn purge_published(&self, before: Timestamp, limit: NonZeroU32) -> StoreResult<u64> {
        let mut w = self.0.world.lock();
        Ok(remove_up_to(&mut w.outbox, limit, |r| {
            r.published_at.is_some_and(|p| p < before)
        }))
    }
}
