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

/// `--metrics-file FILE`.
#[derive(Clone, Debug, clap::Args)]
pub struct MetricsArgs {
    /// Write counters as JSON to this file every second and on exit.
    #[arg(long)]
    pub metrics_file: Option<PathBuf>,
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

/// `--metrics-file`: rewritten every second while the component runs, and once more at the end
/// with the final counters.
pub struct MetricsFile<T> {
    path: Option<PathBuf>,
    task: Option<tokio::task::JoinHandle<()>>,
    snapshot: std::sync::Arc<dyn Fn() -> T + Send + Sync>,
}

impl<T: serde::Serialize + 'static> MetricsFile<T> {
    /// Starts the periodic writes (nothing happens without a path).
    pub fn start(path: Option<PathBuf>, snapshot: impl Fn() -> T + Send + Sync + 'static) -> Self {
        let snapshot: std::sync::Arc<dyn Fn() -> T + Send + Sync> = std::sync::Arc::new(snapshot);
        let task = path.clone().map(|path| {
            let snapshot = snapshot.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    if let Err(e) = write_json(&path, &snapshot()) {
                        tracing::warn!(path = %path.display(), error = %e, "writing the metrics file");
                    }
                }
            })
        });
        Self {
            path,
            task,
            snapshot,
        }
    }

    /// Stops the periodic writes and writes the final counters.
    pub fn finish(mut self) -> std::io::Result<()> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        match &self.path {
            Some(path) => write_json(path, &(self.snapshot)()).map_err(|e| {
                std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display()))
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::MetricsFile;

    #[tokio::test]
    async fn the_metrics_file_ends_with_the_final_counters() {
        let dir = std::env::temp_dir().join(format!("sluice-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.json");
        let counter = Arc::new(AtomicU64::new(1));
        let c = counter.clone();
        let file = MetricsFile::start(
            Some(path.clone()),
            move || serde_json::json!({ "n": c.load(Ordering::Relaxed) }),
        );
        counter.store(42, Ordering::Relaxed);
        file.finish().unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written["n"], 42);
        assert!(
            !path.with_extension("partial").exists(),
            "written atomically"
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let err = MetricsFile::start(Some(dir.join("missing/dir/m.json")), || 1)
            .finish()
            .unwrap_err();
        assert!(err.to_string().contains("missing/dir/m.json"), "{err}");
    }
}
