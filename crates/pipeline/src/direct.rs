//! The sink of deployments without Kafka: decode, then write straight into the audit log.

use async_trait::async_trait;
use credo_ports::{AuditEvent, AuditLog, Delivery, EncodedEvent, EventSink, StoreResult};
use std::collections::HashMap;
use std::sync::Arc;

/// Publishing materializes the batch into an [`AuditLog`] with its idempotent `append_batch`.
/// This is where a direct deployment decodes events (once). A message that cannot be decoded,
/// or that the log refuses, is `Rejected`; later messages of its order key are `Held`.
pub struct DirectSink {
    log: Arc<dyn AuditLog>,
}

impl DirectSink {
    /// A sink writing into `log`.
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }
}

#[async_trait]
impl EventSink for DirectSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let mut out = vec![Delivery::Published; batch.len()];
        // Per order key, the index of its first rejected message: later ones are held back.
        let mut stopped_at = HashMap::new();
        let mut at: Vec<usize> = Vec::with_capacity(batch.len());
        let mut events: Vec<AuditEvent> = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            if stopped_at.contains_key(&m.order_key()) {
                out[i] = Delivery::Held;
                continue;
            }
            match m.decode() {
                Ok(e) => {
                    at.push(i);
                    events.push(e);
                }
                Err(reason) => {
                    out[i] = Delivery::Rejected(reason);
                    stopped_at.insert(m.order_key(), i);
                }
            }
        }
        match self.log.append_batch(&events).await {
            Ok(_) => return Ok(out),
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        // Refused as a batch: write one by one, in order, so only the refused ones are rejected.
        for (&i, e) in at.iter().zip(&events) {
            let key = batch[i].order_key();
            if stopped_at.get(&key).is_some_and(|&at| at < i) {
                out[i] = Delivery::Held;
                continue;
            }
            match self.log.append_batch(std::slice::from_ref(e)).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    out[i] = Delivery::Rejected(format!("refused by the audit log: {e}"));
                    let at = stopped_at.entry(key).or_insert(i);
                    *at = (*at).min(i);
                }
            }
        }
        Ok(out)
    }
}
