use super::{cases, drain, ensure, eq, err_kind, ok, race, tenant, user_id};
use crate::harness::Port;
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{NewUser, PageRequest, StoreError, User, UserStatus, UserStore, UserUpdate};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn cases() -> Vec<super::Case> {
    cases![Port::Users;
        model_based_sequences,
        email_collision_is_case_folded_and_trimmed,
        look_alike_emails_are_one_user_and_invisible_characters_are_refused,
        concurrent_creates_of_one_email_have_one_winner,
        concurrent_updates_of_one_version_have_one_winner,
        find_or_create_is_atomic_under_concurrency,
        update_checks_expected_version,
        update_to_a_taken_email_conflicts,
        cross_tenant_isolation,
        pagination_is_stable_under_inserts,
        bad_input_is_rejected_before_any_write,
        mutations_record_audit_events_atomically,
        a_failed_event_write_writes_nothing,
        timestamps_round_trip_in_microseconds,
        delete_of_absent_user_is_not_found,
    ]
}

/// Emails the sequences draw from, each also rendered upper-cased, padded and capitalized.
/// Beyond plain ASCII: case that only Unicode folds (`É`, final `Σ`, `ß` whose upper case is
/// `SS`), `LIKE` wildcards that must stay literal (`_` and `%` beside an address they would
/// match), a fullwidth look-alike that NFKC makes one with `alice`, and invisible characters
/// the policy refuses.
const EMAILS: [&str; 13] = [
    "alice@example.com",
    "bob@example.org",
    "carol@sub.example.net",
    "x@y.co",
    "not-an-email",
    "émile@exämple.fr",
    "ΟΔΥΣΣΕΥΣ@example.gr",
    "straße@example.de",
    "a_b@example.com",
    "axb@example.com",
    "a%b@example.com",
    "\u{ff41}lice@example.com",
    "ali\u{200b}ce@example.com",
];
const NAMES: [&str; 5] = [
    "Ada",
    "Grace",
    "",
    "O'Brien'); DROP TABLE users;--",
    "名前 \u{1F600}",
];

#[derive(Clone, Debug)]
struct Email(u8, u8);

impl Email {
    fn render(&self) -> String {
        let base = EMAILS[self.0 as usize % EMAILS.len()];
        match self.1 % 4 {
            0 => base.to_string(),
            1 => base.to_uppercase(),
            2 => format!("  {base}\t"),
            _ => {
                let mut c = base.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect())
                    .unwrap_or_default()
            }
        }
    }
}

fn email() -> impl Strategy<Value = Email> {
    (0..EMAILS.len() as u8, 0u8..4).prop_map(|(b, s)| Email(b, s))
}

fn new_user(id: u8, t: u8, e: &Email, verified: bool, name: u8) -> NewUser {
    NewUser {
        id: user_id(id),
        tenant_id: tenant(t),
        email: e.render(),
        email_verified: verified,
        first_name: NAMES[name as usize % NAMES.len()].to_string(),
        last_name: "Lovelace".into(),
        status: UserStatus::Active,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        id: u8,
        t: u8,
        email: Email,
        verified: bool,
        name: u8,
    },
    FindOrCreate {
        id: u8,
        t: u8,
        email: Email,
    },
    Get {
        t: u8,
        id: u8,
    },
    FindByEmail {
        t: u8,
        email: Email,
    },
    Update {
        t: u8,
        id: u8,
        email: Option<Email>,
        verified: Option<bool>,
        name: Option<u8>,
        inactive: Option<bool>,
        expected: Option<u64>,
    },
    Delete {
        t: u8,
        id: u8,
    },
    List {
        t: u8,
        limit: usize,
    },
    Count {
        t: u8,
    },
    Advance {
        micros: u64,
    },
    DrainEvents,
}

