use crate::lua::with_time_cmp;
use crate::{RedisStores, map_err};
use async_trait::async_trait;
use credo_ports::sessions::{validate_jti, validate_revocation};
use credo_ports::{
    Device, NewSession, Session, SessionId, SessionStatus, SessionStore, StoreError, StoreResult,
    TenantId, Timestamp, UserId,
};
use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{ClusterHash, CustomCommand};
use std::num::NonZeroU32;
use std::sync::LazyLock;

/// The lowest sorted-set score that can belong to a member whose expiry is after `now`: index
/// scores are doubles (about 32 µs apart near the year 9999), so ranges read a margin wide and
/// the exact comparison happens on the session's own field.
fn score_floor(now: Timestamp) -> i64 {
    now.as_micros().saturating_sub(SCORE_MARGIN_US)
}

const SCORE_MARGIN_US: i64 = 1_000;

/// How often, and how far apart, a create that found the id reserved checks whether the
/// reserving create has written its session yet (at most about 100 ms in all).
const CREATE_IN_FLIGHT_CHECKS: u32 = 20;
const CREATE_IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// Trim candidates a create reads and checks, at most.
const TRIM_PER_CREATE: i64 = 64;

/// How often `revoke_all_for_user` calls again when the index changed under it before giving
/// up with `Unavailable` (each call sees the members the previous one returned).
const REVOKE_ALL_ATTEMPTS: u32 = 16;

/// Reserves a session id across tenants while its session lives; the value is
/// `<expires>:<tenant>`. KEYS: reservation. ARGV: now, expires, tenant, ttl_ms.
/// Returns 'taken:<tenant of the live reservation>', or the tenant of the expired session it
/// replaces, or ''.
static RESERVE: LazyLock<Script> = LazyLock::new(|| with_time_cmp(include_str!("lua/reserve.lua")));

/// Writes a new session and indexes it under its user (a sorted set scored by expiry, trimmed
/// after every write so it never rots). Returns how many members expired by more than the
/// grace (by this writer's clock): the trim candidates, which the caller then reads (at most
/// [`TRIM_PER_CREATE`]) and offers to [`DROP_DANGLING`] with their session keys declared. A
/// member is trimmed only once its session key is gone: no instance's clock alone decides,
/// since one running ahead would otherwise hide live sessions from `list_for_user` and
/// `revoke_all_for_user` everywhere.
/// KEYS: session, user index. ARGV: ttl_ms, trim-before, expires, id, then field/value pairs.
static CREATE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/create.lua")));

/// One state change of a live session, check and write in one step.
/// KEYS: session. ARGV: now, op (touch | refresh | activate | revoke).
/// Returns {'nf'} (absent or expired), {'st', status} (forbidden in this state) or
/// {'ok', field, value, ...}.
static CHANGE: LazyLock<Script> = LazyLock::new(|| with_time_cmp(include_str!("lua/change.lua")));

/// Drops index members whose session is gone or now another user's, checked again inside the
/// script: a session created under the same id between a list's read and this call keeps its
/// entry. KEYS: user index, then the session key of each member. ARGV: user, then the member
/// ids (`ARGV[i]` is the member of `KEYS[i]`). Returns how many were dropped.
static DROP_DANGLING: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/drop_dangling.lua")));

/// Revokes every session of a user that is live, unrevoked and still the user's, in one
/// atomic step over the session keys the caller declares (they share the index key's hash
/// tag, `{t:<tenant>}`, so they live in its cluster slot). The script reads the index again:
/// when its members are not exactly the declared ones it writes nothing and returns them, and
/// the caller calls again with their keys.
/// KEYS: user index, then the session key of each member. ARGV: now, user, lowest index score
/// to read (a margin below now: scores are doubles, exact only below 2^53 µs), then the
/// member ids. Returns how many were revoked, or the current members.
static REVOKE_ALL: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/revoke_all.lua")));

