//! The marts built as production builds them: Airflow's `sluice_marts` DAG
//! (`infra/airflow/dags/sluice_marts.py`) run once with `airflow dags test`, against SQLite
//! metadata of the stack's own (no scheduler, no API server). Each of its tasks runs one dbt
//! command through `infra/dbt/invoke.py` and leaves that script's summary in its own folder, so
//! the run reads back the same [`DbtReport`]s as the direct path, plus what each task came to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::dbt::{self, DbtConfig, DbtError, DbtReport, Summary};

/// The DAG's id, as `infra/airflow/dags/sluice_marts.py` names it.
pub const DAG_ID: &str = "sluice_marts";

/// The DAG's tasks, in the order their reports are given: the models first.
pub const TASKS: [&str; 3] = ["dbt_run", "dbt_test", "dbt_source_freshness"];

#[derive(Debug, thiserror::Error)]
pub enum AirflowError {
    #[error(transparent)]
    Tools(#[from] pytools::ToolError),
    #[error(transparent)]
    Dbt(#[from] DbtError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`airflow db migrate` failed ({status}; log: {}):\n{tail}", log.display())]
    Migrate {
        status: String,
        log: PathBuf,
        tail: String,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> AirflowError {
    let context = context.into();
    move |source| AirflowError::Io { context, source }
}

/// Retries of a task before its failure is final and mailed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retries {
    pub count: u32,
    /// The first retry's delay; the DAG doubles it for each next one.
    pub delay: Duration,
}

impl Retries {
    /// None: a harness run wants the verdict, not a wait (the DAG's own default is 2 after 300 s).
    pub const NONE: Retries = Retries {
        count: 0,
        delay: Duration::ZERO,
    };
}

/// How to run the DAG for one stack.
#[derive(Clone, Debug)]
pub struct AirflowConfig {
    /// `AIRFLOW_HOME`: the SQLite metadata database and Airflow's own logs.
    pub home: PathBuf,
    /// Where a run's output goes (`dags-test.log`): the run's folder, which outlives the stack.
    pub log_dir: PathBuf,
    pub dags_dir: PathBuf,
    /// The dbt project, warehouse and vars the tasks use; the tasks' folders go under its
    /// `work_dir`, in `airflow/<task>`.
    pub dbt: DbtConfig,
    /// The stack the alert names.
    pub stack: String,
    pub retries: Retries,
    /// Where the on-failure notifier sends its mail; None leaves Airflow's `sluice_smtp`
    /// connection undefined (the alert then fails, and says so in the task's log).
    pub smtp: Option<SocketAddr>,
}

impl AirflowConfig {
    pub fn for_stack(state: &stack::State, dbt: DbtConfig, log_dir: PathBuf) -> Self {
        Self {
            home: state.dir.join("airflow"),
            log_dir,
            dags_dir: stack::infra_dir().join("airflow/dags"),
            dbt,
            stack: state.stack.as_str().to_owned(),
            retries: Retries::NONE,
            smtp: None,
        }
    }

    fn task_dir(&self, task: &str) -> PathBuf {
        self.dbt.work_dir.join("airflow").join(task)
    }
}

/// What a task came to.
#[derive(Clone, Debug)]
pub enum TaskOutcome {
    /// Its dbt command ran; the report says whether it passed.
    Ran(DbtReport),
    /// dbt did not finish (it could not parse the project or reach the warehouse), or the task
    /// never ran (an upstream task failed): no results to read.
    NoResults(String),
}

/// One run of the DAG.
#[derive(Clone, Debug)]
pub struct DagRun {
    /// Whether `airflow dags test` said the run succeeded.
    pub succeeded: bool,
    /// Each of [`TASKS`], in that order.
    pub tasks: Vec<(&'static str, TaskOutcome)>,
    pub elapsed: Duration,
    /// Airflow's own output for the run (each task's dbt output included).
    pub log: PathBuf,
}

impl DagRun {
    /// The dbt reports of the tasks that ran, models first.
    pub fn reports(&self) -> Vec<DbtReport> {
        self.tasks
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                TaskOutcome::Ran(report) => Some(report.clone()),
                TaskOutcome::NoResults(_) => None,
            })
            .collect()
    }

    /// One line per task without results, and one for a failed run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .tasks
            .iter()
            .filter_map(|(task, outcome)| match outcome {
                TaskOutcome::NoResults(why) => Some(format!(
                    "airflow: task {DAG_ID}.{task} left no dbt results ({why})"
                )),
                TaskOutcome::Ran(_) => None,
            })
            .collect();
        if !self.succeeded {
            problems.push(format!(
                "airflow: the {DAG_ID} run failed (log: {})",
                self.log.display()
            ));
        }
        problems
    }
}

pub struct Airflow {
    config: AirflowConfig,
    airflow: pytools::Venv,
    dbt_python: PathBuf,
}

impl Airflow {
    /// Finds (or installs, on first use) the pinned Airflow, and dbt for its tasks.
    pub fn new(config: AirflowConfig) -> Result<Self, AirflowError> {
        let infra_python = stack::infra_dir().join("python");
        let airflow = pytools::ensure(&pytools::ToolSet::airflow(&infra_python))?;
        let dbt_python = pytools::ensure(&pytools::ToolSet::warehouse(&infra_python))?.python();
        Ok(Self {
            config,
            airflow,
            dbt_python,
        })
    }

