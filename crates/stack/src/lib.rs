//! Provisioning a Sluice stack: RabbitMQ, PostgreSQL, S3/SQS/SNS/CloudFormation and Snowflake.
//!
//! Providers:
//! - `native`: child processes on 127.0.0.1 (system RabbitMQ and PostgreSQL, LocalStack and
//!   fakesnow from pinned venvs), started in parallel, ready at the protocol level;
//! - `external`: endpoints and credentials from the environment (real AWS, Amazon MQ, a
//!   Snowflake account, a PostgreSQL URL); nothing is started or stopped;
//! - `containers`: the same services through testcontainers where a Docker engine answers
//!   (cargo feature `containers`).
//!
//! Every provider then applies `infra/`, and the stack's [`State`] is written to
//! `target/sluice/<stack>/state.json` for components, the harness and `down`.

mod apply;
mod broker;
pub mod containers;
pub mod deploy;
pub mod engine;
mod error;
mod external;
pub mod images;
pub mod native;
mod ports;
mod process;
mod readiness;
pub mod scratch;
mod up;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use process::Stop as _;

pub use broker::{kill_broker, start_broker_again};
pub use error::{Result, StackError};
pub use native::{Binaries, Ports};
pub use process::{log_tail, port_is_free};
pub use runtime::state::{
    Aws, ContainerRecord, Postgres, ProcessInfo, ProviderKind, RabbitMq, Snowflake, State,
    new_run_dir, stack_dir, state_path,
};
pub use runtime::{InvalidStackName, QueueTimeouts, StackName, StateError, redact_url};
pub use up::{Phase, UpOptions, UpOutcome, up};

/// `infra/` of this checkout.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

/// Applies `infra/snowflake/*.sql` (database, RAW tables, file format, stage) to a Snowflake;
/// `*.real-account.sql` only when `real_account`.
pub async fn apply_snowflake_ddl(config: snowflake::Config, real_account: bool) -> Result<()> {
    apply::snowflake(&infra_dir(), config, real_account).await
}

/// Applies `infra/postgres/*.sql` to a PostgreSQL database (see
/// `apply::postgres`).
pub async fn apply_postgres_schema(url: &str) -> Result<()> {
    apply::postgres(&infra_dir(), url).await
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DownOptions {
    /// Keep data and logs under `target/sluice/<stack>/` (the state file is removed).
    pub keep_data: bool,
    pub shutdown: Shutdown,
}

/// How a stack's processes are stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shutdown {
    /// Each service's own shutdown signal, a bounded wait, then SIGKILL: data stays consistent
    /// (RabbitMQ alone takes about 6 s).
    #[default]
    Graceful,
    /// SIGKILL to every process group at once: for stacks whose data is thrown away with them
    /// (the tests' scratch stacks).
    Kill,
}

impl Shutdown {
    fn signal(self, name: &str) -> i32 {
        match (self, name) {
            (Shutdown::Kill, _) => libc::SIGKILL,
            // fakesnow (uvicorn) and PostgreSQL (fast shutdown) stop cleanly on SIGINT.
            (Shutdown::Graceful, "fakesnow" | "postgres") => libc::SIGINT,
            (Shutdown::Graceful, _) => libc::SIGTERM,
        }
    }
}