/// Deletes the key when the timestamp in `field` (or the string value when `field` is empty)
/// is not after now. KEYS: key. ARGV: now, field. Returns 1 when deleted.
static PURGE_ONE: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/purge_one.lua")));

/// Deletes a session whose expiry is not after now. KEYS: session. ARGV: now. Returns its
/// user id when deleted, else nil.
static PURGE_SESSION: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/purge_session.lua")));

/// Drops an id reservation whose session has expired. KEYS: reservation. ARGV: now.
static RELEASE: LazyLock<Script> = LazyLock::new(|| with_time_cmp(include_str!("lua/release.lua")));

/// Revokes a token id until the later of its current (live) and new expiry.
/// KEYS: token. ARGV: now, expires, grace_ms.
static REVOKE_TOKEN: LazyLock<Script> =
    LazyLock::new(|| with_time_cmp(include_str!("lua/revoke_token.lua")));

/// Redis [`SessionStore`]: a hash per session, a per-user sorted set scored by expiry, string
/// keys for revoked token ids; expiry decided by the injected clock, with key TTLs (expiry plus
/// a grace) as the memory safety net.
pub struct RedisSessionStore {
    r: RedisStores,
}

impl RedisSessionStore {
    pub(crate) fn new(r: RedisStores) -> Self {
        Self { r }
    }

    fn session_key(&self, tenant: TenantId, id: SessionId) -> String {
        // `self.r.key(tenant, "s", &id.to_string())`, formatted in one step (a hot path).
        format!("{}:{{t:{tenant}}}:s:{id}", self.r.prefix)
    }

    fn index_key(&self, tenant: TenantId, user: UserId) -> String {
        self.r.key(tenant, "u", &user.to_string())
    }

    fn reservation_key(&self, id: SessionId) -> String {
        format!("{}:sid:{{{id}}}", self.r.prefix)
    }

    fn ttl_ms(&self, expires: Timestamp, now: Timestamp) -> i64 {
        expires.as_micros().saturating_sub(now.as_micros()).max(0) / 1000 + self.r.grace_ms.max(1)
    }

    async fn change(&self, tenant: TenantId, id: SessionId, op: &str) -> StoreResult<Session> {
        let now = self.r.clock.now();
        let reply: Value = self
            .r
            .eval(
                &CHANGE,
                vec![self.session_key(tenant, id)],
                vec![now.as_micros().to_string(), op.into()],
            )
            .await?;
        let reply = strs(&reply)?;
        match reply.first().copied() {
            Some("ok") => decode(tenant, id, Fields::new(&reply[1..])),
            Some("st") => Err(StoreError::InvalidState(format!(
                "session is {}",
                reply.get(1).copied().unwrap_or("?")
            ))),
            _ => Err(StoreError::not_found("session")),
        }
    }

    /// Offers `ids` of `user`'s index to [`DROP_DANGLING`], their session keys declared.
    async fn drop_dangling(
        &self,
        tenant: TenantId,
        user: UserId,
        index: String,
        ids: Vec<String>,
    ) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut keys = vec![index];
        keys.extend(ids.iter().map(|id| self.r.key(tenant, "s", id)));
        let mut args = vec![user.to_string()];
        args.extend(ids);
        let _: i64 = self.r.eval(&DROP_DANGLING, keys, args).await?;
        Ok(())
    }

    async fn read(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>> {
        // `HGETALL` as a custom command: the reply stays the flat `field, value, ...` array
        // (fred's `hgetall` builds a hash map of it first), and is decoded in place, borrowed.
        let reply: Value = self
            .r
            .pool
            .custom(HGETALL.clone(), vec![self.session_key(tenant, id)])
            .await
            .map_err(|e| self.r.errors.map(e))?;
        let fields = strs(&reply)?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode(tenant, id, Fields::new(&fields)).map(Some)
    }

    /// Deletes every key matching `pattern` whose timestamp (hash field or string value) has
    /// passed; returns how many.
    /// Deletes at most `limit` keys matching `pattern` whose expiry (`field` of a hash, or the
    /// string's value when empty) has passed, each rechecked by the script.
    async fn purge(
        &self,
        pattern: String,
        field: &str,
        now: Timestamp,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let now = now.as_micros().to_string();
        self.r
            .purge_scan(pattern, limit, |key| {
                let args = vec![now.clone(), field.to_string()];
                async move {
                    let gone: i64 = self.r.eval(&PURGE_ONE, vec![key.clone()], args).await?;
                    Ok((gone == 1).then_some(key))
                }
            })
            .await
    }
}

