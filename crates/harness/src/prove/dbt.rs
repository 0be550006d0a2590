//! Running the dbt project in `infra/dbt` with the pinned dbt-snowflake, against the stack's
//! warehouse: `dbt run`, `dbt test`, `dbt build` and `dbt source freshness` in one Python process
//! (`infra/dbt/invoke.py`), each summarised from dbt's own `run_results.json` / `sources.json`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dbt_worker::{self, Request, WorkerFailure, WorkerSpec};

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
        "dbt ({command}) ended without results ({status}; log: {}):\n{tail}",
        log.display()
    )]
    Crashed {
        command: String,
        /// The dbt process's exit status if it died, else why the results are missing.
        status: String,
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

    /// dbt's `--vars`.
    pub fn vars(&self) -> String {
        format!("{{supply_constrained: {}}}", self.supply_constrained)
    }

    /// What `infra/dbt/profiles.yml` reads from the environment to reach this warehouse.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("SLUICE_DBT_TARGET", self.target.to_owned()),
            ("SNOWFLAKE_DATABASE", self.database.clone()),
        ];
        if let Some(port) = self.fakesnow_port {
            env.push(("SLUICE_FAKESNOW_PORT", port.to_string()));
        }
        env
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

/// A dbt command the harness runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbtCommand {
    /// `dbt run`: every model, whatever the tests would say.
    Run,
    /// `dbt test`: every data test, on the models as they are.
    Test,
    /// `dbt build`: models and tests interleaved (a failed test skips the models downstream).
    Build,
    /// `dbt source freshness` on the RAW tables.
    SourceFreshness,
    /// `dbt run --full-refresh`: every model rebuilt whole, an incremental one included (a
    /// mutant built on a warehouse that already holds marts).
    RunFullRefresh,
    /// The analyses (`infra/dbt/analyses`) compiled to SQL for this warehouse.
    CompileAnalyses,
    /// dbt's docs site as one file (`static_index.html`), with the warehouse's catalog.
    DocsGenerate,
    /// FCT_ORDERS rebuilt whole from what its model reads, whatever it held (`dbt run
    /// --full-refresh --select fct_orders`): the reference its incremental merges must equal.
    FullRefreshOrders,
}

impl DbtCommand {
    fn parse(name: &str) -> Option<Self> {
        [
            Self::Run,
            Self::Test,
            Self::Build,
            Self::SourceFreshness,
            Self::FullRefreshOrders,
            Self::RunFullRefresh,
            Self::CompileAnalyses,
            Self::DocsGenerate,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DbtCommand::Run => "run",
            DbtCommand::Test => "test",
            DbtCommand::Build => "build",
            DbtCommand::SourceFreshness => "source freshness",
            DbtCommand::FullRefreshOrders => "run --full-refresh --select fct_orders",
            DbtCommand::RunFullRefresh => "run --full-refresh",
            DbtCommand::CompileAnalyses => "compile --select resource_type:analysis",
            DbtCommand::DocsGenerate => "docs generate --static",
        }
    }
}

pub struct Dbt {
    config: DbtConfig,
    python: PathBuf,
}

/// What `infra/dbt/invoke.py` reports.
#[derive(Debug, serde::Deserialize)]
struct SummaryFile {
    #[serde(default)]
    error: Option<String>,
    commands: Vec<CommandSummary>,
}

#[derive(Debug, serde::Deserialize)]
struct CommandSummary {
    command: String,
    seconds: f64,
    results: Option<PathBuf>,
}

impl Dbt {
    /// Finds (or installs, on first use) the pinned dbt.
    pub fn new(config: DbtConfig) -> Result<Self, DbtError> {
        let venv = pytools::ensure(&pytools::ToolSet::warehouse(
            &stack::infra_dir().join("python"),
        ))?;
        Ok(Self {
            config,
            python: venv.python(),
        })
    }

    /// The Python that has dbt (the DAG's tasks run `invoke.py` with it).
    pub fn python(&self) -> &Path {
        &self.python
    }

    pub fn config(&self) -> &DbtConfig {
        &self.config
    }

    /// dbt's target folder for this warehouse: compiled SQL, manifest, catalog, docs.
    pub fn target_path(&self) -> PathBuf {
        self.config.work_dir.join("target")
    }

    /// Starts this warehouse's dbt process, if none runs, and has it parse the project in the
    /// background, so that `invoke` later finds dbt imported and the manifest parsed (8 s on a
    /// 2-core machine, hidden behind a run's stream). Errors surface at `invoke`.
    pub fn prepare(&self) {
        let summary_file = self.config.work_dir.join("prepare-summary.json");
        let log = self.config.work_dir.join("logs").join("prepare.log");
        if let Ok(call) = self.request(&[], &summary_file, &log) {
            drop(tokio::task::spawn_blocking(call));
        }
    }

