//! Redis Cluster: three masters of Debian's `redis-server` (`cluster-enabled`, no replicas,
//! no persistence) joined by `redis-cli --cluster create`, on ports 56380 to 56382 (cluster
//! bus 46380 to 46382). The first
//! node stands for the cluster in `status` and the pid checks; `down` stops all three.

use super::process::{run_captured, tail_of_file, terminate, wait_until};
use super::{READY_TIMEOUT, Server, Service, Services, Up};
use credo_testkit::system::which;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

pub(super) struct RedisCluster;

/// The masters' ports; the first is [`Service::RedisCluster`]'s.
pub(super) const PORTS: [u16; 3] = [56380, 56381, 56382];

impl Server for RedisCluster {
    fn up(&self, services: &Services) -> Result<Up, String> {
        services.cluster_up_now()
    }

    fn stop(&self, services: &Services, _pid: u32) -> Result<(), String> {
        let mut errors = Vec::new();
        for port in PORTS.into_iter().rev() {
            let file = services.cluster_node_dir(port).join("redis.pid");
            if let Some(pid) = super::process::read_pid(&file)
                .filter(|pid| super::process::alive(*pid, &node_marks(port)))
                && let Err(e) = terminate(pid)
            {
                errors.push(format!("node {port}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    fn pid_file(&self, services: &Services) -> PathBuf {
        services.cluster_node_dir(PORTS[0]).join("redis.pid")
    }

    fn marks(&self, _services: &Services) -> Vec<String> {
        node_marks(PORTS[0])
    }

    fn data_and_log(&self, services: &Services) -> (String, PathBuf) {
        (
            services.dir.join("redis-cluster").display().to_string(),
            services.cluster_node_dir(PORTS[0]).join("redis.log"),
        )
    }
}

/// A cluster node's title is `redis-server 127.0.0.1:PORT [cluster]`.
fn node_marks(port: u16) -> Vec<String> {
    vec!["redis-server".to_string(), format!(":{port}")]
}

impl Services {
    fn cluster_node_dir(&self, port: u16) -> PathBuf {
        self.dir.join("redis-cluster").join(port.to_string())
    }

    fn cluster_up_now(&self) -> Result<Up, String> {
        if let Some(up) = self.check_before_start(Service::RedisCluster)? {
            return Ok(up);
        }
        for port in &PORTS[1..] {
            if super::process::port_open(*port) {
                return Err(format!(
                    "port {port} (a node of the cluster) is in use by a process that `cargo \
                     xtask services up` did not start; nothing was killed"
                ));
            }
        }
        let bin = match which("redis-server") {
            Some(bin) => bin,
            None => {
                self.apt_install("redis-server", "redis-server")?;
                which("redis-server").ok_or("apt-get installed redis-server but it is not found")?
            }
        };
        let cli = which("redis-cli").ok_or("redis-cli is missing (Debian package redis-tools)")?;
        for port in PORTS {
            // A new cluster every time: a node's nodes.conf would otherwise remember slots of
            // a cluster whose data (kept in memory only) is gone.
            let dir = self.cluster_node_dir(port);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            run_captured(
                Command::new(&bin)
                    .args(["--port", &port.to_string()])
                    .args(["--bind", "127.0.0.1", "--daemonize", "yes", "--pidfile"])
                    .arg(dir.join("redis.pid"))
                    .arg("--dir")
                    .arg(&dir)
                    .arg("--logfile")
                    .arg(dir.join("redis.log"))
                    .args(["--cluster-enabled", "yes", "--cluster-config-file"])
                    .arg(dir.join("nodes.conf"))
                    // The bus defaults to port + 10000, past 65535 for these ports.
                    .args(["--cluster-port", &(port - 10000).to_string()])
                    .args(["--cluster-node-timeout", "5000"])
                    .args(["--save", "", "--appendonly", "no"])
                    .current_dir(&dir),
                &format!("redis-server (cluster node {port})"),
            )?;
            wait_until(READY_TIMEOUT, || super::process::port_open(port)).map_err(|()| {
                let log = dir.join("redis.log");
                format!(
                    "cluster node {port} did not accept connections; {}\n{}",
                    log.display(),
                    tail_of_file(&log, 15)
                )
            })?;
        }
        let nodes: Vec<String> = PORTS.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = run_captured(
            Command::new(&cli)
                .arg("--cluster")
                .arg("create")
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
            "redis-cli --cluster create",
        );
        let formed = created.and_then(|_| {
            wait_until(READY_TIMEOUT, || {
                PORTS.iter().all(|p| {
                    Command::new(&cli)
                        .args(["-p", &p.to_string(), "cluster", "info"])
                        .output()
                        .is_ok_and(|o| {
                            String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")
                        })
                })
            })
            .map_err(|()| "the cluster did not reach cluster_state:ok".to_string())
        });
        let log = self.cluster_node_dir(PORTS[0]).join("redis.log");
        match formed {
            Ok(()) => {
                let pid = self.wait_ready(Service::RedisCluster, &log, || false)?;
                Ok(Up::Started { pid })
            }
            Err(e) => {
                let _ = RedisCluster.stop(self, 0);
                Err(e)
            }
        }
    }
}
