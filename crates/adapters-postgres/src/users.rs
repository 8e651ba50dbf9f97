use crate::map_err;
use crate::outbox::enqueue;
use crate::time::{bad_enum, from_db, to_db};
use async_trait::async_trait;
use credo_ports::audit::events;
use credo_ports::page::{Page, PageRequest};
use credo_ports::{
    Clock, NewUser, StoreError, StoreResult, TenantId, User, UserId, UserStatus, UserStore,
    UserUpdate, validate,
};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use std::sync::Arc;

/// PostgreSQL [`UserStore`]. Email uniqueness is a unique index on `(tenant_id, email_key)`,
/// with the key folded in Rust so every backend folds case the same way.
pub struct PgUserStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl PgUserStore {
    pub(crate) fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn status(s: &str) -> StoreResult<UserStatus> {
    match s {
        "active" => Ok(UserStatus::Active),
        "inactive" => Ok(UserStatus::Inactive),
        other => Err(bad_enum("users.status", other)),
    }
}

fn user(r: &PgRow) -> StoreResult<User> {
    let st: String = r.try_get("status").map_err(map_err)?;
    Ok(User {
        id: UserId(r.try_get("id").map_err(map_err)?),
        tenant_id: TenantId(r.try_get("tenant_id").map_err(map_err)?),
        email: r.try_get("email").map_err(map_err)?,
        email_verified: r.try_get("email_verified").map_err(map_err)?,
        first_name: r.try_get("first_name").map_err(map_err)?,
        last_name: r.try_get("last_name").map_err(map_err)?,
        status: status(&st)?,
        created_at: from_db(r.try_get("created_at").map_err(map_err)?),
        updated_at: from_db(r.try_get("updated_at").map_err(map_err)?),
        version: r.try_get::<i64, _>("version").map_err(map_err)? as u64,
    })
}

/// `INSERT ... RETURNING` of a new user; `ON CONFLICT` on the email key when `or_nothing`.
async fn insert(
    conn: &mut sqlx::PgConnection,
    u: &User,
    or_nothing: bool,
) -> StoreResult<Option<User>> {
    let sql = if or_nothing {
        "INSERT INTO users (id, tenant_id, email, email_key, email_verified, first_name, last_name, status, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)
         ON CONFLICT DO NOTHING
         RETURNING id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version"
    } else {
        "INSERT INTO users (id, tenant_id, email, email_key, email_verified, first_name, last_name, status, created_at, updated_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1)
         RETURNING id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version"
    };
    let row = sqlx::query(sql)
        .bind(u.id.0)
        .bind(u.tenant_id.0)
        .bind(&u.email)
        .bind(validate::email_key(&u.email))
        .bind(u.email_verified)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(u.status.as_str())
        .bind(to_db(u.created_at))
        .fetch_optional(conn)
        .await
        .map_err(map_err)?;
    row.as_ref().map(user).transpose()
}

impl PgUserStore {
    async fn by_email(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant: TenantId,
        email: &str,
    ) -> StoreResult<Option<User>> {
        let sql = "SELECT id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version
                   FROM users WHERE tenant_id = $1 AND email_key = $2";
        let row = sqlx::query(sql)
            .bind(tenant.0)
            .bind(validate::email_key(email))
            .fetch_optional(conn)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }
}

#[async_trait]
impl UserStore for PgUserStore {
    async fn create(&self, new: NewUser) -> StoreResult<User> {
        new.validate()?;
        let now = self.clock.now();
        let u = new.into_user(now);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let created = insert(&mut tx, &u, false)
            .await?
            .ok_or_else(|| StoreError::Corrupt("insert returned no row".into()))?;
        enqueue(&mut tx, &events::user_created(&created, now), now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(created)
    }

    async fn get(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<User>> {
        let sql = "SELECT id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version
                   FROM users WHERE tenant_id = $1 AND id = $2";
        let row = sqlx::query(sql)
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user).transpose()
    }

    async fn find_by_email(&self, tenant: TenantId, email: &str) -> StoreResult<Option<User>> {
        validate::email(email)?;
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        self.by_email(&mut conn, tenant, email).await
    }

    async fn find_or_create(&self, new: NewUser) -> StoreResult<(User, bool)> {
        new.validate()?;
        let now = self.clock.now();
        let u = new.into_user(now);
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The insert does nothing on any unique conflict (email or id): a concurrent creator of
        // the same email or id makes it wait for that commit. The selects that follow (new
        // snapshots) then tell which: the email's user is returned; an id held by another
        // email is a conflict; a row gone meanwhile (deleted) means trying again.
        for _ in 0..3 {
            if let Some(created) = insert(&mut tx, &u, true).await? {
                enqueue(&mut tx, &events::user_created(&created, now), now).await?;
                tx.commit().await.map_err(map_err)?;
                return Ok((created, true));
            }
            if let Some(existing) = self.by_email(&mut tx, u.tenant_id, &u.email).await? {
                tx.commit().await.map_err(map_err)?;
                return Ok((existing, false));
            }
            let id_taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1")
                .bind(u.id.0)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if id_taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "user id {} already exists",
                    u.id
                )));
            }
        }
        Err(StoreError::Unavailable(
            "user created and deleted concurrently three times during find_or_create; retry".into(),
        ))
    }

    async fn update(
        &self,
        tenant: TenantId,
        id: UserId,
        update: UserUpdate,
        expected_version: Option<u64>,
    ) -> StoreResult<User> {
        update.validate()?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let sql = "SELECT id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version
                   FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE";
        let row = sqlx::query(sql)
            .bind(tenant.0)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut u = row
            .as_ref()
            .map(user)
            .transpose()?
            .ok_or(StoreError::not_found("user"))?;
        if let Some(v) = expected_version.filter(|v| *v != u.version) {
            return Err(StoreError::Conflict(format!(
                "version mismatch: expected {v}, found {}",
                u.version
            )));
        }
        update.apply(&mut u, now);
        let r = sqlx::query(
            "UPDATE users SET email = $3, email_key = $4, email_verified = $5, first_name = $6,
                 last_name = $7, status = $8, updated_at = $9, version = $10
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .bind(&u.email)
        .bind(validate::email_key(&u.email))
        .bind(u.email_verified)
        .bind(&u.first_name)
        .bind(&u.last_name)
        .bind(u.status.as_str())
        .bind(to_db(u.updated_at))
        .bind(u.version as i64)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if r.rows_affected() != 1 {
            return Err(StoreError::not_found("user"));
        }
        enqueue(
            &mut tx,
            &events::user_updated(&u, &update.changed_fields(), now),
            now,
        )
        .await?;
        tx.commit().await.map_err(map_err)?;
        Ok(u)
    }

    async fn delete(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
        let now = self.clock.now();
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let r = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if r.rows_affected() == 0 {
            return Err(StoreError::not_found("user"));
        }
        enqueue(&mut tx, &events::user_deleted(tenant, id, now), now).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn list(&self, tenant: TenantId, page: PageRequest) -> StoreResult<Page<User>> {
        page.validate()?;
        let (after_at, after_id) = match page.after {
            Some(c) => (Some(to_db(c.at)), Some(c.id)),
            None => (None, None),
        };
        let sql = "SELECT id, tenant_id, email, email_verified, first_name, last_name, status, created_at, updated_at, version
                   FROM users
                   WHERE tenant_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3::uuid))
                   ORDER BY created_at, id LIMIT $4";
        let rows = sqlx::query(sql)
            .bind(tenant.0)
            .bind(after_at)
            .bind(after_id)
            .bind(page.limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows.iter().map(user).collect::<StoreResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, User::cursor))
    }

    async fn count(&self, tenant: TenantId) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE tenant_id = $1")
            .bind(tenant.0)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }
}