fn op() -> impl Strategy<Value = Op> {
    let id = 0u8..6;
    let t = 0u8..8;
    prop_oneof![
        4 => (id.clone(), t.clone(), email(), any::<bool>(), 0u8..5)
            .prop_map(|(id, t, email, verified, name)| Op::Create { id, t, email, verified, name }),
        2 => (id.clone(), t.clone(), email()).prop_map(|(id, t, email)| Op::FindOrCreate { id, t, email }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Get { t, id }),
        2 => (t.clone(), email()).prop_map(|(t, email)| Op::FindByEmail { t, email }),
        3 => (t.clone(), id.clone(), proptest::option::of(email()), proptest::option::of(any::<bool>()),
              proptest::option::of(0u8..5), proptest::option::of(any::<bool>()), proptest::option::of(1u64..4))
            .prop_map(|(t, id, email, verified, name, inactive, expected)| Op::Update { t, id, email, verified, name, inactive, expected }),
        2 => (t.clone(), id.clone()).prop_map(|(t, id)| Op::Delete { t, id }),
        1 => (t.clone(), 0usize..4).prop_map(|(t, limit)| Op::List { t, limit }),
        1 => t.clone().prop_map(|t| Op::Count { t }),
        2 => prop_oneof![Just(0u64), Just(1), Just(1_000_000)].prop_map(|micros| Op::Advance { micros }),
        1 => Just(Op::DrainEvents),
    ]
}

fn apply<'a>(p: &'a Pair, op: &'a Op) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.users()?, p.backend.users()?);
        match op.clone() {
            Op::Create {
                id,
                t,
                email,
                verified,
                name,
            } => {
                let u = new_user(id, t, &email, verified, name);
                same(op, m.create(u.clone()).await, b.create(u).await)
            }
            Op::FindOrCreate { id, t, email } => {
                let u = new_user(id, t, &email, false, 0);
                same(
                    op,
                    m.find_or_create(u.clone()).await,
                    b.find_or_create(u).await,
                )
            }
            Op::Get { t, id } => same(
                op,
                m.get(tenant(t), user_id(id)).await,
                b.get(tenant(t), user_id(id)).await,
            ),
            Op::FindByEmail { t, email } => {
                let e = email.render();
                same(
                    op,
                    m.find_by_email(tenant(t), &e).await,
                    b.find_by_email(tenant(t), &e).await,
                )
            }
            Op::Update {
                t,
                id,
                email,
                verified,
                name,
                inactive,
                expected,
            } => {
                let upd = UserUpdate {
                    email: email.map(|e| e.render()),
                    email_verified: verified,
                    first_name: name.map(|n| NAMES[n as usize % NAMES.len()].to_string()),
                    last_name: None,
                    status: inactive.map(|i| {
                        if i {
                            UserStatus::Inactive
                        } else {
                            UserStatus::Active
                        }
                    }),
                };
                same(
                    op,
                    m.update(tenant(t), user_id(id), upd.clone(), expected)
                        .await,
                    b.update(tenant(t), user_id(id), upd, expected).await,
                )
            }
            Op::Delete { t, id } => same(
                op,
                m.delete(tenant(t), user_id(id)).await,
                b.delete(tenant(t), user_id(id)).await,
            ),
            Op::List { t, limit } => {
                property::same_pages(
                    op,
                    limit,
                    |pg| m.list(tenant(t), pg),
                    |pg| b.list(tenant(t), pg),
                )
                .await
            }
            Op::Count { t } => same(op, m.count(tenant(t)).await, b.count(tenant(t)).await),
            Op::Advance { micros } => {
                p.backend.clock.advance(Duration::from_micros(micros));
                Ok(())
            }
            Op::DrainEvents => {
                property::same_drained_events(
                    p,
                    "audit events recorded by user mutations",
                    property::Ids::Generated,
                )
                .await
            }
        }
    }
    .boxed()
}

async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "users", || property::sequence(op), apply).await
}

async fn users(ctx: &Ctx) -> Result<(crate::harness::Stores, Arc<dyn UserStore>), String> {
    let s = ctx.fresh().await?;
    let u = s.users()?;
    Ok((s, u))
}

fn person(t: u8, email: &str) -> NewUser {
    NewUser::new(tenant(t), email, "Test", "Person")
}

async fn email_collision_is_case_folded_and_trimmed(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let bob = ok(
        "create",
        users.create(person(0, "Bob.Smith@Example.COM")).await,
    )?;
    eq(
        "stored email keeps case, trimmed",
        bob.email.as_str(),
        "Bob.Smith@Example.COM",
    )?;
    for spelling in [
        "bob.smith@example.com",
        "  BOB.SMITH@EXAMPLE.COM ",
        "bob.smith@Example.com\t",
    ] {
        err_kind(
            spelling,
            users.create(person(0, spelling)).await,
            "Conflict",
        )?;
        let found = ok("find", users.find_by_email(tenant(0), spelling).await)?;
        eq(
            "find_by_email any spelling",
            found.map(|u| u.id),
            Some(bob.id),
        )?;
    }
    eq("count", ok("count", users.count(tenant(0)).await)?, 1)
}

