//! Is a Docker engine there? A cheap check (`GET /_ping`) run before testcontainers is tried,
//! so a machine without an engine reports a clear skip reason instead of a failure deep inside.

use std::io::{Read, Write};
use std::time::Duration;

/// Where the engine is expected: `DOCKER_HOST`, else the default socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// `Ok` when the engine at [`docker_host`] answers `/_ping` with 200 within a second.
pub fn engine_answers() -> Result<(), String> {
    engine_answers_at(&docker_host())
}

/// `Ok` when the engine at `host` (`unix://PATH` or `tcp://ADDR`) answers `/_ping` with 200.
pub fn engine_answers_at(host: &str) -> Result<(), String> {
    let host = host.to_string();
    let timeout = Duration::from_secs(1);
    let request = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n";
    let mut reply = Vec::new();
    if let Some(path) = host.strip_prefix("unix://") {
        let mut s =
            std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{host}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(request).map_err(|e| format!("{host}: {e}"))?;
        let _ = s.take(64).read_to_end(&mut reply);
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let addr = addr.parse().map_err(|e| format!("{host}: {e}"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("{host}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(request).map_err(|e| format!("{host}: {e}"))?;
        let _ = s.take(64).read_to_end(&mut reply);
    } else {
        return Err(format!("unsupported DOCKER_HOST {host}"));
    }
    let status = String::from_utf8_lossy(&reply);
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "{host} answered {:?}",
            status.lines().next().unwrap_or("nothing")
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_socket_is_a_reason_not_a_hang() {
        let started = std::time::Instant::now();
        let err = super::engine_answers_at("unix:///nonexistent/docker.sock").unwrap_err();
        assert!(err.contains("/nonexistent/docker.sock"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(super::engine_answers_at("ftp://x").is_err());
    }
}