    /// A blocking call that sends `commands` to this warehouse's dbt process.
    fn request(
        &self,
        commands: &[&str],
        summary_file: &Path,
        log: &Path,
    ) -> Result<impl FnOnce() -> Result<(), WorkerFailure> + Send + 'static, DbtError> {
        let target_path = self.config.work_dir.join("target");
        let log_dir = self.config.work_dir.join("logs");
        std::fs::create_dir_all(&log_dir)
            .map_err(io_err(format!("creating {}", log_dir.display())))?;
        let vars = self.config.vars();
        let spec = WorkerSpec {
            python: self.python.clone(),
            script: stack::infra_dir().join("dbt/invoke.py"),
            env: self.config.env(),
            log: log_dir.join("worker.log"),
        };
        let (summary_file, log) = (summary_file.to_owned(), log.to_owned());
        let project_dir = self.config.project_dir.clone();
        let names: Vec<String> = commands.iter().map(|n| (*n).to_owned()).collect();
        Ok(move || {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            dbt_worker::call(
                &spec,
                &Request {
                    project_dir: &project_dir,
                    target_path: &target_path,
                    log_dir: &log_dir,
                    commands: &names,
                    vars: &vars,
                    summary: &summary_file,
                    log: &log,
                },
            )
        })
    }

    /// Runs `commands` in order in a dbt process kept for this project, folder and warehouse
    /// (see `dbt_worker` and `infra/dbt/invoke.py`), which imports dbt and parses the project
    /// once, not on every call; every command runs whatever the previous one found, and each is
    /// summarised from its own results file.
    pub async fn invoke(&self, commands: &[DbtCommand]) -> Result<Vec<DbtReport>, DbtError> {
        let log_dir = self.config.work_dir.join("logs");
        let names: Vec<&str> = commands.iter().map(|c| c.as_str()).collect();
        let log = log_dir.join(format!("{}.log", names.join("-").replace(' ', "-")));
        let summary_file = self.config.work_dir.join("invoke-summary.json");
        let _ = std::fs::remove_file(&summary_file);
        let _ = std::fs::remove_file(&log);
        let call = self.request(&names, &summary_file, &log)?;
        let answered = tokio::task::spawn_blocking(call)
            .await
            .expect("the dbt request does not panic");
        let status = match answered {
            Ok(()) => None,
            Err(WorkerFailure::Io(e)) => {
                return Err(DbtError::Io {
                    context: format!(
                        "running {} infra/dbt/invoke.py --serve",
                        self.python.display()
                    ),
                    source: e,
                });
            }
            Err(WorkerFailure::Died {
                status,
                log: worker_log,
            }) => Some((status, worker_log)),
        };
        let crashed = |what: String| {
            let (status, tail) = match &status {
                Some((status, worker_log)) => (
                    status.to_string(),
                    format!(
                        "{}\n(the dbt process's own output, {}):\n{}",
                        stack::log_tail(&log, 30),
                        worker_log.display(),
                        stack::log_tail(worker_log, 30)
                    ),
                ),
                None => ("no results".to_owned(), stack::log_tail(&log, 30)),
            };
            DbtError::Crashed {
                command: what,
                status,
                tail,
                log: log.clone(),
            }
        };
        match read_summary(&summary_file, &log)? {
            Summary::Read(reports) if reports.len() == commands.len() => Ok(reports),
            Summary::Read(_) => Err(crashed(names.join(", "))),
            Summary::Incomplete { what } => Err(crashed(what)),
        }
    }
}

/// What an `infra/dbt/invoke.py` summary file says.
pub(crate) enum Summary {
    /// Each command that ran, in order, summarised from its own results file.
    Read(Vec<DbtReport>),
    /// The summary, or a command's results, is missing: `what` names what dbt did not finish.
    Incomplete { what: String },
}

/// Reads `summary_file` and every results file it names; `log` is where dbt's output went.
pub(crate) fn read_summary(summary_file: &Path, log: &Path) -> Result<Summary, DbtError> {
    let Ok(text) = std::fs::read_to_string(summary_file) else {
        return Ok(Summary::Incomplete {
            what: format!("no summary at {}", summary_file.display()),
        });
    };
    let summary: SummaryFile = serde_json::from_str(&text).map_err(|e| DbtError::Results {
        path: summary_file.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(error) = summary.error {
        return Ok(Summary::Incomplete { what: error });
    }
    let mut reports = Vec::new();
    for ran in &summary.commands {
        let command = DbtCommand::parse(&ran.command).ok_or_else(|| DbtError::Results {
            path: summary_file.to_owned(),
            reason: format!("unknown dbt command `{}`", ran.command),
        })?;
        let Some(results) = &ran.results else {
            return Ok(Summary::Incomplete {
                what: format!("dbt {}", ran.command),
            });
        };
        let text = std::fs::read_to_string(results)
            .map_err(io_err(format!("reading {}", results.display())))?;
        let mut report =
            parse_results(command.as_str(), &text).map_err(|reason| DbtError::Results {
                path: results.clone(),
                reason,
            })?;
        report.elapsed = Duration::from_secs_f64(ran.seconds);
        report.log = log.to_owned();
        reports.push(report);
    }
    Ok(Summary::Read(reports))
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
        if unique_id.starts_with("model.") || unique_id.starts_with("analysis.") {
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

/// The folder dbt's output for `stack` goes to: beside the stack's folder rather than in it, so
/// dbt's partial parsing survives a `down` and `up` of the stack.
pub fn work_dir(state: &State) -> PathBuf {
    match state.dir.parent() {
        Some(parent) => parent.join(".dbt").join(state.stack.as_str()),
        None => state.dir.join("dbt"),
    }
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
