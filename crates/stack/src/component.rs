//! What every component binary (relay, batcher, pipe, backfill) shares: reading a stack's state
//! from `--stack`, logging, shutdown on SIGTERM or Ctrl-C, and a metrics file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{StackName, State};

/// `--stack NAME [--root DIR]`: take endpoints from a stack that `cargo xtask up` started.
#[derive(Clone, Debug, clap::Args)]
pub struct StackArgs {
    /// Take endpoints and credentials from this stack's state
    /// (`<root>/target/sluice/<stack>/state.json`, written by `cargo xtask up`).
    #[arg(long, env = "SLUICE_STACK")]
    pub stack: Option<StackName>,
    /// The checkout the stack lives under.
    #[arg(long, env = "SLUICE_ROOT", default_value = ".")]
    pub root: PathBuf,
}

impl StackArgs {
    pub fn load(&self) -> crate::Result<Option<State>> {
        self.stack
            .as_ref()
            .map(|name| State::load(&self.root, name))
            .transpose()
    }
}

/// `--aws-endpoint-url` / `--aws-region` for runs without a stack.
#[derive(Clone, Debug, clap::Args)]
pub struct AwsArgs {
    /// An S3/SQS/SNS endpoint override (LocalStack); unset means real AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,
}

impl AwsArgs {
    /// The stack's AWS settings when there is a stack, else these flags.
    pub fn resolve(&self, state: Option<&State>) -> crate::Aws {
        match state {
            Some(state) if self.aws_endpoint_url.is_none() => state.aws.clone(),
            _ => crate::Aws {
                endpoint_url: self.aws_endpoint_url.clone(),
                region: self.aws_region.clone(),
                process: None,
                outputs: state.map(|s| s.aws.outputs.clone()).unwrap_or_default(),
            },
        }
    }
}

/// Structured logs on stderr; `RUST_LOG` overrides the level (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C: shutting down"),
    }
}

/// Writes `value` as JSON to `path` atomically (write then rename), so readers never see half a
/// file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&partial, path)
}

/// Rewrites `path` with `snapshot()` every `every` until the task is dropped.
pub fn spawn_metrics_writer<T: serde::Serialize>(
    path: PathBuf,
    every: Duration,
    snapshot: impl Fn() -> T + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = write_json(&path, &snapshot()) {
                tracing::warn!(path = %path.display(), error = %e, "writing the metrics file");
            }
        }
    })
}