/// What [`rekey_emails`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rekeyed {
    /// Keys rewritten to the email policy's form.
    pub(crate) updated: u64,
    /// Users left with their old key because another user of the tenant holds the address
    /// under the policy (to be resolved by an operator; ids in the log).
    pub(crate) collisions: u64,
}

/// After migration 0004: recomputes the email key of every user whose address is not ASCII
/// (ASCII keys are the same under both rules), once, oldest users first. A user whose new key
/// another user of the tenant already holds keeps the old key and is logged by id (never by
/// address).
pub(crate) async fn rekey_emails(conn: &mut sqlx::PgConnection) -> StoreResult<Rekeyed> {
    let pending: bool = sqlx::query_scalar("SELECT to_regclass('email_rekey_pending') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    let mut done = Rekeyed::default();
    if !pending {
        return Ok(done);
    }
    let rows: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(
        "SELECT id, email, email_key FROM users WHERE octet_length(email) <> char_length(email)
         ORDER BY created_at, id",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    for (id, email, old) in rows {
        let new = validate::email_key(&email);
        if new == old {
            continue;
        }
        // Only if the row is still what was read: an instance of the previous release may
        // change an email meanwhile (its own key then stands until the next change).
        let r = sqlx::query(
            "UPDATE users SET email_key = $2 WHERE id = $1 AND email = $3 AND email_key = $4",
        )
        .bind(id)
        .bind(&new)
        .bind(&email)
        .bind(&old)
        .execute(&mut *conn)
        .await
        .map_err(map_err);
        match r {
            // 0 rows: changed meanwhile, so not ours to count.
            Ok(r) => done.updated += r.rows_affected(),
            Err(e) if e.kind() == "Conflict" => {
                done.collisions += 1;
                tracing::warn!(user = %id, "email key left as it was: another user of the tenant has this address under the email policy; merge or change one of them");
            }
            Err(e) => return Err(e),
        }
    }
    sqlx::query("DROP TABLE email_rekey_pending")
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    tracing::info!(
        updated = done.updated,
        collisions = done.collisions,
        "email keys recomputed under the email policy"
    );
    Ok(done)
}
