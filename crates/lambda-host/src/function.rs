//! A function's execution environments: each one process of the `bootstrap`, with a Runtime
//! API of its own, started before the first invocation and started again when it exits (a
//! crash, or a kill at its timeout), as Lambda replaces a failed environment.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::api::{EnvState, Invocation, Outcome};

/// What Lambda would know of the function.
#[derive(Clone, Debug)]
pub struct FunctionConfig {
    pub name: String,
    pub bootstrap: PathBuf,
    /// The function's environment variables (beside the Runtime API's own).
    pub env: Vec<(String, String)>,
    /// Environments at once: the event-source mapping's `ScalingConfig.MaximumConcurrency`.
    pub concurrency: usize,
    /// An invocation not answered within this is ended and its environment killed.
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Extra variables for the first environment's first process only (an armed fault).
    pub first_env: Vec<(String, String)>,
    /// Each process writes its counters here (`SLUICE_METRICS_FILE=<dir>/env-<i>-<n>.json`).
    pub metrics_dir: Option<PathBuf>,
}

/// What the environments did, for the host's metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub invocations: AtomicU64,
    pub responses: AtomicU64,
    pub errors: AtomicU64,
    pub crashes: AtomicU64,
    pub timeouts: AtomicU64,
    pub processes_started: AtomicU64,
    cold_starts_us: Mutex<Vec<u64>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub invocations: u64,
    pub responses: u64,
    /// Invocations the function answered with an error.
    pub errors: u64,
    /// Invocations whose process exited while holding them.
    pub crashes: u64,
    pub timeouts: u64,
    pub processes_started: u64,
    /// From a process's start to its first request for an invocation, in microseconds.
    pub cold_starts_us: Vec<u64>,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            invocations: self.invocations.load(Relaxed),
            responses: self.responses.load(Relaxed),
            errors: self.errors.load(Relaxed),
            crashes: self.crashes.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            processes_started: self.processes_started.load(Relaxed),
            cold_starts_us: self.cold_starts_us.lock().expect("cold starts").clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("the bootstrap {} does not exist: build it with `cargo build -p batcher --bins`", .0.display())]
    NoBootstrap(PathBuf),
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    #[error("creating the metrics folder {}: {source}", path.display())]
    MetricsDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The running function.
pub struct Function {
    queue: mpsc::Sender<Invocation>,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    environments: JoinSet<()>,
}

