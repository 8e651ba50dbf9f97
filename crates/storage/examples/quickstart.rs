//! The README's quick start: `cargo run -p credo-storage --example quickstart`.
//!
//! With no configuration it runs on the in-memory default and needs no server. The same code
//! runs on PostgreSQL, Redis and Kafka when `CREDO_CONFIG_FILE` and/or `CREDO_*` variables say
//! so (build with `--features postgres,redis,kafka` for those).

use credo_storage::{
    AuditCategory, AuditEvent, AuditQuery, Clock, NewUser, PageRequest, Storage, StorageConfig,
    SystemClock, TenantId,
};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // CREDO_CONFIG_FILE + CREDO_* variables; nothing set: every store in memory, the relay
    // publishing straight into the audit log.
    let config = StorageConfig::from_env()?;
    let storage = Storage::connect(&config).await?;

    let tenant = TenantId::new();
    let user = storage
        .users
        .create(NewUser::new(tenant, "ada@example.com", "Ada", "Lovelace"))
        .await?;
    println!("created user {} <{}>", user.id, user.email);

    // Durable in the outbox on return; the relay moves it to the audit log.
    let mut event = AuditEvent::new(
        tenant,
        SystemClock.now(),
        AuditCategory::Security,
        "login.succeeded",
    );
    event.subject_user_id = Some(user.id);
    storage.audit.record(event).await?;

    // The log is filled by the relay, moments later: read until both events (the store's own
    // `user.created` and ours) are there, for at most 5 s.
    let query = AuditQuery {
        subject_user_id: Some(user.id),
        ..AuditQuery::default()
    };
    let mut page = storage
        .audit_log
        .query(tenant, query.clone(), PageRequest::first(100))
        .await?;
    for _ in 0..50 {
        if page.items.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = storage
            .audit_log
            .query(tenant, query.clone(), PageRequest::first(100))
            .await?;
    }
    for e in &page.items {
        println!("audit: {} {}", e.category.as_str(), e.action);
    }

    // The PRD-020 FR-1 body of `GET /health/ready`: 200 when ready, 503 when a check failed.
    let ready = storage.readiness().report().await;
    println!("readiness {}: {}", ready.http_status(), ready.to_json());

    // The relay (and, with Kafka, the consumer) finish the batch in hand, within
    // `shutdown_timeout_ms`.
    let report = storage.shutdown().await;
    println!("shut down: {report:?}");
    Ok(())
}