/// `HGETALL` routed by its key (the first argument) on a cluster.
static HGETALL: LazyLock<CustomCommand> =
    LazyLock::new(|| CustomCommand::new_static("HGETALL", ClusterHash::FirstKey, false));

/// A reply's strings, borrowed: the elements of an array (a map's keys and values, in RESP3),
/// a lone string, or none for nil. Anything that is not text fails as fred's conversion to
/// `Vec<String>` failed (a parse error, so `Corrupt`).
fn strs(reply: &Value) -> StoreResult<Vec<&str>> {
    fn text(v: &Value) -> StoreResult<&str> {
        match v {
            Value::String(s) => Ok(s),
            Value::Bytes(b) => std::str::from_utf8(b).map_err(|_| not_text()),
            _ => Err(not_text()),
        }
    }
    fn not_text() -> StoreError {
        map_err(fred::error::Error::new(
            fred::error::ErrorKind::Parse,
            "Could not convert to string.",
        ))
    }
    match reply {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Map(map) => map
            .iter()
            .flat_map(|(k, v)| [k.as_str().ok_or_else(not_text), text(v)])
            .collect(),
        single => Ok(vec![text(single)?]),
    }
}

/// A session hash as Redis returns it, `field, value, ...`, read in one pass: each known
/// field's value, borrowed from the reply (the first, should a name repeat).
#[derive(Default)]
struct Fields<'a> {
    user: Option<&'a str>,
    client: Option<&'a str>,
    scopes: Option<&'a str>,
    status: Option<&'a str>,
    created: Option<&'a str>,
    expires: Option<&'a str>,
    seen: Option<&'a str>,
    refreshed: Option<&'a str>,
    revoked: Option<&'a str>,
    version: Option<&'a str>,
    ua: Option<&'a str>,
    ip: Option<&'a str>,
    did: Option<&'a str>,
    dname: Option<&'a str>,
}

