//! The same small service scenario against three wirings (all in-memory; PostgreSQL only;
//! PostgreSQL + Redis + Kafka) gives identical observable results: moving between them is a
//! change of configuration only.

mod support;

use credo_storage::{
    AuditCategory, AuditEvent, AuditQuery, Clock, ConsentFilter, Device, GrantConsent, ManualClock,
    NewSession, NewUser, PageRequest, RateLimitPolicy, SessionId, SessionStatus, Storage,
    StorageConfig, TenantId, Timestamp, UserId,
};
use credo_testkit::unique_name as unique;
use std::sync::Arc;
use std::time::Duration;

const START: Timestamp = Timestamp::from_micros(1_800_000_000_123_457);

/// What a service sees, as text; ids the stores generate (event ids) are left out.
async fn scenario(storage: &Storage, clock: &ManualClock) -> Vec<String> {
    let mut seen = Vec::new();
    // Errors are compared by kind, as the conformance suite does: the messages are the
    // backends' own (a duplicate id is "email already registered" in memory and a primary
    // key violation in PostgreSQL).
    let mut note = |what: &str, v: &dyn std::fmt::Debug| {
        let text = format!("{v:?}");
        let text = match text.strip_prefix("Err(") {
            Some(rest) => format!(
                "Err({})",
                rest.split(['(', ' ', '{']).next().unwrap_or(rest)
            ),
            None => text,
        };
        seen.push(format!("{what}: {text}"));
    };
    let tenant = TenantId::from_uuid(uuid_from(1));
    let user_id = UserId::from_uuid(uuid_from(2));

    let mut new = NewUser::new(tenant, "Ada.Lovelace@Example.com", "Ada", "Lovelace");
    new.id = user_id;
    note("create user", &storage.users.create(new.clone()).await);
    note("create again", &storage.users.create(new).await);
    note(
        "find by email, other case",
        &storage
            .users
            .find_by_email(tenant, " ada.lovelace@example.COM")
            .await,
    );

    let grant = GrantConsent {
        id: credo_storage::ConsentId::from_uuid(uuid_from(3)),
        tenant_id: tenant,
        user_id,
        purpose: "marketing".into(),
        expires_at: None,
    };
    note("grant", &storage.consents.grant(grant).await);
    note(
        "consents",
        &storage
            .consents
            .list_for_user(tenant, user_id, ConsentFilter::default())
            .await,
    );

    let session = NewSession {
        id: SessionId::from_uuid(uuid_from(4)),
        tenant_id: tenant,
        user_id,
        client_id: "web".into(),
        scopes: vec!["openid".into()],
        status: SessionStatus::Active,
        device: Device::default(),
        expires_at: START.saturating_add(Duration::from_secs(3600)),
    };
    note("open session", &storage.sessions.create(session).await);
    clock.advance(Duration::from_secs(1));
    note(
        "revoke",
        &storage
            .sessions
            .revoke(tenant, SessionId::from_uuid(uuid_from(4)))
            .await,
    );
    note(
        "session after revoke",
        &storage
            .sessions
            .get(tenant, SessionId::from_uuid(uuid_from(4)))
            .await,
    );

    let policy = RateLimitPolicy {
        limit: 2,
        period: Duration::from_secs(60),
        burst: 1,
    };
    for i in 0..3 {
        note(
            &format!("rate limit check {i}"),
            &storage
                .rate_limits
                .check(tenant, "login:ada", policy, 1)
                .await,
        );
    }

    let mut login = AuditEvent::new(
        tenant,
        clock.now(),
        AuditCategory::Security,
        "auth.login_failed",
    );
    login.subject_user_id = Some(user_id);
    login.id = credo_storage::EventId::from_uuid(uuid_from(5));
    note("record", &storage.audit.record(login).await);

    // The relay (and, with Kafka, the consumer) materializes in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = storage
            .audit_log
            .count(tenant, AuditQuery::default())
            .await
            .unwrap();
        if n >= 3 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let page = storage
        .audit_log
        .query(
            tenant,
            AuditQuery::default(),
            PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .unwrap();
    let log: Vec<_> = page
        .items
        .iter()
        .map(|e| {
            (
                e.occurred_at,
                e.category,
                e.action.clone(),
                e.subject_user_id,
                e.purpose.clone(),
            )
        })
        .collect();
    note("audit log", &log);
    note("outbox depth", &storage.outbox.depth().await);
    seen
}

fn uuid_from(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

async fn run(toml: &str) -> Vec<String> {
    let config = StorageConfig::from_toml_str(toml).unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let storage = Storage::connect_with_clock(&config, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let seen = scenario(&storage, &clock).await;
    let ready = storage.readiness().report().await;
    assert_eq!(ready.http_status(), 200, "{:?}", ready);
    let report = storage.shutdown().await;
    assert!(report.aborted.is_empty(), "{report:?}");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_three_wirings_identical_results() {
    let in_memory = run("").await;
    assert!(
        in_memory.iter().any(|l| l.contains("allowed: false")),
        "the scenario hits the rate limit: {in_memory:#?}"
    );
    assert!(
        in_memory.iter().any(|l| l.contains("consent.granted")),
        "{in_memory:#?}"
    );

    let Some((pg, redis, kafka)) = support::servers() else {
        return;
    };
    let schema = unique("credo_w");
    let postgres_only = run(&format!(
        "[backends]\nusers = \"postgres\"\nsessions = \"postgres\"\nconsents = \"postgres\"\n\
         audit = \"postgres\"\nrate_limits = \"postgres\"\n[relay]\nidle_poll_ms = 10\n{}",
        support::postgres(&pg, &schema),
    ))
    .await;
    assert_eq!(postgres_only, in_memory, "PostgreSQL-only wiring differs");

    let schema2 = unique("credo_w");
    let topic = unique("credo.wirings");
    let full = run(&format!(
        "[backends]\nusers = \"postgres\"\nconsents = \"postgres\"\naudit = \"postgres\"\n\
         sessions = \"redis\"\nrate_limits = \"redis\"\naudit_sink = \"kafka\"\n\
         [relay]\nidle_poll_ms = 10\n{}{}rate_limit_time = \"clock\"\n{}",
        support::postgres(&pg, &schema2),
        support::redis(&redis, &unique("credo_w")),
        support::kafka(&kafka, &topic, 3),
    ))
    .await;
    assert_eq!(full, in_memory, "PostgreSQL + Redis + Kafka wiring differs");

    support::drop_schemas(&pg, &[&schema, &schema2]).await;
}
