//! The pipeline's components as child processes: relay, batcher and pipe, each started against
//! the stack with `--stack`, its logs in a file and its counters in a `--metrics-file`, and
//! stopped with SIGTERM (as an orchestrator would), so each flushes and writes final counters.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use stack::StackName;
use synth::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(
        "the {name} binary is missing at {}: build it with `cargo build -p relay -p batcher -p pipe --bins`",
        path.display()
    )]
    Missing { name: &'static str, path: PathBuf },
    #[error("starting {name} ({}): {source}", path.display())]
    Spawn {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} exited early with {status}; last lines of {}:\n{tail}", log.display())]
    Exited {
        name: &'static str,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The components the harness runs (the binary's and package's name is [`Component::name`]).
pub use synth::Component;

/// The scenario's `[pipeline]` settings as a component's flags.
fn flags(component: Component, scenario: &Scenario) -> Vec<String> {
    let p = &scenario.pipeline;
    match component {
        Component::Relay => vec![
            "--pack".into(),
            p.pack.clamp(1, u32::from(u16::MAX)).to_string(),
            "--prefetch".into(),
            p.prefetch.to_string(),
        ],
        Component::Batcher => vec![
            "--batch-size".into(),
            p.batch_size.to_string(),
            "--batch-window".into(),
            format!("{}ms", p.batch_window.get().as_millis()),
            "--format".into(),
            match p.file_format {
                synth::FileFormat::Ndjson => "ndjson".into(),
                synth::FileFormat::Parquet => "parquet".into(),
            },
        ],
        Component::Pipe => Vec::new(),
    }
}

/// What a run asks of the components beyond the scenario's `[pipeline]`.
#[derive(Clone, Debug, Default)]
pub struct ComponentOptions {
    /// The pipe appends a line per loaded file here (`--load-log`), for freshness.
    pub load_log: Option<PathBuf>,
}

/// Where the component executables are.
#[derive(Clone, Debug)]
pub struct ComponentBinaries {
    pub relay: PathBuf,
    pub batcher: PathBuf,
    pub pipe: PathBuf,
}

impl ComponentBinaries {
    /// The executables in a cargo output folder such as `target/debug`.
    pub fn in_dir(dir: &Path) -> Self {
        let exe = |c: Component| dir.join(c.name());
        Self {
            relay: exe(Component::Relay),
            batcher: exe(Component::Batcher),
            pipe: exe(Component::Pipe),
        }
    }

    /// For integration tests: the binaries cargo built next to the running test
    /// (`target/debug/deps/<test>` -> `target/debug`). `cargo test --workspace` builds them,
    /// since each component's own integration tests need them.
    pub fn beside_current_exe() -> Result<Self, ComponentError> {
        let exe = std::env::current_exe().map_err(|source| ComponentError::Io {
            context: "locating the running test".into(),
            source,
        })?;
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| Path::new("."));
        let binaries = Self::in_dir(dir);
        binaries.check()?;
        Ok(binaries)
    }

    pub fn check(&self) -> Result<(), ComponentError> {
        for component in Component::ALL {
            let path = self.path(component);
            if !path.is_file() {
                return Err(ComponentError::Missing {
                    name: component.name(),
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }

    pub fn path(&self, component: Component) -> &PathBuf {
        match component {
            Component::Relay => &self.relay,
            Component::Batcher => &self.batcher,
            Component::Pipe => &self.pipe,
        }
    }
}

struct Child {
    component: Component,
    process: tokio::process::Child,
    metrics: PathBuf,
    log: PathBuf,
}

/// Counters the components last wrote (None until a component's first write).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ComponentMetrics {
    pub relay: Option<relay::MetricsSnapshot>,
    pub batcher: Option<batcher::MetricsSnapshot>,
    pub pipe: Option<pipe::MetricsSnapshot>,
}

/// The components' metrics files.
#[derive(Clone, Debug)]
pub struct MetricsReader(Vec<(Component, PathBuf)>);

impl MetricsReader {
    pub fn read(&self) -> ComponentMetrics {
        let mut out = ComponentMetrics::default();
        for (component, path) in &self.0 {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            match component {
                Component::Relay => out.relay = serde_json::from_slice(&bytes).ok(),
                Component::Batcher => out.batcher = serde_json::from_slice(&bytes).ok(),
                Component::Pipe => out.pipe = serde_json::from_slice(&bytes).ok(),
            }
        }
        out
    }
}

/// Running components. Dropping this kills them (SIGKILL); [`Components::stop`] is the clean way.
pub struct Components {
    children: Vec<Child>,
}

impl Components {
    /// Starts relay, batcher and pipe against `stack` (whose state lives under `root`), with
    /// logs and metrics files in `work_dir`.
    pub fn start(
        binaries: &ComponentBinaries,
        root: &Path,
        stack: &StackName,
        scenario: &Scenario,
        work_dir: &Path,
        options: &ComponentOptions,
    ) -> Result<Self, ComponentError> {
        binaries.check()?;
        std::fs::create_dir_all(work_dir).map_err(|source| ComponentError::Io {
            context: format!("creating {}", work_dir.display()),
            source,
        })?;
        let mut children = Vec::new();
        for component in Component::ALL {
            let (name, path) = (component.name(), binaries.path(component));
            let metrics = work_dir.join(format!("{name}.metrics.json"));
            let log = work_dir.join(format!("{name}.log"));
            let _ = std::fs::remove_file(&metrics);
            let file = std::fs::File::create(&log).map_err(|source| ComponentError::Io {
                context: format!("creating {}", log.display()),
                source,
            })?;
            let mut extra = flags(component, scenario);
            if let (Component::Pipe, Some(log)) = (component, &options.load_log) {
                extra.push("--load-log".into());
                extra.push(log.display().to_string());
            }
            let process = tokio::process::Command::new(path)
                .arg("--stack")
                .arg(stack.as_str())
                .arg("--root")
                .arg(root)
                .arg("--metrics-file")
                .arg(&metrics)
                .args(extra)
                .env(
                    "RUST_LOG",
                    std::env::var("SLUICE_COMPONENT_LOG").unwrap_or_else(|_| "info".into()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(file)
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| ComponentError::Spawn {
                    name,
                    path: path.clone(),
                    source,
                })?;
            children.push(Child {
                component,
                process,
                metrics,
                log,
            });
        }
        Ok(Self { children })
    }

    /// Fails if any component has exited (they run until told to stop).
    pub fn check_running(&mut self) -> Result<(), ComponentError> {
        for child in &mut self.children {
            if let Ok(Some(status)) = child.process.try_wait() {
                return Err(ComponentError::Exited {
                    name: child.component.name(),
                    status,
                    log: child.log.clone(),
                    tail: stack::log_tail(&child.log, 20),
                });
            }
        }
        Ok(())
    }

    /// Each running component's process id.
    pub fn pids(&self) -> Vec<(Component, u32)> {
        self.children
            .iter()
            .filter_map(|c| Some((c.component, c.process.id()?)))
            .collect()
    }

    pub fn metrics(&self) -> ComponentMetrics {
        self.reader().read()
    }

    /// Reads the components' metrics files without borrowing the components (for a sampler
    /// running beside the run).
    pub fn reader(&self) -> MetricsReader {
        MetricsReader(
            self.children
                .iter()
                .map(|c| (c.component, c.metrics.clone()))
                .collect(),
        )
    }

    /// SIGTERM to every component, then waits (up to `grace` each) for them to flush and exit;
    /// one that does not is killed. Returns the final counters.
    pub async fn stop(mut self, grace: Duration) -> Result<ComponentMetrics, ComponentError> {
        for child in &self.children {
            if let Some(pid) = child.process.id() {
                // SAFETY: kill(2) on the PID of a child this struct owns and has not reaped.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
        }
        let mut unclean = None;
        for child in &mut self.children {
            match tokio::time::timeout(grace, child.process.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => {
                    unclean.get_or_insert(ComponentError::Exited {
                        name: child.component.name(),
                        status,
                        log: child.log.clone(),
                        tail: stack::log_tail(&child.log, 20),
                    });
                }
                Ok(Err(source)) => {
                    unclean.get_or_insert(ComponentError::Io {
                        context: format!("waiting for {}", child.component.name()),
                        source,
                    });
                }
                Err(_) => {
                    let _ = child.process.kill().await;
                    unclean.get_or_insert(ComponentError::Io {
                        context: format!(
                            "{} did not stop within {grace:?}; killed",
                            child.component.name()
                        ),
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    });
                }
            }
        }
        let metrics = self.metrics();
        match unclean {
            Some(e) => Err(e),
            None => Ok(metrics),
        }
    }
}
