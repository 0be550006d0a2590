//! The pipeline's components as child processes: relay, batcher and pipe (and the cdc when the
//! scenario has an `[oltp]` workload), each started against
//! the stack with `--stack`, its logs in a file and its counters in a `--metrics-file`, and
//! stopped with SIGTERM (as an orchestrator would), so each flushes and writes final counters.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stack::StackName;
use synth::Scenario;

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(
        "the {name} binary is missing at {}: build it with `cargo build -p relay -p batcher -p lambda-host -p pipe -p cdc --bins`",
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
        Component::Pipe | Component::Cdc => Vec::new(),
    }
}

/// What a run asks of the components beyond the scenario's `[pipeline]`.
#[derive(Clone, Debug, Default)]
pub struct ComponentOptions {
    /// The pipe appends a line per loaded file here (`--load-log`), for freshness.
    pub load_log: Option<PathBuf>,
    /// Endpoints to use instead of the stack's (fault proxies in front of the services).
    pub amqp_url: Option<String>,
    pub aws_endpoint_url: Option<String>,
    pub snowflake_url: Option<String>,
}

impl ComponentOptions {
    fn flags(&self, component: Component) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, value: &Option<String>| {
            if let Some(v) = value {
                out.push(name.to_owned());
                out.push(v.clone());
            }
        };
        flag("--aws-endpoint-url", &self.aws_endpoint_url);
        match component {
            Component::Relay | Component::Cdc => flag("--amqp-url", &self.amqp_url),
            Component::Batcher => {}
            Component::Pipe => {
                flag("--snowflake-url", &self.snowflake_url);
                flag(
                    "--load-log",
                    &self.load_log.as_ref().map(|p| p.display().to_string()),
                );
            }
        }
        out
    }
}

/// How the batcher runs: as its own SQS poller (`batcher`), or as production runs it, its
/// Lambda bootstrap (`batcher-lambda`) under a Lambda Runtime API fed by an event-source
/// mapping (`lambda-host`). Both take the same flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatcherShape {
    #[default]
    Poller,
    Lambda,
}

/// Where the component executables are.
#[derive(Clone, Debug)]
pub struct ComponentBinaries {
    pub relay: PathBuf,
    pub batcher: PathBuf,
    /// `lambda-host`; it runs `batcher-lambda` from its own folder.
    pub lambda_host: PathBuf,
    pub pipe: PathBuf,
    pub cdc: PathBuf,
    /// Which of `batcher` and `lambda_host` runs as the batcher.
    pub batcher_shape: BatcherShape,
}

impl ComponentBinaries {
    /// The executables in a cargo output folder such as `target/debug`.
    pub fn in_dir(dir: &Path) -> Self {
        let exe = |c: Component| dir.join(c.name());
        Self {
            relay: exe(Component::Relay),
            batcher: exe(Component::Batcher),
            lambda_host: dir.join("lambda-host"),
            pipe: exe(Component::Pipe),
            cdc: exe(Component::Cdc),
            batcher_shape: BatcherShape::Poller,
        }
    }

    /// The same executables, the batcher run in `shape`.
    pub fn with_batcher(mut self, shape: BatcherShape) -> Self {
        self.batcher_shape = shape;
        self
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
        binaries.check(&Component::PIPELINE)?;
        Ok(binaries)
    }

    /// Each of `components` has its executable (the Lambda shape's bootstrap too).
    pub fn check(&self, components: &[Component]) -> Result<(), ComponentError> {
        for &component in components {
            let path = self.path(component);
            if !path.is_file() {
                return Err(ComponentError::Missing {
                    name: component.name(),
                    path: path.clone(),
                });
            }
        }
        if components.contains(&Component::Batcher) && self.batcher_shape == BatcherShape::Lambda {
            let bootstrap = self.lambda_host.with_file_name("batcher-lambda");
            if !bootstrap.is_file() {
                return Err(ComponentError::Missing {
                    name: "batcher-lambda",
                    path: bootstrap,
                });
            }
        }
        Ok(())
    }

    pub fn path(&self, component: Component) -> &PathBuf {
        match component {
            Component::Relay => &self.relay,
            Component::Batcher => match self.batcher_shape {
                BatcherShape::Poller => &self.batcher,
                BatcherShape::Lambda => &self.lambda_host,
            },
            Component::Pipe => &self.pipe,
            Component::Cdc => &self.cdc,
        }
    }
}

struct Child {
    component: Component,
    /// None while the component is down (killed by a fault, not yet restarted).
    process: Option<tokio::process::Child>,
    /// The command's arguments, to start it again.
    args: Vec<String>,
    metrics: PathBuf,
    log: PathBuf,
    /// It was started to crash (an armed fault); its exit is expected.
    may_exit: bool,
}

/// Counters the components last wrote (None until a component's first write).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ComponentMetrics {
    pub relay: Option<relay::MetricsSnapshot>,
    pub batcher: Option<batcher::MetricsSnapshot>,
    pub pipe: Option<pipe::MetricsSnapshot>,
    pub cdc: Option<cdc::MetricsSnapshot>,
}