impl Function {
    /// Starts `concurrency` environments; each process's first request for work ends its cold
    /// start.
    pub async fn start(config: FunctionConfig) -> Result<Self, FunctionError> {
        if !config.bootstrap.is_file() {
            return Err(FunctionError::NoBootstrap(config.bootstrap));
        }
        if config.concurrency == 0 {
            return Err(FunctionError::NoConcurrency);
        }
        if let Some(dir) = &config.metrics_dir {
            std::fs::create_dir_all(dir).map_err(|source| FunctionError::MetricsDir {
                path: dir.clone(),
                source,
            })?;
        }
        let (queue, rx) = mpsc::channel::<Invocation>(config.concurrency);
        let rx = Arc::new(AsyncMutex::new(rx));
        let stats = Arc::new(Stats::default());
        let (stop, stopped) = watch::channel(false);
        let config = Arc::new(config);
        let mut environments = JoinSet::new();
        for index in 0..config.concurrency {
            environments.spawn(supervise(
                index,
                rx.clone(),
                config.clone(),
                stats.clone(),
                stopped.clone(),
            ));
        }
        Ok(Self {
            queue,
            stats,
            stop,
            environments,
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Invokes the function with `payload` and waits for the outcome (at most its timeout once
    /// an environment took it).
    pub async fn invoke(&self, payload: Vec<u8>) -> Outcome {
        let (reply, outcome) = oneshot::channel();
        let invocation = Invocation {
            request_id: uuid::Uuid::new_v4().to_string(),
            payload,
            reply,
        };
        self.stats.invocations.fetch_add(1, Relaxed);
        if self.queue.send(invocation).await.is_err() {
            return Outcome::Crashed("the function is shut down".into());
        }
        let outcome = outcome.await.unwrap_or_else(|_| {
            Outcome::Crashed("the environment went away holding the invocation".into())
        });
        let counter = match &outcome {
            Outcome::Response(_) => &self.stats.responses,
            Outcome::Error(_) => &self.stats.errors,
            Outcome::Crashed(_) => &self.stats.crashes,
            Outcome::TimedOut(_) => &self.stats.timeouts,
        };
        counter.fetch_add(1, Relaxed);
        outcome
    }

    /// Stops every environment (SIGTERM, then SIGKILL after 2 s), after the invocations held
    /// now are answered.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.environments.join_next().await.is_some() {}
    }
}

/// Runs one environment's processes, one after another, until the function stops. Each process
/// gets a Runtime API of its own, so a request a dead process left waiting dies with it.
async fn supervise(
    index: usize,
    queue: Arc<AsyncMutex<mpsc::Receiver<Invocation>>>,
    config: Arc<FunctionConfig>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut generation = 0u32;
    while !*stop.borrow() {
        let state = Arc::new(EnvState {
            queue: queue.clone(),
            held: Mutex::new(None),
            function_arn: format!("arn:aws:lambda:local:000000000000:function:{}", config.name),
            timeout: config.timeout,
            ready: Mutex::new(None),
            init_error: Mutex::new(None),
        });
        let (api_addr, api) = match crate::api::serve(state.clone()).await {
            Ok(served) => served,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind a Runtime API on 127.0.0.1");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut command = tokio::process::Command::new(&config.bootstrap);
        command
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", api_addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &config.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                config.memory_mb.to_string(),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", config.name),
            )
            .env(
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("env-{index}/{generation}"),
            )
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if index == 0 && generation == 0 {
            command.envs(config.first_env.iter().map(|(k, v)| (k, v)));
        }
        if let Some(dir) = &config.metrics_dir {
            command.env(
                "SLUICE_METRICS_FILE",
                dir.join(format!("env-{index}-{generation}.json")),
            );
        }
        // SAFETY: prctl(2) in the child before exec; it only asks the kernel to kill the child
        // when this process dies, so a killed host leaves no environment behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                api.abort();
                tracing::error!(bootstrap = %config.bootstrap.display(), error = %e, "cannot start the function's process");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        stats.processes_started.fetch_add(1, Relaxed);
        let pid = child.id();
        let mut cold_start_seen = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                _ = stop.changed() => {
                    // Let a held invocation finish, then ask the process to stop.
                    while state.held.lock().expect("held").is_some() {
                        tokio::select! {
                            status = child.wait() => {
                                state.finish(None, Outcome::Crashed(format!("exited ({status:?}) while stopping")));
                                break;
                            }
                            () = tokio::time::sleep(Duration::from_millis(20)) => {}
                        }
                    }
                    terminate(&mut child, pid).await;
                    api.abort();
                    return;
                }
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if !cold_start_seen && let Some(ready) = *state.ready.lock().expect("ready") {
                        cold_start_seen = true;
                        let us = ready.duration_since(started).as_micros() as u64;
                        stats.cold_starts_us.lock().expect("cold starts").push(us);
                        tracing::info!(environment = index, generation, cold_start_ms = us / 1000, "environment ready");
                    }
                    let overdue = state
                        .held
                        .lock()
                        .expect("held")
                        .as_ref()
                        .filter(|h| h.since.elapsed() > config.timeout)
                        .map(|h| h.request_id.clone());
                    if let Some(id) = overdue {
                        tracing::warn!(environment = index, request_id = %id, timeout = ?config.timeout, "invocation timed out; killing its environment");
                        state.finish(Some(&id), Outcome::TimedOut(config.timeout));
                        let _ = child.start_kill();
                    }
                }
            }
        };
        // The API goes first: a request for work the dead process left cannot take another.
        api.abort();
        let _ = api.await;
        let why = match &status {
            Ok(s) => s.to_string(),
            Err(e) => e.to_string(),
        };
        if state.finish(None, Outcome::Crashed(format!("its process {why}"))) {
            tracing::warn!(environment = index, generation, status = %why, "the environment's process exited holding an invocation; its records come back after the visibility timeout");
        } else {
            tracing::warn!(environment = index, generation, status = %why, "the environment's process exited");
        }
        let init_error = state.init_error.lock().expect("init error").take();
        if let Some(e) = init_error {
            tracing::error!(environment = index, error = %e, "the function failed to initialize");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        generation += 1;
    }
}

async fn terminate(child: &mut tokio::process::Child, pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: kill(2) on our own child's pid, which it still holds (not yet reaped).
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
