//! PostgreSQL: a cluster of its own (`initdb`, `pg_ctl`), run as the `postgres` user when we are
//! root, with the `credo` database created with the ICU `en-US` collation.

use super::process::{run_captured, short_hash, tail_of_file};
use super::{Server, Service, Services, Up};
use credo_testkit::system::pg_bin;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PG_PASSWORD: &str = "credo";

pub(super) struct Postgres;

impl Server for Postgres {
    fn up(&self, services: &Services) -> Result<Up, String> {
        services.pg_up_now()
    }

    fn stop(&self, services: &Services, _pid: u32) -> Result<(), String> {
        let layout = services.pg_layout();
        let bin = pg_bin(Some(&layout.data)).ok_or("no PostgreSQL binaries (pg_ctl)")?;
        run_captured(
            services
                .as_pg_user(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&layout.data)
                .args(["-m", "fast", "-w", "-t", "60", "-s", "stop"]),
            "pg_ctl stop",
        )?;
        Ok(())
    }

    fn pid_file(&self, services: &Services) -> PathBuf {
        services.pg_layout().data.join("postmaster.pid")
    }

    fn marks(&self, services: &Services) -> Vec<String> {
        // pg_ctl starts `postgres -D <data dir>`.
        vec![services.pg_layout().data.display().to_string()]
    }

    fn data_and_log(&self, services: &Services) -> (String, PathBuf) {
        let l = services.pg_layout();
        (l.data.display().to_string(), l.log)
    }
}

/// Where a PostgreSQL cluster lives: `root` holds `data/` and the log file and belongs to the
/// user PostgreSQL runs as.
pub(super) struct PgLayout {
    pub(super) root: PathBuf,
    pub(super) data: PathBuf,
    pub(super) log: PathBuf,
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
    fn pg_state_file(&self) -> PathBuf {
        self.dir.join("postgres.json")
    }

    /// The recorded layout (`up` may have chosen a directory under /tmp), else the default.
    pub(super) fn pg_layout(&self) -> PgLayout {
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
    pub(super) fn as_pg_user(&self, program: PathBuf) -> Command {
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

    fn pg_up_now(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::Postgres)? {
            self.pg_ensure_database(&self.pg_layout())?;
            return Ok(up);
        }
        let bin = match pg_bin(Some(&self.pg_layout().data)) {
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
                pg_bin(Some(&self.pg_layout().data))
                    .ok_or("apt-get installed postgresql but no initdb")?
            }
        };
        let layout = self.pg_prepare_layout()?;
        if !layout.data.join("PG_VERSION").exists() {
            self.pg_init(&bin, &layout)?;
        }
        self.pg_ctl(&bin, &layout, &["start"])?;
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

    pub(super) fn give_to_postgres(&self, path: &Path) -> Result<(), String> {
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

    /// Runs `sql` with psql over the Unix socket as `credo`, in database `postgres`.
    pub(super) fn pg_psql(&self, layout: &PgLayout, sql: &str) -> Result<Output, String> {
        let bin = pg_bin(Some(&layout.data)).ok_or("no PostgreSQL binaries (psql)")?;
        run_captured(
            self.as_pg_user(bin.join("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                .arg(&layout.data)
                .args(["-p", &Service::Postgres.port().to_string()])
                .args(["-U", "credo", "-d", "postgres", "-c", sql]),
            "psql",
        )
    }

    /// Restarts the cluster (`pg_ctl restart`), for settings read only at a start.
    pub(super) fn pg_restart(&self) -> Result<(), String> {
        let layout = self.pg_layout();
        let bin = pg_bin(Some(&layout.data)).ok_or("no PostgreSQL binaries (pg_ctl)")?;
        self.pg_ctl(&bin, &layout, &["-m", "fast", "restart"])
    }

    /// `pg_ctl -D <data> -l <log> -w -t 60 -s <args>` as the server's user; a failure carries
    /// the last lines of the server log.
    fn pg_ctl(&self, bin: &Path, layout: &PgLayout, args: &[&str]) -> Result<(), String> {
        run_captured(
            self.as_pg_user(bin.join("pg_ctl"))
                .arg("-D")
                .arg(&layout.data)
                .arg("-l")
                .arg(&layout.log)
                .args(["-w", "-t", "60", "-s"])
                .args(args),
            &format!("pg_ctl {}", args.last().unwrap_or(&"")),
        )
        .map_err(|e| {
            format!(
                "{e}\nlog {}:\n{}",
                layout.log.display(),
                tail_of_file(&layout.log, 15)
            )
        })?;
        Ok(())
    }

    /// Creates the `credo` database if it does not exist (over the Unix socket, trusted), with
    /// the ICU `en-US` collation many production databases have: text then sorts
    /// linguistically (`a_b` before `a-b` before `ab`), so an adapter that lets the database's
    /// collation decide an order or a comparison diverges from the model here. A database left
    /// by an earlier version of this script (libc `C.UTF-8`) is recreated: it holds test data
    /// only.
    fn pg_ensure_database(&self, layout: &PgLayout) -> Result<(), String> {
        let psql = |sql: &str| self.pg_psql(layout, sql);
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
}
