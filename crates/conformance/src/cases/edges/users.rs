//! Users at the edges: created_at at the clock's edges, list cursors anywhere.

use super::{any_instant, clock_instant, page_limit, set_clock};
use crate::cases::{tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{Cursor, NewUser, PageRequest, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum UserOp {
    Clock(Timestamp),
    Create {
        i: u8,
    },
    List {
        after: Option<(Timestamp, u8)>,
        limit: usize,
    },
    Count,
}

fn user_op() -> BoxedStrategy<UserOp> {
    prop_oneof![
        2 => clock_instant().prop_map(UserOp::Clock),
        3 => (0u8..6).prop_map(|i| UserOp::Create { i }),
        3 => (proptest::option::of((any_instant(), 0u8..6)), page_limit())
            .prop_map(|(after, limit)| UserOp::List { after, limit }),
        1 => Just(UserOp::Count),
    ]
    .boxed()
}

fn apply_user<'a>(p: &'a Pair, op: &'a UserOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.users()?, p.backend.users()?);
        match op.clone() {
            UserOp::Clock(t) => {
                set_clock(p, t);
                Ok(())
            }
            UserOp::Create { i } => {
                let mut u =
                    NewUser::new(tenant(0), &format!("edge{i}@example.com"), "Edge", "Case");
                u.id = user_id(i);
                same(op, m.create(u.clone()).await, b.create(u).await)
            }
            UserOp::List { after, limit } => {
                let page = PageRequest {
                    after: after.map(|(at, i)| Cursor {
                        at,
                        id: user_id(i).0,
                    }),
                    limit,
                };
                same(
                    op,
                    m.list(tenant(0), page).await,
                    b.list(tenant(0), page).await,
                )
            }
            UserOp::Count => same(op, m.count(tenant(0)).await, b.count(tenant(0)).await),
        }
    }
    .boxed()
}

pub(super) async fn user_cursors_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_users",
        || proptest::collection::vec(user_op(), 1..30),
        apply_user,
    )
    .await
}
