//! Consents at the edges: expiries anywhere, status derived at clocks on the edges.

use super::{At, at, clock_instant, set_clock};
use crate::cases::{consent_id, tenant, user_id};
use crate::property::{self, Pair, same};
use crate::support::Ctx;
use credo_ports::{ConsentFilter, GrantConsent, Timestamp};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum ConsentOp {
    Clock(Timestamp),
    Grant { purpose: u8, expires: Option<At> },
    Get { purpose: u8 },
    Revoke { purpose: u8 },
    List { active_only: bool },
    RevokeAll,
}

const PURPOSES: [&str; 3] = ["marketing", "analytics", "registry.check"];

fn consent_op() -> BoxedStrategy<ConsentOp> {
    let purpose = 0u8..3;
    prop_oneof![
        2 => clock_instant().prop_map(ConsentOp::Clock),
        4 => (purpose.clone(), proptest::option::of(at()))
            .prop_map(|(purpose, expires)| ConsentOp::Grant { purpose, expires }),
        2 => purpose.clone().prop_map(|purpose| ConsentOp::Get { purpose }),
        1 => purpose.prop_map(|purpose| ConsentOp::Revoke { purpose }),
        2 => any::<bool>().prop_map(|active_only| ConsentOp::List { active_only }),
        1 => Just(ConsentOp::RevokeAll),
    ]
    .boxed()
}

fn apply_consent<'a>(p: &'a Pair, op: &'a ConsentOp) -> BoxFuture<'a, Result<(), String>> {
    async move {
        let (m, b) = (p.model.consents()?, p.backend.consents()?);
        let (t, u) = (tenant(0), user_id(0));
        let now = p.backend.now();
        match op.clone() {
            ConsentOp::Clock(at) => {
                set_clock(p, at);
                Ok(())
            }
            ConsentOp::Grant { purpose, expires } => {
                let g = GrantConsent {
                    id: consent_id(purpose),
                    tenant_id: t,
                    user_id: u,
                    purpose: PURPOSES[purpose as usize].into(),
                    expires_at: expires.map(|e| e.resolve(now)),
                };
                same(op, m.grant(g.clone()).await, b.grant(g).await)
            }
            ConsentOp::Get { purpose } => {
                let pu = PURPOSES[purpose as usize];
                same(op, m.get(t, u, pu).await, b.get(t, u, pu).await)
            }
            ConsentOp::Revoke { purpose } => {
                let pu = PURPOSES[purpose as usize];
                same(op, m.revoke(t, u, pu).await, b.revoke(t, u, pu).await)
            }
            ConsentOp::List { active_only } => {
                let f = || ConsentFilter {
                    purpose: None,
                    status: active_only.then_some(credo_ports::ConsentStatus::Active),
                };
                same(
                    op,
                    m.list_for_user(t, u, f()).await,
                    b.list_for_user(t, u, f()).await,
                )
            }
            ConsentOp::RevokeAll => same(
                op,
                m.revoke_all_for_user(t, u).await,
                b.revoke_all_for_user(t, u).await,
            ),
        }
    }
    .boxed()
}

pub(super) async fn consent_times_at_the_edges(ctx: &Ctx) -> Result<(), String> {
    property::check(
        ctx,
        "edges_consents",
        || proptest::collection::vec(consent_op(), 1..30),
        apply_consent,
    )
    .await
}
