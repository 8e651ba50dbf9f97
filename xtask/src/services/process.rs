//! Processes, files and ports: what every server's `up` and `down` need.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// SIGTERM to `pid` (the shell's builtin `kill`: /bin/kill is not on every image).
pub(super) fn terminate(pid: u32) -> Result<(), String> {
    run_captured(
        Command::new("sh").args(["-c", "kill \"$1\"", "sh", &pid.to_string()]),
        "kill",
    )
    .map(drop)
}

/// Runs `cmd` with its output captured; on failure the error holds the output's last lines.
pub(super) fn run_captured(cmd: &mut Command, what: &str) -> Result<Output, String> {
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

pub(super) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(super) fn tail_of_file(path: &Path, lines: usize) -> String {
    fs::read(path)
        .map(|b| tail(&String::from_utf8_lossy(&b), lines))
        .unwrap_or_default()
}

pub(super) fn read_pid(file: &Path) -> Option<u32> {
    fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live (not zombie) process whose command line contains every mark.
pub(super) fn alive(pid: u32, marks: &[String]) -> bool {
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

pub(super) fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `done` every 100 ms until it holds or `timeout` passes.
pub(super) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Result<(), ()> {
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
pub(super) fn short_hash(path: &Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..10].to_string()
}
