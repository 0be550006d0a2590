//! Real service processes for tests. Each is started on a free loopback port, waited for at the
//! protocol level, and stopped (SIGINT, bounded wait, then SIGKILL of that PID only) when dropped,
//! which also happens when the test panics.

pub mod http;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fakesnow server (Snowflake emulator) of this test's own, with its own in-memory database.
pub struct Fakesnow {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Fakesnow {
    pub fn start() -> Self {
        let venv = pytools::ensure(&pytools::ToolSet::warehouse(&pytools::infra_python_dir()))
            .unwrap_or_else(|e| panic!("cannot install fakesnow: {e}"));
        let port = free_port();
        let log = std::env::temp_dir().join(format!("sluice-fakesnow-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(venv.bin("fakesnow"))
            .args(["-s", "--host", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("fakesnow starts");
        let mut server = Self { child, port, log };
        server.wait_ready(Duration::from_secs(60));
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// fakesnow has no health endpoint: an HTTP answer (404 on `/`) means it serves.
    fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "fakesnow exited with {status} before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if http_answers(self.port) {
                return;
            }
            if Instant::now() > deadline {
                panic!("fakesnow not ready after {timeout:?}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Stops the server now; `Drop` does the same.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Fakesnow {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// SIGINT, then up to `grace` for the process to exit, then SIGKILL. Only this PID is signalled.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: kill(2) on the PID of a child we spawned and have not reaped, so it cannot be reused.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.")
}

/// Whether a process with this PID still exists (a zombie counts as gone).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}
