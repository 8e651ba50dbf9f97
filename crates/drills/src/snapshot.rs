//! A workload written through the ports, and the state read back through them.

use credo_adapters_postgres::PgStores;
use credo_ports::{
    AuditCategory, AuditEvent, AuditQuery, Consent, ConsentFilter, ConsentId, Decision, Device,
    GrantConsent, NewSession, NewUser, PageRequest, RateLimitPolicy, Session, SessionId,
    SessionStatus, StoreResult, TenantId, Timestamp, User, UserId,
};
use std::time::Duration;

/// The rate-limit policy of the workload (checks are read back with `peek`).
pub const POLICY: RateLimitPolicy = RateLimitPolicy {
    limit: 100,
    period: Duration::from_secs(3600),
    burst: 100,
};

/// What a workload wrote, so that its state can be read back: the users per tenant, the
/// revoked token ids and the rate-limit keys.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    tenants: Vec<TenantId>,
    /// `(tenant, user)` of every user written, in order.
    pub users: Vec<(TenantId, UserId)>,
    jtis: Vec<(TenantId, String)>,
    keys: Vec<(TenantId, String)>,
}

impl Workload {
    /// A workload over `tenants` new tenants.
    #[must_use]
    pub fn new(tenants: usize) -> Self {
        Self {
            tenants: (0..tenants).map(|_| TenantId::new()).collect(),
            ..Self::default()
        }
    }

    /// Writes `n` users (spread over the tenants), each with a consent, a session, a revoked
    /// token, a rate-limit check and an audit event in the log; every user and consent change
    /// also leaves a pending outbox row. Each call is committed on return. Returns the users
    /// written, in order.
    pub async fn write(
        &mut self,
        stores: &PgStores,
        n: usize,
        now: Timestamp,
    ) -> StoreResult<Vec<UserId>> {
        let mut written = Vec::with_capacity(n);
        for i in 0..n {
            let tenant = self.tenants[(self.users.len() + i) % self.tenants.len()];
            let email = format!("drill-{}@example.com", UserId::new());
            let user = stores
                .users()
                .create(NewUser::new(tenant, &email, "Drill", "User"))
                .await?;
            stores
                .consents()
                .grant(GrantConsent {
                    id: ConsentId::new(),
                    tenant_id: tenant,
                    user_id: user.id,
                    purpose: "analytics".into(),
                    expires_at: None,
                })
                .await?;
            stores
                .sessions()
                .create(NewSession {
                    id: SessionId::new(),
                    tenant_id: tenant,
                    user_id: user.id,
                    client_id: "drill".into(),
                    scopes: vec!["openid".into()],
                    status: SessionStatus::Active,
                    device: Device::default(),
                    expires_at: now.saturating_add(Duration::from_secs(86_400)),
                })
                .await?;
            let jti = format!("jti-{}", user.id);
            stores
                .sessions()
                .revoke_token(
                    tenant,
                    &jti,
                    now.saturating_add(Duration::from_secs(86_400)),
                )
                .await?;
            let key = format!("login:{}", user.id);
            stores.rate_limits().check(tenant, &key, POLICY, 3).await?;
            let mut event = AuditEvent::new(tenant, now, AuditCategory::Security, "auth.login");
            event.subject_user_id = Some(user.id);
            stores.audit_log().append_batch(&[event]).await?;
            self.users.push((tenant, user.id));
            self.jtis.push((tenant, jti));
            self.keys.push((tenant, key));
            written.push(user.id);
        }
        Ok(written)
    }
}

/// Everything a [`Workload`] wrote, read back through the ports.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Every user of the workload's tenants.
    pub users: Vec<User>,
    /// Every consent of those users.
    pub consents: Vec<Consent>,
    /// Every session of those users.
    pub sessions: Vec<Session>,
    /// Whether each revoked token id reads as revoked.
    pub revoked: Vec<bool>,
    /// Each rate-limit key's state (`peek`).
    pub rate_limits: Vec<Decision>,
    /// Every audit event of the tenants in the log.
    pub audit: Vec<AuditEvent>,
    /// Pending outbox rows.
    pub outbox_depth: u64,
}

impl Snapshot {
    /// Reads the state of `workload` from `stores`.
    pub async fn read(stores: &PgStores, workload: &Workload) -> StoreResult<Self> {
        let mut users = Vec::new();
        let mut audit = Vec::new();
        for &tenant in &workload.tenants {
            let mut page = PageRequest::first(500);
            loop {
                let p = stores.users().list(tenant, page).await?;
                users.extend(p.items);
                match p.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
            let mut page = PageRequest::first(500);
            loop {
                let p = stores
                    .audit_log()
                    .query(tenant, AuditQuery::default(), page)
                    .await?;
                audit.extend(p.items);
                match p.next {
                    Some(next) => page.after = Some(next),
                    None => break,
                }
            }
        }
        let (mut consents, mut sessions) = (Vec::new(), Vec::new());
        for u in &users {
            consents.extend(
                stores
                    .consents()
                    .list_for_user(u.tenant_id, u.id, ConsentFilter::default())
                    .await?,
            );
            sessions.extend(stores.sessions().list_for_user(u.tenant_id, u.id).await?);
        }
        let mut revoked = Vec::new();
        for (tenant, jti) in &workload.jtis {
            revoked.push(stores.sessions().is_token_revoked(*tenant, jti).await?);
        }
        let mut rate_limits = Vec::new();
        for (tenant, key) in &workload.keys {
            rate_limits.push(stores.rate_limits().peek(*tenant, key, POLICY).await?);
        }
        Ok(Self {
            users,
            consents,
            sessions,
            revoked,
            rate_limits,
            audit,
            outbox_depth: stores.outbox().depth().await?,
        })
    }

    /// Rows read (users, consents, sessions, revocations, rate-limit keys, audit events,
    /// outbox rows).
    #[must_use]
    pub fn rows(&self) -> u64 {
        (self.users.len()
            + self.consents.len()
            + self.sessions.len()
            + self.revoked.len()
            + self.rate_limits.len()
            + self.audit.len()) as u64
            + self.outbox_depth
    }

    /// What differs from `other`, one line per part (empty when equal).
    #[must_use]
    pub fn differences(&self, other: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        let mut part = |name: &str, equal: bool, a: usize, b: usize| {
            if !equal {
                out.push(format!("{name}: {a} here, {b} there (or contents differ)"));
            }
        };
        part(
            "users",
            self.users == other.users,
            self.users.len(),
            other.users.len(),
        );
        part(
            "consents",
            self.consents == other.consents,
            self.consents.len(),
            other.consents.len(),
        );
        part(
            "sessions",
            self.sessions == other.sessions,
            self.sessions.len(),
            other.sessions.len(),
        );
        part(
            "revoked tokens",
            self.revoked == other.revoked,
            self.revoked.len(),
            other.revoked.len(),
        );
        part(
            "rate limits",
            self.rate_limits == other.rate_limits,
            self.rate_limits.len(),
            other.rate_limits.len(),
        );
        part(
            "audit log",
            self.audit == other.audit,
            self.audit.len(),
            other.audit.len(),
        );
        part(
            "outbox depth",
            self.outbox_depth == other.outbox_depth,
            self.outbox_depth as usize,
            other.outbox_depth as usize,
        );
        out
    }
}