#[derive(Debug)]
pub struct DownReport {
    pub stopped: Vec<(&'static str, u32)>,
    /// Container ids removed.
    pub removed_containers: Vec<String>,
    pub elapsed: Duration,
}

/// Stops exactly the processes the state names (graceful signal, bounded wait, then SIGKILL of
/// those process groups only) and removes the state.
pub fn down(root: &Path, name: &StackName, options: DownOptions) -> Result<DownReport> {
    let started = Instant::now();
    let state = match State::load(root, name) {
        Ok(state) => state,
        Err(not_found @ runtime::StateError::NotFound { .. }) => {
            // No state, but maybe the containers of an `up` that crashed before writing it.
            if let Some(engine) = engine::Engine::detect() {
                let ids = containers::labelled(&engine, name, &containers::checkout_label(root))?;
                if !ids.is_empty() {
                    containers::remove(&engine, &ids)?;
                    let _ = std::fs::remove_dir_all(stack_dir(root, name));
                    return Ok(DownReport {
                        stopped: Vec::new(),
                        removed_containers: ids,
                        elapsed: started.elapsed(),
                    });
                }
            }
            return Err(not_found.into());
        }
        Err(e) => return Err(e.into()),
    };
    let stopped = stop_processes(&state.processes(), options.shutdown);
    let removed_containers = remove_containers_of(root, &state);
    let dir = stack_dir(root, name);
    if options.keep_data {
        std::fs::remove_file(state_path(root, name))
            .map_err(error::io_err("removing the state file"))?;
    } else {
        std::fs::remove_dir_all(&dir)
            .map_err(error::io_err(format!("removing {}", dir.display())))?;
    }
    Ok(DownReport {
        stopped,
        removed_containers,
        elapsed: started.elapsed(),
    })
}

/// The engine a container stack runs on.
fn engine_of(state: &State) -> Option<engine::Engine> {
    state.docker_host.as_ref().map(|host| engine::Engine {
        host: host.clone(),
        origin: engine::Origin::Environment,
    })
}

/// Whether every process and container of a stack still runs.
pub(crate) fn alive(state: &State) -> bool {
    state.processes().iter().all(|(_, p)| p.is_alive())
        && (state.containers.is_empty()
            || engine_of(state).is_some_and(|e| {
                state
                    .containers
                    .iter()
                    .all(|c| containers::running(&e, &c.id))
            }))
}

/// Removes a stack's containers: those its state names, and any others with its labels.
pub(crate) fn remove_containers_of(root: &Path, state: &State) -> Vec<String> {
    let Some(engine) = engine_of(state) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = state.containers.iter().map(|c| c.id.clone()).collect();
    if let Ok(more) = containers::labelled(&engine, &state.stack, &containers::checkout_label(root))
    {
        for id in more {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    if let Err(e) = containers::remove(&engine, &ids) {
        tracing::warn!(error = %e, "could not remove every container; remove them with `docker rm -f`");
    }
    ids
}

/// Stops services in parallel (RabbitMQ's shutdown alone takes seconds), epmd after its node.
pub(crate) fn stop_processes(
    processes: &[(&'static str, &ProcessInfo)],
    shutdown: Shutdown,
) -> Vec<(&'static str, u32)> {
    let (epmd, services): (Vec<_>, Vec<_>) = processes.iter().partition(|(n, _)| *n == "epmd");
    std::thread::scope(|s| {
        for (name, p) in &services {
            s.spawn(move || p.stop(name, shutdown.signal(name), Duration::from_secs(15)));
        }
    });
    for (_, p) in &epmd {
        p.stop("epmd", shutdown.signal("epmd"), Duration::from_secs(5));
    }
    processes.iter().map(|(n, p)| (*n, p.pid)).collect()
}

#[derive(Debug, serde::Serialize)]
pub struct ServiceStatus {
    pub name: &'static str,
    pub endpoint: String,
    pub healthy: bool,
    pub pid: Option<u32>,
    pub uptime_secs: Option<u64>,
    /// The container's id (container provider).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Why it is not healthy, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct StatusReport {
    pub stack: String,
    pub provider: ProviderKind,
    /// What the stack's queues were created with.
    pub queue_timeouts: QueueTimeouts,
    pub services: Vec<ServiceStatus>,
}

/// Probes each service of a stack at the protocol level.
pub async fn status(root: &Path, name: &StackName) -> Result<StatusReport> {
    let state = State::load(root, name)?;
    let http = readiness::http_client();
    let r = &state.rabbitmq;
    let probe = |f: std::result::Result<(), String>, p: Option<&ProcessInfo>| {
        let alive = p.is_none_or(ProcessInfo::is_alive);
        match (f, alive) {
            (_, false) => (false, Some("process is gone".to_owned())),
            (Ok(()), true) => (true, None),
            (Err(e), true) => (false, Some(e)),
        }
    };
    let snowflake_probe = async {
        match snowflake::Config::from_state(&state.snowflake) {
            Ok(c) => readiness::snowflake(c).await,
            Err(e) => Err(e.to_string()),
        }
    };
    let (rabbit, pg, ls, sf) = tokio::join!(
        async {
            readiness::rabbitmq(&http, &r.management_url, &r.user, &r.password).await?;
            readiness::amqp(&r.amqp_url).await
        },
        readiness::postgres(&state.postgres.url),
        async {
            match &state.aws.endpoint_url {
                Some(e) => readiness::localstack(&http, e).await,
                None => Ok(()),
            }
        },
        snowflake_probe,
    );
    let stopped_containers: Vec<&str> = match engine_of(&state) {
        Some(engine) => state
            .containers
            .iter()
            .filter(|c| !containers::running(&engine, &c.id))
            .map(|c| c.service.as_str())
            .collect(),
        None => Vec::new(),
    };
    let entry = |name: &'static str, endpoint: String, result, p: Option<&ProcessInfo>| {
        let (healthy, problem) = if stopped_containers.contains(&name) {
            (false, Some("its container is not running".to_owned()))
        } else {
            probe(result, p)
        };
        ServiceStatus {
            name,
            endpoint,
            healthy,
            pid: p.map(|p| p.pid),
            uptime_secs: p.map(|p| p.uptime().as_secs()),
            container: state
                .containers
                .iter()
                .find(|c| c.service == name)
                .map(|c| c.id[..12.min(c.id.len())].to_owned()),
            problem,
        }
    };
    let services =
        vec![
            entry(
                "rabbitmq",
                redact_url(&r.amqp_url),
                rabbit,
                r.process.as_ref(),
            ),
            entry(
                "postgres",
                redact_url(&state.postgres.url),
                pg,
                state.postgres.process.as_ref(),
            ),
            entry(
                "localstack",
                state
                    .aws
                    .endpoint_url
                    .clone()
                    .unwrap_or_else(|| format!("AWS {}", state.aws.region)),
                ls,
                state.aws.process.as_ref(),
            ),
            entry(
                "fakesnow",
                state.snowflake.base_url.clone().unwrap_or_else(|| {
                    format!("{}.snowflakecomputing.com", state.snowflake.account)
                }),
                sf,
                state.snowflake.process.as_ref(),
            ),
        ];
    Ok(StatusReport {
        stack: state.stack.to_string(),
        provider: state.provider,
        queue_timeouts: state.aws.queue_timeouts,
        services,
    })
}
