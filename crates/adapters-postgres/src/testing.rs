//! Operations for tests only, behind the `test-support` feature that production builds never
//! enable: emptying or dropping a test schema, writing a raw outbox row, injecting an outbox
//! fault.

use crate::{PgStores, map_err, outbox};
use credo_ports::{Clock, EncodedEvent, StoreError, StoreResult};

/// The statement the audit log's `query` runs, for plan tests (`EXPLAIN`).
pub const AUDIT_QUERY_SQL: &str = crate::audit::QUERY_SQL;

impl PgStores {
    /// Creates the `NOLOGIN` role `role` unless it exists (roles are the server's: test
    /// processes that race to create it all succeed).
    pub async fn create_role_if_missing(&self, role: &str) -> StoreResult<()> {
        if !crate::config::valid_identifier(role) {
            return Err(StoreError::invalid("role", "not a plain identifier"));
        }
        let sql = format!(
            "DO $$ BEGIN CREATE ROLE {role} NOLOGIN;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Creates the login role `role` with `password` (any characters) and grants it the
    /// application role's privileges ([`grant_app_role`](Self::grant_app_role)): a service's
    /// least-privileged login. Remove it with [`drop_login`](Self::drop_login).
    pub async fn create_app_login(&self, role: &str, password: &str) -> StoreResult<()> {
        if !crate::config::valid_identifier(role) {
            return Err(StoreError::invalid("role", "not a plain identifier"));
        }
        let sql = format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{}'",
            password.replace('\'', "''")
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        self.grant_app_role(role).await
    }

    /// Drops `role` (a login or not) and what it was granted or owns in this database (test
    /// clean-up).
    pub async fn drop_login(&self, role: &str) -> StoreResult<()> {
        if !crate::config::valid_identifier(role) {
            return Err(StoreError::invalid("role", "not a plain identifier"));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP OWNED BY {role}; DROP ROLE {role}"
        )))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Drops the configured schema and everything in it (test clean-up).
    pub async fn drop_schema(&self) -> StoreResult<()> {
        let Some(schema) = &self.schema else {
            return Err(StoreError::InvalidState("no schema configured".into()));
        };
        let ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Deletes every row of every table of this backend (test isolation between cases that
    /// reuse one schema). Never called by the stores themselves.
    pub async fn clear_all_tables(&self) -> StoreResult<()> {
        sqlx::raw_sql(
            "DELETE FROM users; DELETE FROM sessions; DELETE FROM revoked_tokens; DELETE FROM consents;
             DELETE FROM audit_events; DELETE FROM outbox; DELETE FROM rate_limits;
             DELETE FROM maintenance_leases;",
        )
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    /// Inserts an outbox row as given, as another program (an older or newer version, or
    /// damage) could have left it. For tests of the pipeline's handling of such rows.
    pub async fn enqueue_raw(&self, message: &EncodedEvent) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        outbox::insert(&mut conn, message, self.clock.now()).await
    }
    /// While `on`, every insert into the outbox fails (a trigger raising SQLSTATE 53100,
    /// `disk_full`), and with it every change that records an event. For the conformance case
    /// that proves a change and its event commit together or not at all.
    pub async fn fail_outbox_writes(&self, on: bool) -> StoreResult<()> {
        let statements: &[&'static str] = if on {
            &[
                "CREATE OR REPLACE FUNCTION credo_test_fail_outbox() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION \
                 'outbox writes are failing (injected fault)' USING ERRCODE = '53100'; END $$",
                "DROP TRIGGER IF EXISTS credo_test_fail_outbox ON outbox",
                "CREATE TRIGGER credo_test_fail_outbox BEFORE INSERT ON outbox \
                 FOR EACH ROW EXECUTE FUNCTION credo_test_fail_outbox()",
            ]
        } else {
            &["DROP TRIGGER IF EXISTS credo_test_fail_outbox ON outbox"]
        };
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        for &sql in statements {
            sqlx::query(sql)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}
