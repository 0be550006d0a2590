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
mod error;
mod external;
pub mod native;
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
    stack_dir, state_path,
};
pub use runtime::{InvalidStackName, StackName, StateError, redact_url};
pub use up::{Phase, UpOptions, UpOutcome, up};

/// `infra/` of this checkout.
pub fn infra_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra")
}

/// The client configuration for a stack's Snowflake (fakesnow, or a real account from the
/// environment), in the stack's database.
pub fn snowflake_config(state: &State) -> std::result::Result<snowflake::Config, snowflake::Error> {
    snowflake_config_of(&state.snowflake)
}

pub(crate) fn snowflake_config_of(
    s: &Snowflake,
) -> std::result::Result<snowflake::Config, snowflake::Error> {
    snowflake::Config::for_stack(s.base_url.as_deref(), &s.user, &s.database)
}

/// Applies `infra/snowflake/*.sql` (database, RAW tables, file format, stage) to a Snowflake;
/// `*.real-account.sql` only when `real_account`.
pub async fn apply_snowflake_ddl(config: snowflake::Config, real_account: bool) -> Result<()> {
    apply::snowflake(&infra_dir(), config, real_account).await
}

/// Applies `infra/postgres/history.sql` to a PostgreSQL database.
pub async fn apply_postgres_schema(url: &str) -> Result<()> {
    apply::postgres(&infra_dir(), url).await
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DownOptions {
    /// Keep data and logs under `target/sluice/<stack>/` (the state file is removed).
    pub keep_data: bool,
}

#[derive(Debug)]
pub struct DownReport {
    pub stopped: Vec<(&'static str, u32)>,
    pub elapsed: Duration,
}

/// Stops exactly the processes the state names (graceful signal, bounded wait, then SIGKILL of
/// those process groups only) and removes the state.
pub fn down(root: &Path, name: &StackName, options: DownOptions) -> Result<DownReport> {
    let started = Instant::now();
    let state = State::load(root, name)?;
    let stopped = stop_processes(&state.processes());
    containers::remove_containers(&state.containers);
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
        elapsed: started.elapsed(),
    })
}

/// Stops services in parallel (RabbitMQ's shutdown alone takes seconds), epmd after its node.
pub(crate) fn stop_processes(
    processes: &[(&'static str, &ProcessInfo)],
) -> Vec<(&'static str, u32)> {
    let signal_for = |name: &str| match name {
        // fakesnow (uvicorn) and PostgreSQL (fast shutdown) stop cleanly on SIGINT.
        "fakesnow" | "postgres" => libc::SIGINT,
        _ => libc::SIGTERM,
    };
    let (epmd, services): (Vec<_>, Vec<_>) = processes.iter().partition(|(n, _)| *n == "epmd");
    std::thread::scope(|s| {
        for (name, p) in &services {
            s.spawn(move || p.stop(name, signal_for(name), Duration::from_secs(15)));
        }
    });
    for (_, p) in &epmd {
        p.stop("epmd", libc::SIGTERM, Duration::from_secs(5));
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
    /// Why it is not healthy, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct StatusReport {
    pub stack: String,
    pub provider: ProviderKind,
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
        match crate::snowflake_config(&state) {
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
    let entry = |name: &'static str, endpoint: String, result, p: Option<&ProcessInfo>| {
        let (healthy, problem) = probe(result, p);
        ServiceStatus {
            name,
            endpoint,
            healthy,
            pid: p.map(|p| p.pid),
            uptime_secs: p.map(|p| p.uptime().as_secs()),
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
        services,
    })
}
