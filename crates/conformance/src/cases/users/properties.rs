//! The model-based property of the user store: random operation sequences over emails that
//! fold together (case, Unicode, look-alikes), every result compared with the model's.

use crate::cases::{tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{NewUser, UserStatus, UserUpdate};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;
use std::time::Duration;

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

pub(super) async fn model_based_sequences(ctx: &Ctx) -> Result<(), String> {
    property::check(ctx, "users", || property::sequence(op), apply).await
}
