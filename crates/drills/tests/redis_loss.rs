//! Redis loss drill: sessions, revoked tokens and rate-limit state written through the ports
//! to a Redis of the drill's own; Redis killed with SIGKILL and started again on the same
//! directory; what survived counted. With the documented persistence (AOF, `appendfsync
//! everysec`) everything acknowledged survives the process's death; without persistence
//! nothing does, which is what the runbook's consequences describe.

use credo_adapters_redis::{RedisConfig, RedisStores, TimeSource};
use credo_ports::{
    Device, ManualClock, NewSession, RateLimitPolicy, SessionId, SessionStatus, TenantId,
    Timestamp, UserId,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POLICY: RateLimitPolicy = RateLimitPolicy {
    limit: 10,
    period: Duration::from_secs(3600),
    burst: 10,
};

struct Redis {
    dir: PathBuf,
    port: u16,
    persistence: &'static [&'static str],
    child: Option<Child>,
}

impl Redis {
    fn start(persistence: &'static [&'static str]) -> Option<Self> {
        if credo_testkit::system::which("redis-server").is_none() {
            return credo_testkit::skip(
                "redis-server is not installed (cargo xtask drill installs it)",
            );
        }
        let port = credo_testkit::free_port();
        let dir =
            std::env::temp_dir().join(format!("credo-redis-drill-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            dir,
            port,
            persistence,
            child: None,
        };
        r.spawn();
        Some(r)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--maxmemory-policy", "noeviction", "--save", ""])
            .args(self.persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as the OOM killer or a lost container would.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(url: &str, clock: Arc<ManualClock>) -> RedisStores {
    let mut c = RedisConfig::new(url);
    c.key_prefix = "drill".into();
    c.rate_limit_time = TimeSource::Clock;
    RedisStores::connect(&c, clock).await.unwrap()
}

/// What survived of `n` sessions, `n` revocations and `n` rate-limit keys (each checked
/// down by 3), as counts.
#[derive(Debug, PartialEq, Eq)]
struct Survived {
    sessions: usize,
    revocations: usize,
    rate_limits: usize,
}

async fn drill(persistence: &'static [&'static str], n: usize) -> Option<(Survived, Duration)> {
    let mut redis = Redis::start(persistence)?;
    let now = Timestamp::from_secs(1_800_000_000);
    let clock = Arc::new(ManualClock::new(now));
    let stores = connect(&redis.url(), clock.clone()).await;
    let tenant = TenantId::new();
    let mut sessions = Vec::new();
    for i in 0..n {
        let s = stores
            .sessions()
            .create(NewSession {
                id: SessionId::new(),
                tenant_id: tenant,
                user_id: UserId::new(),
                client_id: "drill".into(),
                scopes: vec!["openid".into()],
                status: SessionStatus::Active,
                device: Device::default(),
                expires_at: now.saturating_add(Duration::from_secs(86_400)),
            })
            .await
            .unwrap();
        sessions.push(s.id);
        stores
            .sessions()
            .revoke_token(
                tenant,
                &format!("jti-{i}"),
                now.saturating_add(Duration::from_secs(86_400)),
            )
            .await
            .unwrap();
        stores
            .rate_limits()
            .check(tenant, &format!("login:{i}"), POLICY, 3)
            .await
            .unwrap();
    }
    // Killed right after the last acknowledgement: no time for a background fsync.
    redis.kill();
    let started = Instant::now();
    redis.spawn();
    let stores = connect(&redis.url(), clock).await;
    let restarted = started.elapsed();
    // A key that lost its state reads like one never used.
    let fresh = stores
        .rate_limits()
        .peek(tenant, "login:never-used", POLICY)
        .await
        .unwrap();
    let mut survived = Survived {
        sessions: 0,
        revocations: 0,
        rate_limits: 0,
    };
    for (i, id) in sessions.iter().enumerate() {
        if stores.sessions().get(tenant, *id).await.unwrap().is_some() {
            survived.sessions += 1;
        }
        if stores
            .sessions()
            .is_token_revoked(tenant, &format!("jti-{i}"))
            .await
            .unwrap()
        {
            survived.revocations += 1;
        }
        let d = stores
            .rate_limits()
            .peek(tenant, &format!("login:{i}"), POLICY)
            .await
            .unwrap();
        if d.remaining != fresh.remaining {
            survived.rate_limits += 1;
        }
    }
    assert!(redis.dir().exists());
    Some((survived, restarted))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_keeps_every_acknowledged_write_across_a_sigkill_and_no_persistence_keeps_none() {
    let n = 500;
    let Some((aof, aof_restart)) =
        drill(&["--appendonly", "yes", "--appendfsync", "everysec"], n).await
    else {
        return;
    };
    let Some((none, none_restart)) = drill(&["--appendonly", "no"], n).await else {
        return;
    };
    println!(
        "Redis loss drill ({n} sessions, {n} revoked tokens, {n} rate-limit keys; SIGKILL right after the last write):"
    );
    println!(
        "  AOF, appendfsync everysec: survived {aof:?} (restart and reconnect {aof_restart:.2?})"
    );
    println!(
        "  no persistence:            survived {none:?} (restart and reconnect {none_restart:.2?})"
    );
    let all = Survived {
        sessions: n,
        revocations: n,
        rate_limits: n,
    };
    assert_eq!(
        aof, all,
        "AOF must keep every acknowledged write when only the process dies"
    );
    assert_eq!(
        none,
        Survived {
            sessions: 0,
            revocations: 0,
            rate_limits: 0
        },
        "without persistence a restart starts empty"
    );
}
