//! Concurrency case of the session store: racing revokes have one winner.

use super::{new_session, sessions};
use crate::cases::{eq, ok, race, tenant};
use crate::support::Ctx;
use credo_ports::StoreError;

pub(super) async fn concurrent_revokes_have_one_winner(ctx: &Ctx) -> Result<(), String> {
    const N: usize = 20;
    for round in 0..5u8 {
        let (s, st) = sessions(ctx).await?;
        let sess = ok(
            "create",
            st.create(new_session(&s, round, 0, 0, 60, false)).await,
        )?;
        let results = race(N, |_| {
            let st = st.clone();
            async move { st.revoke(tenant(0), sess.id).await }
        })
        .await?;
        let mut wins = 0;
        for r in results {
            match r {
                Ok(_) => wins += 1,
                Err(StoreError::InvalidState(_)) => {}
                Err(e) => return Err(format!("unexpected {e:?}")),
            }
        }
        eq("winners among concurrent revokes", wins, 1)?;
        eq(
            "version",
            ok("get", st.get(tenant(0), sess.id).await)?.map(|s| s.version),
            Some(2),
        )?;
    }
    Ok(())
}