impl<'a> Fields<'a> {
    fn new(flat: &[&'a str]) -> Self {
        let mut f = Self::default();
        for kv in flat.chunks_exact(2) {
            let slot = match kv[0] {
                "user" => &mut f.user,
                "client" => &mut f.client,
                "scopes" => &mut f.scopes,
                "status" => &mut f.status,
                "created" => &mut f.created,
                "expires" => &mut f.expires,
                "seen" => &mut f.seen,
                "refreshed" => &mut f.refreshed,
                "revoked" => &mut f.revoked,
                "version" => &mut f.version,
                "ua" => &mut f.ua,
                "ip" => &mut f.ip,
                "did" => &mut f.did,
                "dname" => &mut f.dname,
                _ => continue,
            };
            slot.get_or_insert(kv[1]);
        }
        f
    }
}

fn ts(value: Option<&str>, name: &str) -> StoreResult<Option<Timestamp>> {
    value
        .map(|v| {
            v.parse::<i64>()
                .map(Timestamp::from_micros)
                .map_err(|_| StoreError::Corrupt(format!("session field {name}: {v:?}").into()))
        })
        .transpose()
}

fn required<T>(v: Option<T>, name: &str) -> StoreResult<T> {
    v.ok_or_else(|| StoreError::Corrupt(format!("session field {name} missing").into()))
}

fn decode(tenant: TenantId, id: SessionId, f: Fields<'_>) -> StoreResult<Session> {
    let status = match f.status {
        Some("pending_consent") => SessionStatus::PendingConsent,
        Some("active") => SessionStatus::Active,
        Some("revoked") => SessionStatus::Revoked,
        other => {
            return Err(StoreError::Corrupt(
                format!("session status {other:?}").into(),
            ));
        }
    };
    let user = required(f.user, "user")?;
    let scopes = required(f.scopes, "scopes")?;
    Ok(Session {
        id,
        tenant_id: tenant,
        user_id: UserId(
            user.parse()
                .map_err(|_| StoreError::Corrupt(format!("session user {user:?}").into()))?,
        ),
        client_id: required(f.client, "client")?.to_owned(),
        scopes: serde_json::from_str(scopes).map_err(|e| {
            StoreError::Corrupt(credo_ports::Cause::with_source(
                format!("session scopes: {e}"),
                e,
            ))
        })?,
        status,
        device: Device {
            user_agent: f.ua.map(str::to_owned),
            ip_address: f.ip.map(str::to_owned),
            device_id: f.did.map(str::to_owned),
            device_name: f.dname.map(str::to_owned),
        },
        created_at: required(ts(f.created, "created")?, "created")?,
        expires_at: required(ts(f.expires, "expires")?, "expires")?,
        last_seen_at: required(ts(f.seen, "seen")?, "seen")?,
        last_refreshed_at: ts(f.refreshed, "refreshed")?,
        revoked_at: ts(f.revoked, "revoked")?,
        version: required(f.version, "version")?
            .parse()
            .map_err(|_| StoreError::Corrupt("session version".into()))?,
    })
}

fn encode(s: &Session) -> Vec<String> {
    let micros = |t: Timestamp| t.as_micros().to_string();
    let mut v = vec![
        "user".into(),
        s.user_id.to_string(),
        "client".into(),
        s.client_id.clone(),
        "scopes".into(),
        serde_json::to_string(&s.scopes).unwrap_or_else(|_| "[]".into()),
        "status".into(),
        s.status.as_str().into(),
        "created".into(),
        micros(s.created_at),
        "expires".into(),
        micros(s.expires_at),
        "seen".into(),
        micros(s.last_seen_at),
        "version".into(),
        s.version.to_string(),
    ];
    for (name, value) in [
        ("ua", &s.device.user_agent),
        ("ip", &s.device.ip_address),
        ("did", &s.device.device_id),
        ("dname", &s.device.device_name),
    ] {
        if let Some(value) = value {
            v.push(name.into());
            v.push(value.clone());
        }
    }
    v
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn create(&self, new: NewSession) -> StoreResult<Session> {
        let now = self.r.clock.now();
        new.validate(now)?;
        let s = new.into_session(now);
        let ttl = self.ttl_ms(s.expires_at, now).to_string();
        // Creating is two steps (the id's reservation, then the session: they live in
        // different cluster slots). A reservation whose session is not written yet belongs to
        // a create in flight: answering `Conflict` before that session is visible would be an
        // answer no order of the two calls explains, so wait for it (briefly, bounded).
        let mut attempt = 0;
        let previous = loop {
            let answer: String = self
                .r
                .eval(
                    &RESERVE,
                    vec![self.reservation_key(s.id)],
                    vec![
                        now.as_micros().to_string(),
                        s.expires_at.as_micros().to_string(),
                        s.tenant_id.to_string(),
                        ttl.clone(),
                    ],
                )
                .await?;
            let Some(holder) = answer.strip_prefix("taken:") else {
                break answer;
            };
            // Visible means the holder's session is written and live: an expired session of
            // the id can still be stored (until its TTL), and is not the one being created.
            let visible = match holder.parse::<uuid::Uuid>() {
                Ok(t) => {
                    let expires: Option<String> = self
                        .r
                        .pool
                        .hget(self.session_key(TenantId(t), s.id), "expires")
                        .await
                        .map_err(|e| self.r.errors.map(e))?;
                    expires
                        .and_then(|e| e.parse::<i64>().ok())
                        .is_some_and(|e| e > now.as_micros())
                }
                Err(_) => true,
            };
            attempt += 1;
            if visible || attempt >= CREATE_IN_FLIGHT_CHECKS {
                // A reservation still without its session after the wait: its creator died
                // between the two steps; the id stays taken until that reservation expires.
                return Err(StoreError::Conflict(format!(
                    "session id {} already exists",
                    s.id
                )));
            }
            tokio::time::sleep(CREATE_IN_FLIGHT_WAIT).await;
        };
        // The expired session this one replaces lived in another tenant's slot: drop it there
        // (same tenant: the create script overwrites it).
        if let Ok(old_tenant) = previous.parse::<uuid::Uuid>().map(TenantId)
            && old_tenant != s.tenant_id
        {
            let _: i64 = self
                .r
                .pool
                .del(self.session_key(old_tenant, s.id))
                .await
                .map_err(|e| self.r.errors.map(e))?;
        }
        // Members expired by more than the grace (and the score margin) are the candidates.
        let trim_before = now
            .as_micros()
            .saturating_sub(self.r.grace_ms.saturating_mul(1000))
            .saturating_sub(SCORE_MARGIN_US);
        let index = self.index_key(s.tenant_id, s.user_id);
        let mut args = vec![
            ttl,
            trim_before.to_string(),
            s.expires_at.as_micros().to_string(),
            s.id.to_string(),
        ];
        args.extend(encode(&s));
        let candidates: i64 = self
            .r
            .eval(
                self.r.mutant.create_session(&CREATE),
                vec![self.session_key(s.tenant_id, s.id), index.clone()],
                args,
            )
            .await?;
        if candidates > 0 {
            let old: Vec<String> = self
                .r
                .pool
                .zrangebyscore(
                    &index,
                    "-inf",
                    trim_before,
                    false,
                    Some((0, TRIM_PER_CREATE)),
                )
                .await
                .map_err(|e| self.r.errors.map(e))?;
            self.drop_dangling(s.tenant_id, s.user_id, index, old)
                .await?;
        }
        Ok(s)
    }

    async fn get(&self, tenant: TenantId, id: SessionId) -> StoreResult<Option<Session>> {
        let now = self.r.clock.now();
        Ok(self.read(tenant, id).await?.filter(|s| s.is_live(now)))
    }

    async fn touch(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, "touch").await
    }

