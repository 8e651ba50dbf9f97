//! "Log out everywhere" is one step even when it must wait: a `revoke_all_for_user` held up by
//! a row lock (a concurrent single revoke) must not miss a session that a create committed
//! while it waited. Forced here deterministically; the conformance suite's concurrent session
//! histories found it by chance (one PostgreSQL run in many). Needs `CREDO_TEST_POSTGRES_URL`.

use credo_adapters_postgres::{PgConfig, PgStores};
use credo_ports::{
    Clock, Device, NewSession, SessionId, SessionStatus, SystemClock, TenantId, UserId,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn new_session(tenant: TenantId, user: UserId) -> NewSession {
    NewSession {
        id: SessionId::new(),
        tenant_id: tenant,
        user_id: user,
        client_id: "c".into(),
        scopes: vec!["openid".into()],
        status: SessionStatus::PendingConsent,
        device: Device::default(),
        expires_at: SystemClock.now().saturating_add(Duration::from_secs(3600)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_while_revoke_all_waits_is_revoked_or_created_after_it() {
    let Some(url) = credo_testkit::required("CREDO_TEST_POSTGRES_URL") else {
        return;
    };
    let mut config = PgConfig::new(&url);
    config.schema = Some(format!("credo_revoke_all_{}", std::process::id()));
    let stores = PgStores::connect(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    stores.migrate().await.unwrap();
    let sessions = stores.sessions();
    let (tenant, user) = (TenantId::new(), UserId::new());
    let first = sessions.create(new_session(tenant, user)).await.unwrap();

    // Another transaction holds the first session's row, as a single revoke in flight does.
    let mut holder = stores.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE")
        .bind(first.id.0)
        .execute(&mut *holder)
        .await
        .unwrap();
    let start = Instant::now();
    let revoke_all = tokio::spawn({
        let sessions = sessions.clone();
        async move {
            let n = sessions.revoke_all_for_user(tenant, user).await.unwrap();
            (n, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!revoke_all.is_finished(), "revoke_all waits for the row");
    let create = tokio::spawn({
        let sessions = sessions.clone();
        async move {
            let s = sessions.create(new_session(tenant, user)).await.unwrap();
            (s, start.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.commit().await.unwrap();
    let (revoked, revoke_all_done) = revoke_all.await.unwrap();
    let (second, create_done) = create.await.unwrap();
    let second_now = sessions.get(tenant, second.id).await.unwrap().unwrap();
    assert!(
        create_done > revoke_all_done || second_now.status == SessionStatus::Revoked,
        "the create returned at {create_done:?}, before revoke_all at {revoke_all_done:?} \
         (which revoked {revoked}), yet its session is {:?}",
        second_now.status
    );
    assert_eq!(revoked, 1 + u64::from(create_done < revoke_all_done));
    stores.drop_schema().await.unwrap();
    stores.close().await;
}