    pub fn config(&self) -> &AirflowConfig {
        &self.config
    }

    /// A command of the Airflow CLI with this stack's home, DAG folder and task environment.
    fn command(&self, args: &[&str]) -> Command {
        let config = &self.config;
        let mut cmd = Command::new(self.airflow.bin("airflow"));
        cmd.args(args)
            .env("AIRFLOW_HOME", &config.home)
            .env("AIRFLOW__CORE__DAGS_FOLDER", &config.dags_dir)
            .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
            // Airflow's own Python for itself; the tasks' dbt runs in its venv.
            .env_remove("PYTHONPATH")
            .env("SLUICE_DBT_PYTHON", &self.dbt_python)
            .env("SLUICE_DBT_PROJECT_DIR", &config.dbt.project_dir)
            .env("SLUICE_DBT_WORK_DIR", config.dbt.work_dir.join("airflow"))
            .env("SLUICE_DBT_VARS", config.dbt.vars())
            .env("SLUICE_STACK", &config.stack)
            .env("SLUICE_MARTS_RETRIES", config.retries.count.to_string())
            .env(
                "SLUICE_MARTS_RETRY_DELAY_SECONDS",
                config.retries.delay.as_secs().to_string(),
            )
            .envs(config.dbt.env())
            .stdin(Stdio::null());
        match config.smtp {
            Some(addr) => cmd.env(
                "AIRFLOW_CONN_SLUICE_SMTP",
                format!("smtp://{addr}?disable_tls=true&disable_ssl=true"),
            ),
            None => cmd.env_remove("AIRFLOW_CONN_SLUICE_SMTP"),
        };
        cmd
    }

    /// Runs `args` to its end, its output to `log`.
    fn run_logged(&self, args: &[&str], log: &Path) -> Result<ExitStatus, AirflowError> {
        let file =
            std::fs::File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
        let err = file
            .try_clone()
            .map_err(io_err("duplicating a log handle"))?;
        self.command(args)
            .stdout(file)
            .stderr(err)
            .status()
            .map_err(io_err(format!(
                "running {}",
                self.airflow.bin("airflow").display()
            )))
    }

    /// Creates the SQLite metadata database once per stack (about 9 s on 2 cores).
    fn migrate(&self) -> Result<(), AirflowError> {
        let home = &self.config.home;
        let done = home.join(".sluice-migrated");
        if done.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(home).map_err(io_err(format!("creating {}", home.display())))?;
        let log = home.join("db-migrate.log");
        let status = self.run_logged(&["db", "migrate"], &log)?;
        if !status.success() {
            return Err(AirflowError::Migrate {
                status: status.to_string(),
                tail: stack::log_tail(&log, 30),
                log,
            });
        }
        std::fs::write(&done, b"").map_err(io_err(format!("writing {}", done.display())))
    }

    /// One run of the DAG, as the scheduler would start it, to its end (blocking: run it on a
    /// blocking thread).
    pub fn run_blocking(&self) -> Result<DagRun, AirflowError> {
        self.migrate()?;
        for task in TASKS {
            let dir = self.config.task_dir(task);
            // A task that does not run this time must not be read with the last run's results.
            let _ = std::fs::remove_file(dir.join("summary.json"));
        }
        let dir = &self.config.log_dir;
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let log = dir.join("dags-test.log");
        let started = Instant::now();
        let succeeded = self.run_logged(&["dags", "test", DAG_ID], &log)?.success();
        let elapsed = started.elapsed();
        let mut tasks = Vec::new();
        for task in TASKS {
            let dir = self.config.task_dir(task);
            let outcome = match dbt::read_summary(&dir.join("summary.json"), &log)? {
                Summary::Read(mut reports) if reports.len() == 1 => {
                    TaskOutcome::Ran(reports.remove(0))
                }
                Summary::Read(reports) => {
                    TaskOutcome::NoResults(format!("{} commands in its summary", reports.len()))
                }
                Summary::Incomplete { what } => TaskOutcome::NoResults(what),
            };
            tasks.push((task, outcome));
        }
        Ok(DagRun {
            succeeded,
            tasks,
            elapsed,
            log,
        })
    }

    /// [`Self::run_blocking`] on a blocking thread.
    pub async fn run(self: std::sync::Arc<Self>) -> Result<DagRun, AirflowError> {
        tokio::task::spawn_blocking(move || self.run_blocking())
            .await
            .expect("the DAG run does not panic")
    }
}