impl ComponentMetrics {
    /// These counters on top of `earlier` ones, component by component.
    pub fn plus(&self, earlier: &ComponentMetrics) -> ComponentMetrics {
        fn both<T: Clone>(a: &Option<T>, b: &Option<T>, plus: impl Fn(&T, &T) -> T) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(plus(a, b)),
                (Some(x), None) | (None, Some(x)) => Some(x.clone()),
                (None, None) => None,
            }
        }
        ComponentMetrics {
            relay: both(&self.relay, &earlier.relay, relay::MetricsSnapshot::plus),
            batcher: both(
                &self.batcher,
                &earlier.batcher,
                batcher::MetricsSnapshot::plus,
            ),
            pipe: both(&self.pipe, &earlier.pipe, pipe::MetricsSnapshot::plus),
            cdc: both(&self.cdc, &earlier.cdc, cdc::MetricsSnapshot::plus),
        }
    }
}

/// The components' metrics files, with what earlier processes of a restarted component counted
/// (none: the default, before any component runs).
#[derive(Clone, Debug, Default)]
pub struct MetricsReader {
    files: Vec<(Component, PathBuf)>,
    carried: Arc<Mutex<ComponentMetrics>>,
    pids: Arc<Mutex<Vec<(Component, u32)>>>,
}

fn read_file(component: Component, path: &Path) -> ComponentMetrics {
    let mut out = ComponentMetrics::default();
    let Ok(bytes) = std::fs::read(path) else {
        return out;
    };
    match component {
        Component::Relay => out.relay = serde_json::from_slice(&bytes).ok(),
        Component::Batcher => out.batcher = serde_json::from_slice(&bytes).ok(),
        Component::Pipe => out.pipe = serde_json::from_slice(&bytes).ok(),
        Component::Cdc => out.cdc = serde_json::from_slice(&bytes).ok(),
    }
    out
}

impl MetricsReader {
    pub fn read(&self) -> ComponentMetrics {
        let mut out = ComponentMetrics::default();
        for (component, path) in &self.files {
            out = out.plus(&read_file(*component, path));
        }
        out.plus(&self.carried.lock().expect("metrics lock"))
    }

    /// Each running component's process id, as of now: a restarted component's new one.
    pub fn pids(&self) -> Vec<(Component, u32)> {
        self.pids.lock().expect("pids lock").clone()
    }
}

/// Running components. Dropping this kills them (SIGKILL); [`Components::stop`] is the clean way.
pub struct Components {
    children: Vec<Child>,
    binaries: ComponentBinaries,
    /// Counters of processes that were killed, to add to their successors'.
    carried: Arc<Mutex<ComponentMetrics>>,
    /// What [`Components::pids`] says, shared with the readers (a sampler follows restarts).
    live: Arc<Mutex<Vec<(Component, u32)>>>,
    restarts: u32,
    /// A fault hit a component or its connections (see [`Components::disturbed`]).
    disturbed: bool,
}

