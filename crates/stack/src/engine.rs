//! The Docker engine behind the container provider and the image builds: the one `DOCKER_HOST`
//! names, else the system's, else Sluice's own `dockerd` (started on demand with its own socket,
//! data and exec roots and pidfile, and stopped by that PID).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Result, StackError, io_err};

const SYSTEM_SOCKET: &str = "/var/run/docker.sock";

/// An engine that answered, by its `DOCKER_HOST` address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engine {
    pub host: String,
    pub origin: Origin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `DOCKER_HOST` in the environment.
    Environment,
    /// The system's `/var/run/docker.sock`.
    System,
    /// Sluice's own dockerd under [`own_dir`].
    Own,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Environment => "DOCKER_HOST",
            Origin::System => "the system's engine",
            Origin::Own => "Sluice's own dockerd",
        })
    }
}

impl Engine {
    /// The Docker CLI aimed at this engine (the classic builder: engines from Debian have no
    /// buildx).
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host).env("DOCKER_BUILDKIT", "0");
        c
    }

    fn answers(host: &str) -> bool {
        Command::new("docker")
            .env("DOCKER_HOST", host)
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The engine to use, if one answers: `DOCKER_HOST` when set (and only it), else the
    /// system's socket, else Sluice's own dockerd.
    pub fn detect() -> Option<Engine> {
        let own = OwnEngine::at(own_dir());
        if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            let origin = if host == own.host() {
                Origin::Own
            } else {
                Origin::Environment
            };
            return Self::answers(&host).then_some(Engine { host, origin });
        }
        let system = format!("unix://{SYSTEM_SOCKET}");
        if Path::new(SYSTEM_SOCKET).exists() && Self::answers(&system) {
            return Some(Engine {
                host: system,
                origin: Origin::System,
            });
        }
        (own.running_pid().is_some() && Self::answers(&own.host())).then(|| Engine {
            host: own.host(),
            origin: Origin::Own,
        })
    }

    /// [`Engine::detect`], or an error that says how to get one.
    pub fn require() -> Result<Engine> {
        Self::detect().ok_or_else(|| StackError::ProviderUnavailable {
            provider: "containers",
            reason: match std::env::var("DOCKER_HOST") {
                Ok(h) if !h.is_empty() => format!("DOCKER_HOST={h} does not answer"),
                _ => {
                    "no Docker engine answers; start Sluice's own with `cargo xtask engine start` \
                      (needs `apt-get install docker.io`), or set DOCKER_HOST"
                        .into()
                }
            },
        })
    }

    /// Runs a docker command to completion; its stderr is the error.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .docker()
            .args(args)
            .output()
            .map_err(io_err("running docker (is the docker CLI installed?)"))?;
        if !out.status.success() {
            return Err(StackError::Docker {
                command: format!("docker {}", args.join(" ")),
                reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// Points `DOCKER_HOST` at Sluice's own engine when it runs and neither `DOCKER_HOST` nor the
/// system's socket is there, for this process's Docker clients and its children (testcontainers
/// reads only the environment). Cheap: no process is started.
///
/// # Safety
/// Changes the environment: call before any other thread exists.
pub unsafe fn point_docker_host_at_own_engine() {
    if std::env::var_os("DOCKER_HOST").is_some() || Path::new(SYSTEM_SOCKET).exists() {
        return;
    }
    let own = OwnEngine::at(own_dir());
    if own.running_pid().is_some() {
        // SAFETY: the caller guarantees no other thread exists.
        unsafe { std::env::set_var("DOCKER_HOST", own.host()) };
    }
}

/// Where Sluice's own engine keeps its socket, data (images survive restarts), exec root, pidfile
/// and log: `$SLUICE_ENGINE_DIR`, else `~/.cache/sluice/engine`.
pub fn own_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_ENGINE_DIR") {
        return PathBuf::from(dir);
    }
    pytools::cache_dir()
        .parent()
        .map(|p| p.join("engine"))
        .unwrap_or_else(|| PathBuf::from("target/sluice-engine"))
}

/// A dockerd of Sluice's own, in one folder.
#[derive(Clone, Debug)]
pub struct OwnEngine {
    dir: PathBuf,
}

impl OwnEngine {
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn pidfile(&self) -> PathBuf {
        self.dir.join("dockerd.pid")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    /// The pidfile's PID, if that process is a running dockerd (a stale pidfile names none).
    pub fn running_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pidfile())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // /proc/PID/stat: "PID (comm) STATE ..."; a zombie (Z) has stopped already.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.split_once(") ")?;
        (comm.ends_with("(dockerd") && !rest.starts_with('Z')).then_some(pid)
    }

    /// Starts the dockerd unless it runs; returns the engine once it answers.
    ///
    /// No iptables rules are written: published ports go through docker-proxy, and builds use
    /// the host's network (bridged containers have no route out). The container provider binds
    /// its ports to 127.0.0.1 itself, so the engine's default is left alone.
    pub fn start(&self) -> Result<Engine> {
        let engine = Engine {
            host: self.host(),
            origin: Origin::Own,
        };
        if self.running_pid().is_some() && Engine::answers(&engine.host) {
            return Ok(engine);
        }
        let dockerd = find_dockerd()?;
        for sub in ["data", "exec"] {
            let d = self.dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.log())
            .map_err(io_err(format!("creating {}", self.log().display())))?;
        let mut c = Command::new(dockerd);
        c.arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(self.dir.join("data"))
            .arg("--exec-root")
            .arg(self.dir.join("exec"))
            .arg("--pidfile")
            .arg(self.pidfile())
            .args(["--iptables=false", "--storage-driver=overlay2"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io_err("log handle"))?)
            .stderr(log);
        // Its own session: a Ctrl-C in the terminal that started it does not stop it.
        use std::os::unix::process::CommandExt as _;
        c.process_group(0);
        let mut child = c.spawn().map_err(io_err("starting dockerd"))?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if Engine::answers(&engine.host) {
                // Not waited for: it outlives this process and is stopped by its pidfile's PID.
                std::mem::forget(child);
                return Ok(engine);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StackError::Exited {
                    service: "dockerd",
                    status: status.to_string(),
                    log: self.log(),
                    tail: crate::log_tail(&self.log(), 20),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        Err(StackError::NotReady {
            service: "dockerd",
            seconds: 60,
            reason: "its socket did not answer".into(),
            log: self.log(),
            tail: crate::log_tail(&self.log(), 20),
        })
    }

    /// Stops the dockerd by its pidfile's PID (SIGTERM, then SIGKILL after 30 s). Its containers
    /// stop with it. Returns the PID it stopped, if one ran.
    pub fn stop(&self) -> Option<u32> {
        let pid = self.running_pid()?;
        // SAFETY: kill(2) with a PID read from our own pidfile and checked to be a dockerd.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let started = Instant::now();
        while self.running_pid().is_some() && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.running_pid().is_some() {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        self.unmount_leftovers();
        Some(pid)
    }

    /// dockerd leaves its default network namespace mounted in the exec root.
    fn unmount_leftovers(&self) {
        let exec = self.dir.join("exec");
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&exec))
            .collect();
        under.sort_by(|a, b| b.cmp(a));
        for mount in under {
            let Ok(path) = std::ffi::CString::new(mount) else {
                continue;
            };
            // SAFETY: a NUL-terminated path; MNT_DETACH has no other preconditions.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn find_dockerd() -> Result<PathBuf> {
    ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(StackError::MissingBinary {
            what: "the Docker engine (dockerd)",
            looked: "/usr/sbin/dockerd, /usr/bin/dockerd".into(),
            package: "docker.io",
        })
}
