//! `--metrics-file`: a component's counters as JSON, rewritten every second and once more at the
//! end, so the harness (or an operator) can follow a running component without a metrics server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Writes `value` as JSON to `path` atomically (write then rename), so readers never see half a
/// file.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&partial, path)
}

pub struct MetricsFile<T> {
    path: Option<PathBuf>,
    task: Option<tokio::task::JoinHandle<()>>,
    snapshot: Arc<dyn Fn() -> T + Send + Sync>,
}

impl<T: serde::Serialize + 'static> MetricsFile<T> {
    /// Starts the periodic writes (nothing happens without a path).
    pub fn start(path: Option<PathBuf>, snapshot: impl Fn() -> T + Send + Sync + 'static) -> Self {
        let snapshot: Arc<dyn Fn() -> T + Send + Sync> = Arc::new(snapshot);
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
