//! The model's sink: decodes and appends one message at a time into a log, holding back the
//! rest of a key after a rejection.

use super::order_key;
use credo_ports::{AuditLog, Delivery, EncodedEvent, EventSink, StoreError, StoreResult, envelope};
use std::sync::Arc;

/// A sink that decodes and appends one message at a time into a log.
pub(crate) struct ModelSink(pub(crate) Arc<dyn AuditLog>);

#[async_trait::async_trait]
impl EventSink for ModelSink {
    async fn publish(&self, batch: &[EncodedEvent]) -> StoreResult<Vec<Delivery>> {
        let mut out = Vec::with_capacity(batch.len());
        let mut stopped = Vec::new();
        for m in batch {
            if stopped.contains(&order_key(m)) {
                out.push(Delivery::Held);
                continue;
            }
            let event = envelope::decode(Some(m.payload.as_bytes()));
            let written = match event {
                Err(reason) => Err(reason),
                Ok(e) if e.id != m.id || e.tenant_id != m.tenant_id => {
                    Err("payload and row disagree".to_string())
                }
                Ok(e) => match self.0.append_batch(&[e]).await {
                    // Unavailable is the one retryable error: the whole batch is in doubt.
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    other => other.map(|_| ()).map_err(|e| e.to_string()),
                },
            };
            match written {
                Ok(()) => out.push(Delivery::Published),
                Err(reason) => {
                    stopped.push(order_key(m));
                    out.push(Delivery::Rejected(reason));
                }
            }
        }
        Ok(out)
    }
}