    async fn mark_refreshed(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, "refresh").await
    }

    async fn activate(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, "activate").await
    }

    async fn revoke(&self, tenant: TenantId, id: SessionId) -> StoreResult<Session> {
        self.change(tenant, id, "revoke").await
    }

    async fn revoke_all_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<u64> {
        let now = self.r.clock.now();
        let index = self.index_key(tenant, user);
        // The first call declares no member: with none indexed it is the only call.
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..REVOKE_ALL_ATTEMPTS {
            let mut keys = vec![index.clone()];
            keys.extend(ids.iter().map(|id| self.r.key(tenant, "s", id)));
            let mut args = vec![
                now.as_micros().to_string(),
                user.to_string(),
                score_floor(now).to_string(),
            ];
            args.extend(ids.iter().cloned());
            match self.r.eval::<Value>(&REVOKE_ALL, keys, args).await? {
                Value::Integer(n) => return Ok(n as u64),
                Value::Array(members) => {
                    ids = members
                        .into_iter()
                        .map(|m| {
                            m.into_string().ok_or_else(|| {
                                StoreError::Corrupt("session index member is not text".into())
                            })
                        })
                        .collect::<StoreResult<_>>()?;
                }
                other => {
                    return Err(StoreError::Corrupt(
                        format!("revoke-all script answered {other:?}").into(),
                    ));
                }
            }
        }
        Err(StoreError::Unavailable(
            format!(
                "the user's session index changed during each of {REVOKE_ALL_ATTEMPTS}                  attempts to revoke all sessions (sessions created as fast as they are                  revoked); try again"
            )
            .into(),
        ))
    }

    async fn list_for_user(&self, tenant: TenantId, user: UserId) -> StoreResult<Vec<Session>> {
        let now = self.r.clock.now();
        let index = self.index_key(tenant, user);
        let ids: Vec<String> = self
            .r
            .pool
            .zrangebyscore(&index, score_floor(now), "+inf", false, None)
            .await
            .map_err(|e| self.r.errors.map(e))?;
        let reads = ids.iter().map(|id| async move {
            let parsed = id
                .parse()
                .map(SessionId)
                .map_err(|_| StoreError::Corrupt(format!("session index member {id:?}").into()))?;
            Ok::<_, StoreError>((id, self.read(tenant, parsed).await?))
        });
        let mut out = Vec::new();
        let mut dangling = Vec::new();
        for r in futures_util::future::join_all(reads).await {
            let (id, s) = r?;
            match s {
                Some(s) if s.user_id == user && s.is_live(now) => {
                    if s.status != SessionStatus::Revoked {
                        out.push(s);
                    }
                }
                // Expired by this clock, but its key is still there: another instance's clock
                // (or this one's after a step back) may find it live, so the entry stays until
                // the key is gone (the create script trims by the same rule).
                Some(s) if s.user_id == user => {}
                // Gone, or the id now belongs to another user's session.
                _ => dangling.push(id.clone()),
            }
        }
        self.drop_dangling(tenant, user, index, dangling).await?;
        out.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
        Ok(out)
    }

    async fn purge_expired(&self, limit: NonZeroU32) -> StoreResult<u64> {
        let now = self.r.clock.now();
        let limit = limit.get() as usize;
        let now_arg = now.as_micros().to_string();
        let sessions: Vec<(String, String)> = self
            .r
            .purge_scan(format!("{}:{{t:*}}:s:*", self.r.prefix), limit, |key| {
                let args = vec![now_arg.clone()];
                async move {
                    let user: Option<String> =
                        self.r.eval(&PURGE_SESSION, vec![key.clone()], args).await?;
                    Ok(user.map(|u| (key, u)))
                }
            })
            .await?;
        for (key, user) in &sessions {
            // `{prefix}:{t:<tenant>}:s:<id>`: the part before `:s:` also prefixes the tenant's
            // user indexes (`...:u:<user>`).
            let Some((tenant_part, id)) = key.rsplit_once(":s:") else {
                continue;
            };
            // The user's index drops the id now, not when its own TTL ends.
            let _: i64 = self
                .r
                .eval(
                    &DROP_DANGLING,
                    vec![format!("{tenant_part}:u:{user}"), key.clone()],
                    vec![user.clone(), id.to_string()],
                )
                .await?;
            // A purged session's id is free again, even for a clock that later reads earlier.
            if let Ok(id) = id.parse() {
                let _: i64 = self
                    .r
                    .eval(
                        &RELEASE,
                        vec![self.reservation_key(SessionId(id))],
                        vec![now_arg.clone()],
                    )
                    .await?;
            }
        }
        let tokens = self
            .purge(
                format!("{}:{{t:*}}:jti:*", self.r.prefix),
                "",
                now,
                limit - sessions.len(),
            )
            .await?;
        Ok((sessions.len() + tokens.len()) as u64)
    }

    async fn revoke_token(
        &self,
        tenant: TenantId,
        jti: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = self.r.clock.now();
        validate_revocation(jti, expires_at, now)?;
        let _: i64 = self
            .r
            .eval(
                &REVOKE_TOKEN,
                vec![self.r.key(tenant, "jti", jti)],
                vec![
                    now.as_micros().to_string(),
                    expires_at.as_micros().to_string(),
                    self.r.grace_ms.max(1).to_string(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn is_token_revoked(&self, tenant: TenantId, jti: &str) -> StoreResult<bool> {
        validate_jti(jti)?;
        let now = self.r.clock.now();
        let v: Option<String> = self
            .r
            .pool
            .get(self.r.key(tenant, "jti", jti))
            .await
            .map_err(|e| self.r.errors.map(e))?;
        Ok(v.and_then(|v| v.parse::<i64>().ok())
            .is_some_and(|exp| exp > now.as_micros()))
    }
}