/// The email policy (DESIGN §4): stored NFC, compared NFKC and case-folded, invisible
/// characters refused; the same on every backend.
async fn look_alike_emails_are_one_user_and_invisible_characters_are_refused(
    ctx: &Ctx,
) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    // "José" with a combining accent is stored composed.
    let jose = ok(
        "create",
        users.create(person(0, "Jose\u{301}@Example.com")).await,
    )?;
    eq("stored NFC", jose.email.as_str(), "Jos\u{e9}@Example.com")?;
    for spelling in [
        "jos\u{e9}@example.com",
        "JOSE\u{301}@EXAMPLE.COM",
        "ｊｏｓ\u{e9}@ｅｘａｍｐｌｅ.ｃｏｍ",
    ] {
        err_kind(
            spelling,
            users.create(person(0, spelling)).await,
            "Conflict",
        )?;
        let found = ok("find", users.find_by_email(tenant(0), spelling).await)?;
        eq(
            "find_by_email any spelling",
            found.map(|u| u.id),
            Some(jose.id),
        )?;
    }
    for invisible in [
        "jo\u{200B}se@example.com",
        "jose\u{200D}@example.com",
        "\u{FEFF}jose@example.com",
        "jose@exam\u{00AD}ple.com",
        "jose@example.com\u{202E}",
    ] {
        err_kind(
            invisible,
            users.create(person(0, invisible)).await,
            "InvalidInput",
        )?;
        err_kind(
            invisible,
            users.find_by_email(tenant(0), invisible).await,
            "InvalidInput",
        )?;
    }
    // Another script is another mailbox.
    ok(
        "create",
        users.create(person(0, "jos\u{435}@example.com")).await,
    )?;
    eq("count", ok("count", users.count(tenant(0)).await)?, 2)
}

async fn concurrent_creates_of_one_email_have_one_winner(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 32;
    let (_s, users) = users(ctx).await?;
    let results = race(N, |i| {
        let users = users.clone();
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            " RACE@Example.com "
        };
        async move { users.create(person(0, email)).await }
    })
    .await?;
    let mut wins = 0;
    for r in results {
        match r {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(format!("unexpected error {e:?}")),
        }
    }
    eq("winners among concurrent creates", wins, 1)?;
    eq("count", ok("count", users.count(tenant(0)).await)?, 1)
}

/// Optimistic concurrency holds under contention: of N updates that all expect version 1,
/// exactly one wins, the others conflict, and the record shows the winner's change at
/// version 2 (a read-then-write without a row lock lets several win).
async fn concurrent_updates_of_one_version_have_one_winner(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 16;
    let (_s, users) = users(ctx).await?;
    let u = ok("create", users.create(person(0, "occ@example.com")).await)?;
    let results = race(N, |i| {
        let users = users.clone();
        let update = UserUpdate {
            first_name: Some(format!("Name{i}")),
            ..Default::default()
        };
        async move { users.update(tenant(0), u.id, update, Some(u.version)).await }
    })
    .await?;
    let mut winners = Vec::new();
    for r in results {
        match r {
            Ok(user) => winners.push(user),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(format!("unexpected error {e:?}")),
        }
    }
    eq("winners among concurrent updates", winners.len(), 1)?;
    let stored = ok("get", users.get(tenant(0), u.id).await)?;
    eq(
        "stored record is the winner's",
        stored.as_ref(),
        winners.first(),
    )?;
    eq("version", stored.map(|s| s.version), Some(u.version + 1))
}

async fn find_or_create_is_atomic_under_concurrency(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 32;
    let (_s, users) = users(ctx).await?;
    let results = race(N, |i| {
        let users = users.clone();
        let email = if i % 2 == 0 {
            "foc@example.com"
        } else {
            "FOC@example.com"
        };
        async move { users.find_or_create(person(0, email)).await }
    })
    .await?;
    let mut created = 0;
    let mut ids = HashSet::new();
    for r in results {
        let (u, c) = ok("find_or_create", r)?;
        created += usize::from(c);
        ids.insert(u.id);
    }
    eq("created flags", created, 1)?;
    eq("distinct users returned", ids.len(), 1)
}