fn spawn(
    path: &Path,
    args: &[String],
    log: &Path,
    truncate: bool,
) -> Result<tokio::process::Child, std::io::Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(truncate)
        .append(!truncate)
        .open(log)?;
    tokio::process::Command::new(path)
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("SLUICE_COMPONENT_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the PID of a child process this struct owns and has not reaped.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

impl Components {
    /// Starts the scenario's components ([`Scenario::components`]) against `stack` (whose state
    /// lives under `root`), with logs and metrics files in `work_dir`.
    pub fn start(
        binaries: &ComponentBinaries,
        root: &Path,
        stack: &StackName,
        scenario: &Scenario,
        work_dir: &Path,
        options: &ComponentOptions,
    ) -> Result<Self, ComponentError> {
        let components = scenario.components();
        binaries.check(&components)?;
        std::fs::create_dir_all(work_dir).map_err(|source| ComponentError::Io {
            context: format!("creating {}", work_dir.display()),
            source,
        })?;
        let mut children = Vec::new();
        for component in components {
            let (name, path) = (component.name(), binaries.path(component));
            let metrics = work_dir.join(format!("{name}.metrics.json"));
            let log = work_dir.join(format!("{name}.log"));
            let _ = std::fs::remove_file(&metrics);
            let mut args: Vec<String> = vec![
                "--stack".into(),
                stack.as_str().into(),
                "--root".into(),
                root.display().to_string(),
                "--metrics-file".into(),
                metrics.display().to_string(),
            ];
            args.extend(flags(component, scenario));
            args.extend(options.flags(component));
            let process =
                spawn(path, &args, &log, true).map_err(|source| ComponentError::Spawn {
                    name,
                    path: path.clone(),
                    source,
                })?;
            children.push(Child {
                component,
                process: Some(process),
                args,
                metrics,
                log,
                may_exit: false,
            });
        }
        let components = Self {
            children,
            binaries: binaries.clone(),
            carried: Arc::default(),
            live: Arc::default(),
            restarts: 0,
            disturbed: false,
        };
        components.publish_pids();
        Ok(components)
    }

    fn publish_pids(&self) {
        *self.live.lock().expect("pids lock") = self.pids();
    }

    fn child(&mut self, component: Component) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.component == component)
            .expect("faults name only components the run started (checked with the scenario)")
    }

    /// Whether this run started `component`.
    pub fn runs(&self, component: Component) -> bool {
        self.children.iter().any(|c| c.component == component)
    }

    /// SIGKILL, as a crash would; its counters so far are kept for its successor.
    pub async fn kill(&mut self, component: Component) {
        let carried = self.carried.clone();
        let child = self.child(component);
        if let Some(mut process) = child.process.take() {
            let _ = process.kill().await;
        }
        let last = read_file(component, &child.metrics);
        let _ = std::fs::remove_file(&child.metrics);
        {
            let mut carried = carried.lock().expect("metrics lock");
            *carried = last.plus(&carried);
        }
        self.publish_pids();
    }

    /// Starts a component that is down again, with `extra` flags for this process only (a
    /// fault to arm); `may_exit` marks an exit of this process as expected.
    pub fn restart(
        &mut self,
        component: Component,
        extra: &[&str],
        may_exit: bool,
    ) -> Result<(), ComponentError> {
        let path = self.binaries.path(component).clone();
        self.restarts += 1;
        let child = self.child(component);
        let mut args = child.args.clone();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let process =
            spawn(&path, &args, &child.log, false).map_err(|source| ComponentError::Spawn {
                name: component.name(),
                path,
                source,
            })?;
        child.process = Some(process);
        child.may_exit = may_exit;
        self.publish_pids();
        Ok(())
    }

    /// Whether an armed component has exited as it was meant to (and is now down).
    pub fn exited(&mut self, component: Component) -> bool {
        let child = self.child(component);
        matches!(
            child.process.as_mut().map(|p| p.try_wait()),
            Some(Ok(Some(_)))
        )
    }

    /// The counters of `component`'s running process alone (not its predecessors').
    pub fn own_metrics(&mut self, component: Component) -> ComponentMetrics {
        let path = self.child(component).metrics.clone();
        read_file(component, &path)
    }

    /// Whether the armed batcher crashed: the poller exits; in the Lambda shape the host stays
    /// and counts its environment's crash (a process that died holding an invocation).
    pub fn batcher_crashed(&mut self) -> bool {
        if self.exited(Component::Batcher) {
            return true;
        }
        let metrics = &self.child(Component::Batcher).metrics;
        std::fs::read(metrics)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.pointer("/lambda/crashes")?.as_u64())
            .is_some_and(|crashes| crashes > 0)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn freeze(&mut self, component: Component, frozen: bool) {
        if let Some(pid) = self.child(component).process.as_ref().and_then(|p| p.id()) {
            signal(pid, if frozen { libc::SIGSTOP } else { libc::SIGCONT });
        }
    }

    /// Whether any component was restarted (its counters then miss what it did in its last
    /// second before a kill: metrics files are written once a second), or a fault cut its
    /// connections (the broker redelivers what it had received and not acked, so its counters
    /// count some bodies twice).
    pub fn restarted(&self) -> bool {
        self.restarts > 0 || self.disturbed
    }

    /// Marks the run as disturbed by a fault: hops are then judged by their queues.
    pub fn disturb(&mut self) {
        self.disturbed = true;
    }

    /// Fails if any component has exited (they run until told to stop), unless a fault meant
    /// it to.
    pub fn check_running(&mut self) -> Result<(), ComponentError> {
        for child in &mut self.children {
            if child.may_exit {
                continue;
            }
            if let Some(process) = child.process.as_mut()
                && let Ok(Some(status)) = process.try_wait()
            {
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
            .filter_map(|c| Some((c.component, c.process.as_ref()?.id()?)))
            .collect()
    }

    pub fn metrics(&self) -> ComponentMetrics {
        self.reader().read()
    }

    /// Reads the components' metrics files without borrowing the components (for a sampler
    /// running beside the run).
    pub fn reader(&self) -> MetricsReader {
        MetricsReader {
            files: self
                .children
                .iter()
                .map(|c| (c.component, c.metrics.clone()))
                .collect(),
            carried: self.carried.clone(),
            pids: self.live.clone(),
        }
    }

    /// SIGTERM to every component, then waits (up to `grace` each) for them to flush and exit;
    /// one that does not is killed. Returns the final counters.
    pub async fn stop(mut self, grace: Duration) -> Result<ComponentMetrics, ComponentError> {
        for child in &self.children {
            if let Some(pid) = child.process.as_ref().and_then(|p| p.id()) {
                signal(pid, libc::SIGTERM);
            }
        }
        let mut unclean = None;
        for child in &mut self.children {
            let Some(process) = child.process.as_mut() else {
                continue;
            };
            match tokio::time::timeout(grace, process.wait()).await {
                Ok(Ok(status)) if status.success() || child.may_exit => {}
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
                    let _ = process.kill().await;
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
