//! Running the dbt project in `infra/dbt` with the pinned dbt-snowflake, against the stack's
//! warehouse: `dbt run`, `dbt test`, `dbt build` and `dbt source freshness`, each summarised
//! from dbt's own `run_results.json` / `sources.json`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use stack::State;

#[derive(Debug, thiserror::Error)]
pub enum DbtError {
    #[error(transparent)]
    Tools(#[from] pytools::ToolError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "dbt {command} exited with {status} without results (log: {}):\n{tail}",
        log.display()
    )]
    Crashed {
        command: &'static str,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("reading {}: {reason}", path.display())]
    Results { path: PathBuf, reason: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DbtError {
    let context = context.into();
    move |source| DbtError::Io { context, source }
}

/// How to run dbt for one stack.
#[derive(Clone, Debug)]
pub struct DbtConfig {
    pub project_dir: PathBuf,
    /// dbt's target and log folders (kept out of the checkout; reused so partial parsing works).
    pub work_dir: PathBuf,
    /// `emulator` for fakesnow, `real` for an account (credentials from the environment).
    pub target: &'static str,
    pub database: String,
    /// fakesnow's port, for the `emulator` target.
    pub fakesnow_port: Option<u16>,
    /// Whether the scenario constrains orders by stock (enables the units-sold test).
    pub supply_constrained: bool,
}

impl DbtConfig {
    pub fn for_stack(state: &State, work_dir: PathBuf, supply_constrained: bool) -> Self {
        let fakesnow_port = state
            .snowflake
            .base_url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.port_or_known_default());
        Self {
            project_dir: stack::infra_dir().join("dbt"),
            work_dir,
            target: if fakesnow_port.is_some() {
                "emulator"
            } else {
                "real"
            },
            database: state.snowflake.database.clone(),
            fakesnow_port,
            supply_constrained,
        }
    }
}

/// One node dbt did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFailure {
    pub unique_id: String,
    pub status: String,
    pub message: String,
}

/// What a dbt command did.
#[derive(Clone, Debug)]
pub struct DbtReport {
    pub command: &'static str,
    pub models: u64,
    pub tests: u64,
    pub passed: u64,
    pub failures: Vec<NodeFailure>,
    pub elapsed: Duration,
    pub log: PathBuf,
}

impl DbtReport {
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl std::fmt::Display for DbtReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dbt {}: {} models, {} tests/checks, {} passed, {} failed ({:.1}s)",
            self.command,
            self.models,
            self.tests,
            self.passed,
            self.failures.len(),
            self.elapsed.as_secs_f64()
        )?;
        for failure in &self.failures {
            writeln!(
                f,
                "  {} {}: {}",
                failure.status.to_uppercase(),
                failure.unique_id,
                failure.message
            )?;
        }
        if !self.ok() {
            writeln!(f, "  full dbt log: {}", self.log.display())?;
        }
        Ok(())
    }
}

pub struct Dbt {
    config: DbtConfig,
    program: PathBuf,
}

impl Dbt {
    /// Finds (or installs, on first use) the pinned dbt.
    pub fn new(config: DbtConfig) -> Result<Self, DbtError> {
        let venv = pytools::ensure(&pytools::ToolSet::warehouse(
            &stack::infra_dir().join("python"),
        ))?;
        Ok(Self {
            config,
            program: venv.bin("dbt"),
        })
    }

    /// `dbt build`: every model, then its tests (a failed test skips the models downstream).
    pub async fn build(&self) -> Result<DbtReport, DbtError> {
        self.run("build", &[]).await
    }

    /// `dbt run`: every model, whatever the tests would say.
    pub async fn run_models(&self) -> Result<DbtReport, DbtError> {
        self.run("run", &[]).await
    }

    /// `dbt test`: every data test, on the models as they are.
    pub async fn test(&self) -> Result<DbtReport, DbtError> {
        self.run("test", &[]).await
    }

    /// `dbt source freshness` on the RAW tables.
    pub async fn freshness(&self) -> Result<DbtReport, DbtError> {
        self.run("source freshness", &[]).await
    }

