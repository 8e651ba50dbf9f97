//! Redis: Debian's `redis-server`, daemonized, without persistence.

use super::process::run_captured;
use super::{Server, Service, Services, Up};
use credo_testkit::system::which;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

pub(super) struct Redis;

impl Server for Redis {
    fn up(&self, services: &Services) -> Result<Up, String> {
        services.redis_up_now()
    }

    fn stop(&self, _services: &Services, pid: u32) -> Result<(), String> {
        super::process::terminate(pid)
    }

    fn pid_file(&self, services: &Services) -> PathBuf {
        services.redis_pid_file()
    }

    fn marks(&self, _services: &Services) -> Vec<String> {
        // redis sets its title to `redis-server 127.0.0.1:PORT`.
        vec![
            "redis-server".to_string(),
            format!(":{}", Service::Redis.port()),
        ]
    }

    fn data_and_log(&self, services: &Services) -> (String, PathBuf) {
        (
            services.dir.join("redis").display().to_string(),
            services.redis_log(),
        )
    }
}

impl Services {
    fn redis_pid_file(&self) -> PathBuf {
        self.dir.join("redis").join("redis.pid")
    }

    fn redis_log(&self) -> PathBuf {
        self.dir.join("redis").join("redis.log")
    }

    fn redis_up_now(&self) -> Result<Up, String> {
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
}