async fn update_checks_expected_version(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let u = ok("create", users.create(person(0, "v@example.com")).await)?;
    eq("initial version", u.version, 1)?;
    s.clock.advance(Duration::from_millis(5));
    let upd = UserUpdate {
        first_name: Some("New".into()),
        ..Default::default()
    };
    let u2 = ok(
        "update v1",
        users.update(tenant(0), u.id, upd.clone(), Some(1)).await,
    )?;
    eq("version after update", u2.version, 2)?;
    eq("updated_at moves", u2.updated_at, s.now())?;
    eq("created_at kept", u2.created_at, u.created_at)?;
    err_kind(
        "stale version",
        users.update(tenant(0), u.id, upd.clone(), Some(1)).await,
        "Conflict",
    )?;
    let u3 = ok(
        "unconditional",
        users.update(tenant(0), u.id, upd.clone(), None).await,
    )?;
    eq("version increments on every change", u3.version, 3)?;
    err_kind(
        "empty update",
        users
            .update(tenant(0), u.id, UserUpdate::default(), None)
            .await,
        "InvalidInput",
    )?;
    err_kind(
        "absent user",
        users.update(tenant(0), user_id(99), upd, None).await,
        "NotFound",
    )
}

async fn update_to_a_taken_email_conflicts(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let a = ok("create a", users.create(person(0, "a@example.com")).await)?;
    ok("create b", users.create(person(0, "b@example.com")).await)?;
    let to_b = UserUpdate {
        email: Some("B@EXAMPLE.com".into()),
        ..Default::default()
    };
    err_kind(
        "a takes b's email",
        users.update(tenant(0), a.id, to_b, None).await,
        "Conflict",
    )?;
    let recase = UserUpdate {
        email: Some("A@Example.com".into()),
        ..Default::default()
    };
    let a2 = ok(
        "a changes its own case",
        users.update(tenant(0), a.id, recase, None).await,
    )?;
    eq("new spelling stored", a2.email.as_str(), "A@Example.com")?;
    let free = UserUpdate {
        email: Some("c@example.com".into()),
        ..Default::default()
    };
    ok(
        "a moves to c",
        users.update(tenant(0), a.id, free, None).await,
    )?;
    ok(
        "old email is free again",
        users.create(person(0, "a@example.com")).await,
    )?;
    Ok(())
}

async fn cross_tenant_isolation(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    let a = ok(
        "tenant 0",
        users.create(person(0, "same@example.com")).await,
    )?;
    let b = ok(
        "same email, tenant 1",
        users.create(person(1, "same@example.com")).await,
    )?;
    ensure(a.id != b.id, || "distinct users".into())?;
    eq(
        "get across tenants",
        ok("get", users.get(tenant(1), a.id).await)?,
        None,
    )?;
    eq(
        "find in tenant 1",
        ok(
            "find",
            users.find_by_email(tenant(1), "same@example.com").await,
        )?
        .map(|u| u.id),
        Some(b.id),
    )?;
    let upd = UserUpdate {
        first_name: Some("X".into()),
        ..Default::default()
    };
    err_kind(
        "update across tenants",
        users.update(tenant(1), a.id, upd, None).await,
        "NotFound",
    )?;
    err_kind(
        "delete across tenants",
        users.delete(tenant(1), a.id).await,
        "NotFound",
    )?;
    let page = ok("list", users.list(tenant(1), PageRequest::first(100)).await)?;
    eq(
        "list tenant 1",
        page.items.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![b.id],
    )?;
    eq(
        "count tenant 2",
        ok("count", users.count(tenant(2)).await)?,
        0,
    )?;
    eq(
        "a untouched",
        ok("get", users.get(tenant(0), a.id).await)?,
        Some(a),
    )
}

