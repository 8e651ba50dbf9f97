use crate::outbox::enqueue;
use crate::time::{from_db, from_db_opt, to_db};
use crate::{locks, map_err};
use async_trait::async_trait;
use credo_ports::audit::events;
use credo_ports::{
    Clock, Consent, ConsentFilter, ConsentId, ConsentStatus, ConsentStore, GrantConsent,
    StoreError, StoreResult, TenantId, Timestamp, UserId, validate,
};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use std::sync::Arc;

/// PostgreSQL [`ConsentStore`]. Each change and its audit event (an outbox row) commit in one
/// transaction; the record is locked with `FOR UPDATE` while its status is decided.
pub struct PgConsentStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgConsentStore {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn consent(r: &PgRow) -> StoreResult<Consent> {
    Ok(Consent {
        id: ConsentId(r.try_get("id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(map_err)?),
        user_id: UserId(r.try_get("user_id").map_err(map_err)?),
        purpose: r.try_get("purpose").map_err(map_err)?,
        granted_at: from_db(r.try_get("granted_at").map_err(map_err)?),
        expires_at: from_db_opt(r.try_get("expires_at").map_err(map_err)?),
        revoked_at: from_db_opt(r.try_get("revoked_at").map_err(map_err)?),
        version: r.try_get::<i64, _>("version").map_err(map_err)? as u64,
    })
}

/// Serializes every consent write of one user (see [`crate::locks`]): without it `revoke_all`
/// or `delete_all` could act on a state that never existed, and two first grants of one
/// purpose would race on two unique keys (purpose and id).
async fn lock_user(conn: &mut PgConnection, tenant: TenantId, user: UserId) -> StoreResult<()> {
    locks::lock_user(conn, locks::CONSENTS, tenant, user, locks::Mode::Exclusive).await
}

async fn locked_for_user(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> StoreResult<Vec<Consent>> {
    let rows = sqlx::query(
        "SELECT id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version FROM consents
         WHERE tenant_id = $1 AND user_id = $2 ORDER BY purpose FOR UPDATE",
    )
    .bind(tenant.0)
    .bind(user.0)
    .fetch_all(conn)
    .await
    .map_err(map_err)?;
    rows.iter().map(consent).collect()
}

async fn mark_revoked(conn: &mut PgConnection, c: &mut Consent, now: Timestamp) -> StoreResult<()> {
    c.revoked_at = Some(now);
    c.version += 1;
    sqlx::query("UPDATE consents SET revoked_at = $2, version = $3 WHERE id = $1")
        .bind(c.id.0)
        .bind(to_db(now))
        .bind(c.version as i64)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    enqueue(conn, &events::consent_revoked(c, now), now).await
}

impl PgConsentStore {
    async fn grant_once(&self, grant: &GrantConsent, now: Timestamp) -> StoreResult<Consent> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_user(&mut tx, grant.tenant_id, grant.user_id).await?;
        let row = sqlx::query(
            "INSERT INTO consents (id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 1)
             ON CONFLICT (tenant_id, user_id, purpose) DO UPDATE
                 SET granted_at = EXCLUDED.granted_at, expires_at = EXCLUDED.expires_at,
                     revoked_at = NULL, version = consents.version + 1
             RETURNING id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version",
        )
        .bind(grant.id.0)
        .bind(grant.tenant_id.0)
        .bind(grant.user_id.0)
        .bind(&grant.purpose)
        .bind(to_db(now))
        .bind(grant.expires_at.map(to_db))
        .fetch_one(&mut *tx)
        .await
        .map_err(map_err)?;
        let c = consent(&row)?;
        enqueue(&mut tx, &events::consent_granted(&c, now), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(c)
    }
}

#[async_trait]
impl ConsentStore for PgConsentStore {
    async fn grant(&self, grant: GrantConsent) -> StoreResult<Consent> {
        let now = self.clock.now();
        grant.validate(now)?;
        self.grant_once(&grant, now).await
    }

    async fn revoke(&self, tenant: TenantId, user: UserId, purpose: &str) -> StoreResult<Consent> {
        validate::purpose(purpose)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let row = sqlx::query(
            "SELECT id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version FROM consents
             WHERE tenant_id = $1 AND user_id = $2 AND purpose = $3 FOR UPDATE",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(purpose)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut c = row
            .as_ref()
            .map(consent)
            .transpose()?
            .ok_or(StoreError::not_found("consent"))?;
        if c.status(now) != ConsentStatus::Active {
            return Err(StoreError::InvalidState("consent is not active".into()));
        }
        mark_revoked(&mut tx, &mut c, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(c)
    }

    async fn get(
        &self,
        tenant: TenantId,
        user: UserId,
        purpose: &str,
    ) -> StoreResult<Option<Consent>> {
        validate::purpose(purpose)?;
        let row = sqlx::query(
            "SELECT id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version FROM consents
             WHERE tenant_id = $1 AND user_id = $2 AND purpose = $3",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(purpose)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(consent).transpose()
    }

    async fn list_for_user(
        &self,
        tenant: TenantId,
        user: UserId,
        filter: ConsentFilter,
    ) -> StoreResult<Vec<Consent>> {
        if let Some(p) = &filter.purpose {
            validate::purpose(p)?;
        }
        let now = self.clock.now();
        let rows = sqlx::query(
            "SELECT id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version FROM consents
             WHERE tenant_id = $1 AND user_id = $2 AND ($3::text IS NULL OR purpose = $3)
             ORDER BY purpose",
        )
        .bind(tenant.0)
        .bind(user.0)
        .bind(filter.purpose.as_deref())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        // Status is derived at `now` (store clock), so it is filtered here, not in SQL.
        let all = rows.iter().map(consent).collect::<StoreResult<Vec<_>>>()?;
        Ok(all
            .into_iter()
            .filter(|c| filter.status.is_none_or(|s| c.status(now) == s))
            .collect())
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_user(&mut tx, tenant, user).await?;
        let mut n = 0;
        for mut c in locked_for_user(&mut tx, tenant, user).await? {
            if c.status(now) == ConsentStatus::Active {
                mark_revoked(&mut tx, &mut c, now).await?;
                n += 1;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn delete_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_user(&mut tx, tenant, user).await?;
        // The statement deletes and returns exactly the rows it removed, and audits those.
        let rows = sqlx::query(
            "DELETE FROM consents WHERE tenant_id = $1 AND user_id = $2
             RETURNING id, tenant_id, user_id, purpose, granted_at, expires_at, revoked_at, version",
        )
        .bind(tenant.0)
        .bind(user.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        let mut all = rows.iter().map(consent).collect::<StoreResult<Vec<_>>>()?;
        all.sort_by(|a, b| a.purpose.cmp(&b.purpose));
        for c in &all {
            enqueue(&mut tx, &events::consent_deleted(c, now), now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(all.len() as u64)
    }
}
