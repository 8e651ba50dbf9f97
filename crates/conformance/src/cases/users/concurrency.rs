//! Concurrency cases of the user store: racing creates, updates and find-or-create have one
//! winner.

use super::{person, users};
use crate::cases::{eq, ok, race, tenant};
use crate::support::Ctx;
use credo_ports::{StoreError, UserUpdate};
use std::collections::HashSet;

pub(super) async fn concurrent_creates_of_one_email_have_one_winner(
    ctx: &Ctx,
) -> Result<(), String> {
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
pub(super) async fn concurrent_updates_of_one_version_have_one_winner(
    ctx: &Ctx,
) -> Result<(), String> {
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

pub(super) async fn find_or_create_is_atomic_under_concurrency(ctx: &Ctx) -> Result<(), String> {
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
