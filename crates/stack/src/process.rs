//! Child processes of a stack: spawned in their own process group with their output in a log
//! file, recorded by PID and start time, and stopped by exactly that PID's group.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::state::{ProcessInfo, stat_fields};

use crate::error::{Result, io_err};

/// Stopping a process a stack started, by its process group and only while it is still the
/// process that was started.
pub(crate) trait Stop {
    /// `signal` to the process group, then up to `grace` to exit, then SIGKILL to the group.
    /// `name` is for the log.
    fn stop(&self, name: &str, signal: i32, grace: Duration);
}

impl Stop for ProcessInfo {
    fn stop(&self, name: &str, signal: i32, grace: Duration) {
        if !self.is_alive() {
            return;
        }
        let group = -(self.pid as libc::pid_t);
        // SAFETY: kill(2) with the negated PID of a group this stack created and checked above.
        unsafe { libc::kill(group, signal) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(
            pid = self.pid,
            "{name} did not stop within {grace:?}; killing"
        );
        // SAFETY: as above.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Spawns `command` detached from the caller's terminal signals (own process group), with
/// stdout and stderr appended to `log`. The child outlives the caller; `stop` ends it.
pub(crate) fn spawn(mut command: Command, log: &Path) -> Result<ProcessInfo> {
    use std::os::unix::process::CommandExt;
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(io_err(format!("opening {}", log.display())))?;
    let err = file.try_clone().map_err(io_err("log file"))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(io_err(format!("starting {:?}", command.get_program())))?;
    let pid = child.id();
    // The child is not waited for here: it must outlive `xtask up`. Dropping `Child` does not kill it.
    drop(child);
    let start_ticks = stat_fields(pid)
        .and_then(|f| f.get(19).and_then(|t| t.parse().ok()))
        .unwrap_or(0);
    Ok(ProcessInfo {
        pid,
        start_ticks,
        started_at: chrono::Utc::now(),
        log: log.to_owned(),
    })
}

/// The last `n` lines of a log file, for error messages.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether something listens on 127.0.0.1:`port`.
pub fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}