    async fn run(&self, command: &'static str, extra: &[&str]) -> Result<DbtReport, DbtError> {
        let target_path = self.config.work_dir.join("target");
        let log_dir = self.config.work_dir.join("logs");
        std::fs::create_dir_all(&log_dir)
            .map_err(io_err(format!("creating {}", log_dir.display())))?;
        let log = log_dir.join(format!("{}.log", command.replace(' ', "-")));
        let results_file = target_path.join(if command == "source freshness" {
            "sources.json"
        } else {
            "run_results.json"
        });
        let _ = std::fs::remove_file(&results_file);
        let out =
            std::fs::File::create(&log).map_err(io_err(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io_err("duplicating a log handle"))?;
        let vars = format!("{{supply_constrained: {}}}", self.config.supply_constrained);
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(command.split(' '))
            .arg("--project-dir")
            .arg(&self.config.project_dir)
            .arg("--profiles-dir")
            .arg(&self.config.project_dir)
            .arg("--target-path")
            .arg(&target_path)
            .args(["--vars", &vars])
            .args(extra)
            .env("DBT_LOG_PATH", &log_dir)
            .env("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
            .env("SLUICE_DBT_TARGET", self.config.target)
            .env("SNOWFLAKE_DATABASE", &self.config.database)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        if let Some(port) = self.config.fakesnow_port {
            cmd.env("SLUICE_FAKESNOW_PORT", port.to_string());
        }
        let started = Instant::now();
        let status = cmd
            .status()
            .await
            .map_err(io_err(format!("running {}", self.program.display())))?;
        let elapsed = started.elapsed();
        let Ok(text) = std::fs::read_to_string(&results_file) else {
            return Err(DbtError::Crashed {
                command,
                status,
                tail: stack::log_tail(&log, 30),
                log,
            });
        };
        let mut report = parse_results(command, &text).map_err(|reason| DbtError::Results {
            path: results_file.clone(),
            reason,
        })?;
        report.elapsed = elapsed;
        report.log = log;
        if !status.success() && report.ok() {
            // dbt failed outside any node (a compile error, say): the log says why.
            report.failures.push(NodeFailure {
                unique_id: format!("dbt {command}"),
                status: "error".into(),
                message: format!("exited with {status}; see the log"),
            });
        }
        Ok(report)
    }
}

/// Summarises `run_results.json` (build) or `sources.json` (freshness).
pub fn parse_results(command: &'static str, text: &str) -> Result<DbtReport, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let results = json["results"].as_array().ok_or("no `results` array")?;
    let mut report = DbtReport {
        command,
        models: 0,
        tests: 0,
        passed: 0,
        failures: Vec::new(),
        elapsed: Duration::ZERO,
        log: PathBuf::new(),
    };
    for result in results {
        let unique_id = result["unique_id"].as_str().unwrap_or("?").to_owned();
        let status = result["status"].as_str().unwrap_or("?").to_owned();
        if unique_id.starts_with("model.") {
            report.models += 1;
        } else {
            report.tests += 1;
        }
        // Freshness "warn" is still a pass; "error"/"runtime error" is not.
        if matches!(status.as_str(), "success" | "pass" | "warn") {
            report.passed += 1;
            continue;
        }
        let message = result["message"]
            .as_str()
            .or_else(|| result["error"].as_str())
            .unwrap_or("")
            .to_owned();
        let message = match result["failures"].as_u64() {
            Some(n) if n > 0 => format!("{n} failing rows ({message})"),
            _ => message,
        };
        report.failures.push(NodeFailure {
            unique_id,
            status,
            message,
        });
    }
    Ok(report)
}

/// The folder dbt's output for `stack` goes to.
pub fn work_dir(state: &State) -> PathBuf {
    state.dir.join("dbt")
}

#[cfg(test)]
mod tests {
    use super::parse_results;

    #[test]
    fn failing_tests_and_errors_are_reported_with_their_rows() {
        let text = r#"{"results": [
            {"unique_id": "model.sluice.dim_card", "status": "success", "message": "SUCCESS 1", "failures": null},
            {"unique_id": "test.sluice.unique_x", "status": "pass", "message": null, "failures": 0},
            {"unique_id": "test.sluice.assert_no_payload_conflicts", "status": "fail", "message": "Got 2 results, configured to fail if != 0", "failures": 2},
            {"unique_id": "model.sluice.fct_orders", "status": "error", "message": "Database Error: boom", "failures": null}
        ]}"#;
        let report = parse_results("build", text).unwrap();
        assert_eq!((report.models, report.tests, report.passed), (2, 2, 2));
        assert_eq!(report.failures.len(), 2);
        assert_eq!(
            report.failures[0].message,
            "2 failing rows (Got 2 results, configured to fail if != 0)"
        );
        assert!(!report.ok());
        let shown = report.to_string();
        assert!(
            shown.contains("FAIL test.sluice.assert_no_payload_conflicts"),
            "{shown}"
        );
        assert!(
            shown.contains("ERROR model.sluice.fct_orders: Database Error"),
            "{shown}"
        );
    }

    #[test]
    fn freshness_warnings_pass_and_errors_do_not() {
        let text = r#"{"results": [
            {"unique_id": "source.sluice.raw.EVENTS_STREAM", "status": "warn"},
            {"unique_id": "source.sluice.raw.EVENTS_BACKFILL", "status": "error", "error": "too old"}
        ]}"#;
        let report = parse_results("source freshness", text).unwrap();
        assert_eq!(report.passed, 1);
        assert_eq!(report.failures[0].message, "too old");
    }
}