async fn pagination_is_stable_under_inserts(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let mut expected = Vec::new();
    for i in 0..23u32 {
        // Several users share one created_at: the id breaks the tie.
        if i % 3 == 0 {
            s.clock.advance(Duration::from_micros(1));
        }
        let u = ok(
            "create",
            users.create(person(0, &format!("p{i}@example.com"))).await,
        )?;
        expected.push(u);
    }
    expected.sort_by_key(User::cursor);
    let mut seen = Vec::new();
    let mut after = None;
    let mut i = 0;
    loop {
        let page = ok(
            "list",
            users.list(tenant(0), PageRequest { after, limit: 4 }).await,
        )?;
        seen.extend(page.items.iter().cloned());
        // Inserts between pages land after every existing user (later created_at).
        s.clock.advance(Duration::from_secs(1));
        ok(
            "insert mid-walk",
            users
                .create(person(0, &format!("late{i}@example.com")))
                .await,
        )?;
        i += 1;
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        if i > 100 {
            return Err("pagination never ended".into());
        }
    }
    let pre: Vec<_> = seen
        .iter()
        .filter(|u| !u.email.starts_with("late"))
        .cloned()
        .collect();
    eq("pre-existing users, each once, in order", pre, expected)?;
    let ids: HashSet<_> = seen.iter().map(|u| u.id).collect();
    eq("no duplicates", ids.len(), seen.len())?;
    err_kind(
        "limit 0",
        users.list(tenant(0), PageRequest::first(0)).await,
        "InvalidInput",
    )?;
    err_kind(
        "limit over max",
        users.list(tenant(0), PageRequest::first(1001)).await,
        "InvalidInput",
    )
}

async fn bad_input_is_rejected_before_any_write(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let long = "x".repeat(300);
    let mega = "y".repeat(1 << 20);
    // At the limits: 254 bytes in all, 64 before the `@`.
    let local = "a".repeat(64);
    let longest = format!("{local}@{}.com", "b".repeat(185));
    let bad: Vec<(&str, NewUser)> = vec![
        (
            "255-byte email",
            person(0, &format!("{local}@{}.com", "b".repeat(186))),
        ),
        (
            "65-byte local part",
            person(0, &format!("a{local}@example.com")),
        ),
        ("empty email", person(0, "")),
        ("no at", person(0, "nobody")),
        ("no domain dot", person(0, "a@b")),
        ("nul in email", person(0, "a\0b@example.com")),
        ("1 MB email", person(0, &format!("{mega}@example.com"))),
        (
            "empty first name",
            NewUser {
                first_name: " ".into(),
                ..person(0, "ok@example.com")
            },
        ),
        (
            "long last name",
            NewUser {
                last_name: long.clone(),
                ..person(0, "ok@example.com")
            },
        ),
        (
            "nul in name",
            NewUser {
                first_name: "a\0".into(),
                ..person(0, "ok@example.com")
            },
        ),
    ];
    for (what, u) in bad {
        err_kind(what, users.create(u.clone()).await, "InvalidInput")?;
        err_kind(what, users.find_or_create(u).await, "InvalidInput")?;
    }
    err_kind(
        "find by bad email",
        users.find_by_email(tenant(0), "nope").await,
        "InvalidInput",
    )?;
    let real = ok("create", users.create(person(0, "real@example.com")).await)?;
    let bad_upd = UserUpdate {
        email: Some("bad".into()),
        first_name: Some("Fine".into()),
        ..Default::default()
    };
    err_kind(
        "bad update",
        users.update(tenant(0), real.id, bad_upd, None).await,
        "InvalidInput",
    )?;
    eq(
        "nothing half-written",
        ok("get", users.get(tenant(0), real.id).await)?,
        Some(real),
    )?;
    eq("count", ok("count", users.count(tenant(0)).await)?, 1)?;
    eq(
        "only the one creation was recorded",
        ok("depth", s.outbox()?.depth().await)?,
        1,
    )?;
    let created = ok("254-byte email", users.create(person(0, &longest)).await)?;
    eq(
        "found by its longest email",
        ok(
            "find",
            users
                .find_by_email(tenant(0), &longest.to_uppercase())
                .await,
        )?,
        Some(created),
    )
}

