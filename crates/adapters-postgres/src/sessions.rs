use crate::time::{bad_enum, from_db, from_db_opt, to_db};
use crate::{locks, map_err};
use async_trait::async_trait;
use credo_ports::sessions::{validate_jti, validate_revocation};
use credo_ports::{
    Clock, Device, NewSession, Session, SessionId, SessionStatus, SessionStore, StoreError,
    StoreResult, TenantId, Timestamp, UserId,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::num::NonZeroU32;
use std::sync::Arc;

/// PostgreSQL [`SessionStore`] for single-database deployments. Every state change is one
/// conditional `UPDATE ... RETURNING` (the row lock makes check and write one step), followed,
/// only when it matched nothing, by a read that tells `NotFound` from `InvalidState`. Creates
/// and `revoke_all_for_user` of one user also take that user's advisory lock (see
/// `crate::locks`), so that revoking all is one step.
pub struct PgSessionStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgSessionStore {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn status(s: &str) -> StoreResult<SessionStatus> {
    match s {
        "pending_consent" => Ok(SessionStatus::PendingConsent),
        "active" => Ok(SessionStatus::Active),
        "revoked" => Ok(SessionStatus::Revoked),
        other => Err(bad_enum("sessions.status", other)),
    }
}

fn session(r: &PgRow) -> StoreResult<Session> {
    let st: String = r.try_get("status").map_err(map_err)?;
    Ok(Session {
        id: SessionId(r.try_get("id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(map_err)?),
        user_id: UserId(r.try_get("user_id").map_err(map_err)?),
        client_id: r.try_get("client_id").map_err(map_err)?,
        scopes: r.try_get("scopes").map_err(map_err)?,
        status: status(&st)?,
        device: Device {
            user_agent: r.try_get("user_agent").map_err(map_err)?,
            ip_address: r.try_get("ip_address").map_err(map_err)?,
            device_id: r.try_get("device_id").map_err(map_err)?,
            device_name: r.try_get("device_name").map_err(map_err)?,
        },
        created_at: from_db(r.try_get("created_at").map_err(map_err)?),
        expires_at: from_db(r.try_get("expires_at").map_err(map_err)?),
        last_seen_at: from_db(r.try_get("last_seen_at").map_err(map_err)?),
        last_refreshed_at: from_db_opt(r.try_get("last_refreshed_at").map_err(map_err)?),
        revoked_at: from_db_opt(r.try_get("revoked_at").map_err(map_err)?),
        version: r.try_get::<i64, _>("version").map_err(map_err)? as u64,
    })
}

/// Which transition a conditional update performs.
#[derive(Clone, Copy)]
enum Change {
    Touch,
    Refresh,
    Activate,
    Revoke,
}

impl Change {
    /// Whether a live session in `status` takes this change (the `WHERE` of [`Change::sql`]).
    fn accepts(self, status: SessionStatus) -> bool {
        match self {
            Change::Touch | Change::Revoke => status != SessionStatus::Revoked,
            Change::Refresh => status == SessionStatus::Active,
            Change::Activate => status == SessionStatus::PendingConsent,
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Change::Touch => {
                "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $3),
                     version = version + CASE WHEN $3 > last_seen_at THEN 1 ELSE 0 END
                 WHERE tenant_id = $1 AND id = $2 AND expires_at > $3 AND status <> 'revoked'
                 RETURNING *"
            }
            Change::Refresh => {
                "UPDATE sessions SET last_refreshed_at = $3, last_seen_at = GREATEST(last_seen_at, $3),
                     version = version + 1
                 WHERE tenant_id = $1 AND id = $2 AND expires_at > $3 AND status = 'active'
                 RETURNING *"
            }
            Change::Activate => {
                "UPDATE sessions SET status = 'active', version = version + 1
                 WHERE tenant_id = $1 AND id = $2 AND expires_at > $3 AND status = 'pending_consent'
                 RETURNING *"
            }
            Change::Revoke => {
                "UPDATE sessions SET status = 'revoked', revoked_at = $3, version = version + 1
                 WHERE tenant_id = $1 AND id = $2 AND expires_at > $3 AND status <> 'revoked'
                 RETURNING *"
            }
        }
    }
}

impl PgSessionStore {
    async fn change(
        &self,
        tenant: TenantId,
        id: SessionId,
        change: Change,
    ) -> StoreResult<Session> {
        let now = self.clock.now();
        // The conditional update and the read that explains a miss are two statements: a
        // session created (or changed) between them must not be reported as in the wrong
        // state. When the read finds a state the change accepts, the update is tried again.
        for _ in 0..3 {
            let row = sqlx::query(change.sql())
                .bind(tenant.0)
                .bind(id.0)
                .bind(to_db(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
            if let Some(r) = row {
                return session(&r);
            }
            match self.live(tenant, id, now).await? {
                None => return Err(StoreError::not_found("session")),
                Some(s) if !change.accepts(s.status) => {
                    return Err(StoreError::InvalidState(format!(
                        "session is {}",
                        s.status.as_str()
                    )));
                }
                Some(_) => continue,
            }
        }
        Err(StoreError::Unavailable(
            "session changed concurrently three times; retry".into(),
        ))
    }

    async fn live(
        &self,
        tenant: TenantId,
        id: SessionId,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(
            "SELECT * FROM sessions WHERE tenant_id = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(tenant.0)
        .bind(id.0)
        .bind(to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(session).transpose()
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, new: NewSession) -> StoreResult<Session> {
        let now = self.clock.now();
        new.validate(now)?;
        let s = new.into_session(now);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Shared: creates of one user do not wait for each other, only for a revoke-all.
        locks::lock_user(
            &mut tx,
            locks::SESSIONS,
            s.tenant_id,
            s.user_id,
            locks::Mode::Shared,
        )
        .await?;
        let row = sqlx::query(
            "INSERT INTO sessions (id, tenant_id, user_id, client_id, scopes, status, user_agent, ip_address,
                                   device_id, device_name, created_at, expires_at, last_seen_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, 1)
             ON CONFLICT (id) DO UPDATE SET
                 tenant_id = EXCLUDED.tenant_id, user_id = EXCLUDED.user_id,
                 client_id = EXCLUDED.client_id, scopes = EXCLUDED.scopes, status = EXCLUDED.status,
                 user_agent = EXCLUDED.user_agent, ip_address = EXCLUDED.ip_address,
                 device_id = EXCLUDED.device_id, device_name = EXCLUDED.device_name,
                 created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
                 last_seen_at = EXCLUDED.last_seen_at, last_refreshed_at = NULL,
                 revoked_at = NULL, version = 1
             -- an expired session no longer holds its id
             WHERE sessions.expires_at <= EXCLUDED.created_at
             RETURNING *",
        )
        .bind(s.id.0)
        .bind(s.tenant_id.0)
        .bind(s.user_id.0)
        .bind(&s.client_id)
        .bind(&s.scopes)
        .bind(s.status.as_str())
        .bind(s.device.user_agent.as_deref())
        .bind(s.device.ip_address.as_deref())
        .bind(s.device.device_id.as_deref())
        .bind(s.device.device_name.as_deref())
        .bind(to_db(now))
        .bind(to_db(s.expires_at))
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        match row {
            Some(r) => session(&r),
            None => Err(StoreError::Conflict(format!(
                "session id {} already exists",
                s.id
            ))),
        }
    }

    async fn get(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>> {
        self.live(tenant, id, self.clock.now()).await
    }

    async fn touch(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, Change::Touch).await
    }

    async fn mark_refreshed(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, Change::Refresh).await
    }

    async fn activate(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, Change::Activate).await
    }

    async fn revoke(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, Change::Revoke).await
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Before the UPDATE, whose snapshot must come after every create of this user that
        // got the lock first (see `crate::locks`): "log out everywhere" never misses a session
        // committed while it waited on a row lock.
        locks::lock_user(
            &mut tx,
            locks::SESSIONS,
            tenant,
            user,
            locks::Mode::Exclusive,
        )
        .await?;
        let r = sqlx::query(
            "UPDATE sessions SET status = 'revoked', revoked_at = $3, version = version + 1
             WHERE tenant_id = $1 AND user_id = $2 AND expires_at > $3 AND status <> 'revoked'",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(to_db(now))
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn list_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<Vec<Session>> {
        let now = self.clock.now();
        let rows = sqlx::query(
            "SELECT * FROM sessions
             WHERE tenant_id = $1 AND user_id = $2 AND expires_at > $3 AND status <> 'revoked'
             ORDER BY created_at DESC, id DESC",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(to_db(now))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(session).collect()
    }

    async fn purge_expired(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let now = to_db(self.clock.now());
        let mut total = 0u64;
        for sql in [
            // The condition is repeated outside: under READ COMMITTED a row that a concurrent
            // write made live again after the inner SELECT is rechecked on its new version.
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at <= $1 LIMIT $2)
                 AND expires_at <= $1",
            "DELETE FROM revoked_tokens WHERE (tenant_id, jti) IN
                 (SELECT tenant_id, jti FROM revoked_tokens WHERE expires_at <= $1 LIMIT $2)
                 AND expires_at <= $1",
        ] {
            let budget = u64::from(limit.get()) - total;
            if budget == 0 {
                break;
            }
            let r = sqlx::query(sql)
                .bind(now)
                .bind(budget as i64)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
            total += r.rows_affected();
        }
        Ok(total)
    }

    async fn revoke_token(
        &self,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = self.clock.now();
        validate_revocation(jti, expires_at, now)?;
        sqlx::query(
            "INSERT INTO revoked_tokens (tenant_id, jti, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, jti) DO UPDATE SET expires_at =
                 CASE WHEN revoked_tokens.expires_at > $4
                      THEN GREATEST(revoked_tokens.expires_at, EXCLUDED.expires_at)
                      ELSE EXCLUDED.expires_at END",
        )
        .bind(tenant.0)
        .bind(jti)
        .bind(to_db(expires_at))
        .bind(to_db(now))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> StoreResult<bool> {
        validate_jti(jti)?;
        let hit: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM revoked_tokens WHERE tenant_id = $1 AND jti = $2 AND expires_at > $3",
        )
        .bind(tenant.0)
        .bind(jti)
        .bind(to_db(self.clock.now()))
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(hit.is_some())
    }
}
