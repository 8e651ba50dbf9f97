//! `DirectSink`: the one decode of a direct deployment, per-message outcomes, and order keys
//! held back behind a rejected message.

use async_trait::async_trait;
use credo_adapters_inmemory::InMemoryStores;
use credo_pipeline::DirectSink;
use credo_ports::{
    AppendOutcome, AuditCategory, AuditEvent, AuditLog, AuditQuery, Delivery, EncodedEvent,
    EventId, EventSink, Page, PageRequest, StoreError, StoreResult, SystemClock, TenantId,
    Timestamp, UserId,
};
use std::sync::Arc;

fn event(tenant: TenantId, subject: UserId) -> AuditEvent {
    let mut e = AuditEvent::new(
        tenant,
        Timestamp::from_secs(1_800_000_000),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.subject_user_id = Some(subject);
    e
}

#[tokio::test]
async fn a_rejected_message_holds_back_only_the_rest_of_its_key() {
    let log = InMemoryStores::new(Arc::new(SystemClock)).audit_log();
    let sink = DirectSink::new(log.clone());
    let (t, a, b) = (TenantId::new(), UserId::new(), UserId::new());
    let events = [event(t, a), event(t, a), event(t, a), event(t, b)];
    let mut batch: Vec<EncodedEvent> = events.iter().map(EncodedEvent::encode).collect();
    batch[1].payload = "{\"schema_version\": 2, \"event\": {}}".into();
    let out = sink.publish(&batch).await.unwrap();
    assert_eq!(out[0], Delivery::Published);
    assert!(
        matches!(&out[1], Delivery::Rejected(why) if why.contains("unsupported schema_version 2")),
        "{out:?}"
    );
    assert_eq!((&out[2], &out[3]), (&Delivery::Held, &Delivery::Published));
    assert_eq!(log.count(t, AuditQuery::default()).await.unwrap(), 2);
    assert!(log.get(t, events[2].id).await.unwrap().is_none());

    // An event the log refuses (decodable, invalid) is found by writing one by one.
    let mut bad = event(t, a);
    bad.action = "Not An Action".into();
    let later = event(t, a);
    let other = event(t, b);
    let out = sink
        .publish(&[&events[2], &bad, &later, &other].map(EncodedEvent::encode))
        .await
        .unwrap();
    assert_eq!(
        (&out[0], &out[2], &out[3]),
        (&Delivery::Published, &Delivery::Held, &Delivery::Published)
    );
    assert!(
        matches!(&out[1], Delivery::Rejected(why) if why.contains("refused by the audit log")),
        "{out:?}"
    );
    assert_eq!(log.count(t, AuditQuery::default()).await.unwrap(), 4);

    // A message whose payload is another event than its row says is rejected.
    let mut swapped = EncodedEvent::encode(&event(t, b));
    swapped.id = EventId::new();
    let out = sink.publish(&[swapped]).await.unwrap();
    assert!(
        matches!(&out[0], Delivery::Rejected(why) if why.contains("the row says")),
        "{out:?}"
    );
}

struct Down;

#[async_trait]
impl AuditLog for Down {
    async fn append_batch(&self, _: &[AuditEvent]) -> StoreResult<AppendOutcome> {
        Err(StoreError::Unavailable("database down".into()))
    }
    async fn get(&self, _: TenantId, _: EventId) -> StoreResult<Option<AuditEvent>> {
        unreachable!()
    }
    async fn query(
        &self,
        _: TenantId,
        _: AuditQuery,
        _: PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        unreachable!()
    }
    async fn count(&self, _: TenantId, _: AuditQuery) -> StoreResult<u64> {
        unreachable!()
    }
    async fn purge_before(
        &self,
        _: Timestamp,
        _: Option<AuditCategory>,
        _: credo_ports::NonZeroU32,
    ) -> StoreResult<u64> {
        unreachable!()
    }
}

#[tokio::test]
async fn an_unreachable_log_fails_the_whole_batch_as_retryable() {
    let sink = DirectSink::new(Arc::new(Down));
    let e = EncodedEvent::encode(&event(TenantId::new(), UserId::new()));
    let err = sink.publish(&[e]).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}