async fn mutations_record_audit_events_atomically(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let outbox = s.outbox()?;
    let u = ok("create", users.create(person(0, "audit@example.com")).await)?;
    eq(
        "event with the create",
        ok("depth", outbox.depth().await)?,
        1,
    )?;
    err_kind(
        "duplicate",
        users.create(person(0, "AUDIT@example.com")).await,
        "Conflict",
    )?;
    eq(
        "no event for a failed create",
        ok("depth", outbox.depth().await)?,
        1,
    )?;
    let upd = UserUpdate {
        email_verified: Some(true),
        status: Some(UserStatus::Inactive),
        ..Default::default()
    };
    ok("update", users.update(tenant(0), u.id, upd, None).await)?;
    err_kind(
        "stale",
        users
            .update(
                tenant(0),
                u.id,
                UserUpdate {
                    email_verified: Some(false),
                    ..Default::default()
                },
                Some(1),
            )
            .await,
        "Conflict",
    )?;
    ok("delete", users.delete(tenant(0), u.id).await)?;
    err_kind(
        "delete again",
        users.delete(tenant(0), u.id).await,
        "NotFound",
    )?;
    let events = drain(&s).await?;
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.subject_user_id, e.tenant_id))
        .collect();
    eq(
        "events",
        summary,
        vec![
            ("user.created", Some(u.id), tenant(0)),
            ("user.updated", Some(u.id), tenant(0)),
            ("user.deleted", Some(u.id), tenant(0)),
        ],
    )?;
    eq(
        "changed fields listed",
        events[1].metadata.get("fields").cloned(),
        Some(serde_json::json!(["email_verified", "status"])),
    )?;
    let pii = serde_json::to_string(&events).map_err(|e| e.to_string())?;
    ensure(!pii.contains("audit@example.com"), || {
        "events must not carry the email".into()
    })
}

async fn timestamps_round_trip_in_microseconds(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    s.clock.advance(Duration::from_nanos(1_999)); // clock keeps microseconds only
    let now = s.now();
    let u = ok("create", users.create(person(0, "t@example.com")).await)?;
    eq("created_at", u.created_at, now)?;
    let back = ok("get", users.get(tenant(0), u.id).await)?.ok_or("created user missing")?;
    eq("read back equals written", back, u)
}

async fn delete_of_absent_user_is_not_found(ctx: &Ctx) -> Result<(), String> {
    let (_s, users) = users(ctx).await?;
    err_kind(
        "delete absent",
        users.delete(tenant(0), user_id(42)).await,
        "NotFound",
    )?;
    let u = ok("create", users.create(person(0, "d@example.com")).await)?;
    ok("delete", users.delete(tenant(0), u.id).await)?;
    eq("gone", ok("get", users.get(tenant(0), u.id).await)?, None)?;
    eq(
        "email free",
        ok(
            "find",
            users.find_by_email(tenant(0), "d@example.com").await,
        )?,
        None,
    )
}

/// A change and its audit event are written together or not at all: with every outbox write
/// failing (an injected fault), each mutation fails `Unavailable` and leaves the users and
/// the outbox as they were. An adapter that wrote the event after committing the change (or
/// ignored the event's failure) leaves a change behind here.
async fn a_failed_event_write_writes_nothing(ctx: &Ctx) -> Result<(), String> {
    let (s, users) = users(ctx).await?;
    let outbox = s.outbox()?;
    let faults = s.outbox_faults()?;
    let alice = ok("create", users.create(person(0, "alice@example.com")).await)?;
    let depth = ok("depth", outbox.depth().await)?;
    let bob = person(0, "bob@example.com");
    let update = UserUpdate {
        email: Some("alicia@example.com".into()),
        first_name: Some("Alicia".into()),
        ..Default::default()
    };
    ok("fault on", faults(true).await)?;
    let results = [
        ("create", users.create(bob.clone()).await.map(|_| ())),
        (
            "find_or_create of a new email",
            users.find_or_create(bob.clone()).await.map(|_| ()),
        ),
        (
            "update",
            users
                .update(tenant(0), alice.id, update, None)
                .await
                .map(|_| ()),
        ),
        ("delete", users.delete(tenant(0), alice.id).await),
    ];
    // Off before any verdict, so that a failing case leaves the stores usable.
    ok("fault off", faults(false).await)?;
    for (what, r) in results {
        err_kind(what, r, "Unavailable")?;
    }
    eq(
        "alice as she was",
        ok("get", users.get(tenant(0), alice.id).await)?,
        Some(alice.clone()),
    )?;
    eq(
        "no bob",
        ok(
            "find",
            users.find_by_email(tenant(0), "bob@example.com").await,
        )?,
        None,
    )?;
    eq(
        "no bob by id",
        ok("get", users.get(tenant(0), bob.id).await)?,
        None,
    )?;
    eq(
        "the new email still free",
        ok(
            "find",
            users.find_by_email(tenant(0), "alicia@example.com").await,
        )?,
        None,
    )?;
    eq("outbox depth", ok("depth", outbox.depth().await)?, depth)?;
    // And everything works again once the outbox does.
    ok("create after the fault", users.create(bob).await)?;
    eq(
        "outbox depth",
        ok("depth", outbox.depth().await)?,
        depth + 1,
    )
}
