//! Per-user advisory locks, held until commit. Row locks alone cannot make an operation on
//! all of a user's rows one step: under READ COMMITTED a statement that waited on one row sees
//! that row's new version but not a row another transaction inserted and committed meanwhile.
//! So every write that adds such a row and every operation over all of them take the user's
//! lock of their class first (in a statement before theirs).

use crate::map_err;
use credo_ports::{StoreResult, TenantId, UserId};
use sqlx::PgConnection;

/// First key of the two-key advisory locks on consents ("CNST"), apart from other users of
/// advisory locks in the same database.
pub(crate) const CONSENTS: i32 = 0x434E_5354;
/// First key of the two-key advisory locks on one user's sessions ("SESS").
pub(crate) const SESSIONS: i32 = 0x5345_5353;

/// How a lock is held: writers that only add rows share it; an operation over all rows
/// holds it alone.
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// Takes `user`'s lock of `class` in `mode` until the transaction on `conn` ends.
pub(crate) async fn lock_user(
    conn: &mut PgConnection,
    class: i32,
    tenant: TenantId,
    user: UserId,
    mode: Mode,
) -> StoreResult<()> {
    let sql = match mode {
        Mode::Exclusive => "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        Mode::Shared => "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
    };
    sqlx::query(sql)
        .bind(class)
        .bind(format!("{}/{}", tenant.0, user.0))
        .execute(conn)
        .await
        .map_err(map_err)?;
    Ok(())
}
