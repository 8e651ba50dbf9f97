//! `cargo xtask services backups on|status|off`: pgBackRest on the local PostgreSQL, with the
//! configuration the point-in-time recovery drill restores from
//! (`credo_testkit::pgbackrest`): WAL archiving into an encrypted repository beside the
//! cluster, a stanza, `check`, a first full backup and `verify`.

use super::process::run_captured;
use super::{Service, Services};
use credo_testkit::pgbackrest::{STANZA, Setup, archive_settings, random_passphrase};
use credo_testkit::system::which;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Output;

pub(super) const USAGE: &str = "usage: cargo xtask services backups on|status|off\n\
    on:     WAL archiving with pgBackRest into an encrypted repository beside the local \
    PostgreSQL (restarts it), stanza-create, check, a full backup, verify\n\
    status: archive_mode and `pgbackrest info`\n\
    off:    archiving off again (restarts PostgreSQL); the repository is kept";

impl Services {
    fn backups_dir(&self) -> PathBuf {
        self.pg_layout().root.join("pgbackrest")
    }

    /// The setup of the local cluster, with the passphrase of an existing configuration (a
    /// new one would make the repository unreadable).
    fn backups_setup(&self) -> Setup {
        let layout = self.pg_layout();
        let dir = self.backups_dir();
        let existing = fs::read_to_string(dir.join("pgbackrest.conf"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("repo1-cipher-pass="))
                    .map(str::to_string)
            });
        Setup {
            dir,
            cipher_pass: existing.unwrap_or_else(random_passphrase),
            retention_full: 2,
            socket_dir: layout.data.clone(),
            data_dir: layout.data,
            port: Service::Postgres.port(),
            user: "credo".to_string(),
        }
    }

    fn pgbackrest(&self, setup: &Setup, args: &[&str]) -> Result<Output, String> {
        run_captured(
            self.as_pg_user("pgbackrest".into())
                .arg(format!("--config={}", setup.config_path().display()))
                .arg(format!("--stanza={STANZA}"))
                .args(args),
            &format!("pgbackrest {}", args.join(" ")),
        )
    }

    fn require_postgres(&self) -> Result<(), String> {
        if self.running_pid(Service::Postgres).is_none() {
            return Err(
                "the PostgreSQL of `cargo xtask services` is not running: run \
                        `cargo xtask services up postgres` first"
                    .into(),
            );
        }
        Ok(())
    }

    /// Sets (or, with `None`, resets) `settings` with `ALTER SYSTEM`, then restarts the
    /// cluster: `archive_mode` is read only at a start.
    fn set_and_restart(&self, settings: &[(String, Option<String>)]) -> Result<(), String> {
        let layout = self.pg_layout();
        for (name, value) in settings {
            let sql = match value {
                Some(v) => format!("ALTER SYSTEM SET {name} = '{}'", v.replace('\'', "''")),
                None => format!("ALTER SYSTEM RESET {name}"),
            };
            self.pg_psql(&layout, &sql)?;
        }
        self.pg_restart()
    }

    fn archive_mode(&self) -> Result<String, String> {
        let out = self.pg_psql(&self.pg_layout(), "SHOW archive_mode")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `backups on`.
    pub fn backups_on(&self) -> Result<(), String> {
        self.require_postgres()?;
        if which("pgbackrest").is_none() {
            self.apt_install("pgbackrest", "pgBackRest")?;
        }
        let setup = self.backups_setup();
        let config = setup.config_path();
        if !config.is_file() {
            fs::create_dir_all(&setup.dir)
                .map_err(|e| format!("creating {}: {e}", setup.dir.display()))?;
            // The passphrase is in it.
            fs::write(&config, setup.config())
                .and_then(|()| fs::set_permissions(&config, fs::Permissions::from_mode(0o600)))
                .map_err(|e| format!("writing {}: {e}", config.display()))?;
            self.give_to_postgres(&setup.dir)?;
            self.give_to_postgres(&config)?;
        }
        let settings: Vec<(String, Option<String>)> = archive_settings(&config)
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        self.set_and_restart(&settings)?;
        self.pgbackrest(&setup, &["stanza-create"])?;
        self.pgbackrest(&setup, &["check"])?;
        self.pgbackrest(&setup, &["--type=full", "backup"])?;
        self.pgbackrest(&setup, &["verify"])?;
        eprintln!(
            "services: postgres: WAL archiving on (archive_mode={}); repository {} \
             (AES-256, {} full backups kept); configuration {}",
            self.archive_mode()?,
            setup.dir.join("repo").display(),
            setup.retention_full,
            config.display()
        );
        print!("{}", self.backups_info(&setup)?);
        Ok(())
    }

    fn backups_info(&self, setup: &Setup) -> Result<String, String> {
        let out = self.pgbackrest(setup, &["info"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `backups status`: archive mode, and the repository's backups when there is one.
    pub fn backups_status(&self) -> Result<(), String> {
        self.require_postgres()?;
        println!("archive_mode: {}", self.archive_mode()?);
        let setup = self.backups_setup();
        if setup.config_path().is_file() {
            print!("{}", self.backups_info(&setup)?);
            println!(
                "a full backup with the stanza ok: {}",
                if self.backups_hold_a_full_backup()? {
                    "yes"
                } else {
                    "no"
                }
            );
        } else {
            println!("no repository (cargo xtask services backups on)");
        }
        Ok(())
    }

    /// `backups off`: archiving off; the repository stays for restores.
    pub fn backups_off(&self) -> Result<(), String> {
        self.require_postgres()?;
        self.set_and_restart(&[
            ("archive_mode".into(), None),
            ("archive_command".into(), None),
        ])?;
        eprintln!(
            "services: postgres: WAL archiving off (archive_mode={}); the repository {} is kept",
            self.archive_mode()?,
            self.backups_dir().join("repo").display()
        );
        Ok(())
    }

    /// Whether `pgbackrest info` lists at least one full backup with the stanza `ok`.
    pub fn backups_hold_a_full_backup(&self) -> Result<bool, String> {
        let setup = self.backups_setup();
        let out = self.pgbackrest(&setup, &["--output=json", "info"])?;
        let info: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("pgbackrest info --output=json: {e}"))?;
        let stanza = info
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == STANZA))
            .ok_or("pgbackrest info lists no stanza credo")?;
        let full = stanza["backup"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["type"] == "full"));
        Ok(stanza["status"]["code"] == 0 && full)
    }
}
