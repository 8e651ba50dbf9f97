//! Concurrent user histories: one tenant, ids 0..3, two emails that differ only in case
//! plus a third.

use super::{Rng, rounds};
use crate::cases::{tenant, user_id};
use crate::harness::Stores;
use crate::linearizability::{Spec, check};
use crate::support::Ctx;
use credo_ports::NewUser;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

#[derive(Clone, Debug)]
enum UserOp {
    Create(u8, u8),
    FindOrCreate(u8, u8),
    FindByEmail(u8),
    Delete(u8),
    Count,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum UserRet {
    User(u8),
    Created(u8, bool),
    Absent,
    Count(u64),
    Done,
    Err(&'static str),
}

const EMAILS: [&str; 3] = ["Ada@Example.com", "ada@example.COM", "bob@example.com"];

/// Email key by the contract: trimmed, case-insensitive. Emails 0 and 1 are one address.
fn email_slot(e: u8) -> u8 {
    if e == 1 { 0 } else { e }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct UserSpec {
    /// email slot -> user id
    by_email: BTreeMap<u8, u8>,
}

impl UserSpec {
    fn has_id(&self, id: u8) -> bool {
        self.by_email.values().any(|&v| v == id)
    }
}

impl Spec for UserSpec {
    type Op = UserOp;
    type Ret = UserRet;
    fn step(&self, op: &UserOp, ret: &UserRet) -> Option<Self> {
        let mut next = self.clone();
        let expected = match *op {
            UserOp::Create(id, e) => {
                if self.by_email.contains_key(&email_slot(e)) || self.has_id(id) {
                    UserRet::Err("Conflict")
                } else {
                    next.by_email.insert(email_slot(e), id);
                    UserRet::User(id)
                }
            }
            UserOp::FindOrCreate(id, e) => match self.by_email.get(&email_slot(e)) {
                Some(&existing) => UserRet::Created(existing, false),
                None if self.has_id(id) => UserRet::Err("Conflict"),
                None => {
                    next.by_email.insert(email_slot(e), id);
                    UserRet::Created(id, true)
                }
            },
            UserOp::FindByEmail(e) => match self.by_email.get(&email_slot(e)) {
                Some(&id) => UserRet::User(id),
                None => UserRet::Absent,
            },
            UserOp::Delete(id) => {
                if self.has_id(id) {
                    next.by_email.retain(|_, v| *v != id);
                    UserRet::Done
                } else {
                    UserRet::Err("NotFound")
                }
            }
            UserOp::Count => UserRet::Count(self.by_email.len() as u64),
        };
        (expected == *ret).then_some(next)
    }
}

fn user_op(rng: &mut Rng, _task: usize) -> UserOp {
    let (id, e) = (rng.pick(3), rng.pick(3));
    match rng.below(10) {
        0..=2 => UserOp::Create(id, e),
        3..=4 => UserOp::FindOrCreate(id, e),
        5..=6 => UserOp::FindByEmail(e),
        7..=8 => UserOp::Delete(id),
        _ => UserOp::Count,
    }
}

fn user_index(id: credo_ports::UserId) -> u8 {
    (0..3).find(|&i| user_id(i) == id).unwrap_or(u8::MAX)
}

fn exec_user(s: Arc<Stores>, op: UserOp) -> BoxFuture<'static, UserRet> {
    Box::pin(async move {
        let Ok(users) = s.users() else {
            return UserRet::Err("no store");
        };
        let t = tenant(0);
        let new = |id: u8, e: u8| {
            let mut u = NewUser::new(t, EMAILS[e as usize], "Ada", "Lovelace");
            u.id = user_id(id);
            u
        };
        match op {
            UserOp::Create(id, e) => match users.create(new(id, e)).await {
                Ok(u) => UserRet::User(user_index(u.id)),
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::FindOrCreate(id, e) => match users.find_or_create(new(id, e)).await {
                Ok((u, created)) => UserRet::Created(user_index(u.id), created),
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::FindByEmail(e) => match users.find_by_email(t, EMAILS[e as usize]).await {
                Ok(Some(u)) => UserRet::User(user_index(u.id)),
                Ok(None) => UserRet::Absent,
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::Delete(id) => match users.delete(t, user_id(id)).await {
                Ok(()) => UserRet::Done,
                Err(e) => UserRet::Err(e.kind()),
            },
            UserOp::Count => match users.count(t).await {
                Ok(n) => UserRet::Count(n),
                Err(e) => UserRet::Err(e.kind()),
            },
        }
    })
}

pub(super) async fn concurrent_user_histories(ctx: &Ctx) -> Result<(), String> {
    rounds(ctx, user_op, exec_user, |_, calls| {
        Box::pin(async move { check(&UserSpec::default(), calls) })
    })
    .await
}
