//! `e2e`: one rig run proved right. The rig resets the stack, backfills, starts the
//! components, streams the scenario and drains it ([`crate::rig`]); then the components stop,
//! dbt builds the marts ([`dbt`]), and the marts are compared with the [`oracle`]'s, computed
//! from the events the run produced ([`diff`]), and the change log with its source
//! ([`changelog`]).
//!
//! Infrastructure failures (a service that does not answer) are errors; everything the run
//! proves or disproves is in the [`RunReport`], whose `problems` decide pass or fail.

pub mod airflow;
pub mod changelog;
pub mod dbt;
mod dbt_worker;
pub mod diff;
pub mod mart;
pub mod oracle;
pub mod waves;

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use backfill::history::HistoryReport;
use backfill::snapshot::SnapshotReport;
use events::Event;
use stack::StackName;
use synth::chaos::Fault;
use synth::{Generator, Scenario};

use crate::error::RunError;
use crate::rig::chaos::nemesis::FaultRecord;
use crate::rig::components::{ComponentBinaries, ComponentMetrics, ComponentOptions};
use crate::rig::oltp::Applied;
use crate::rig::publish::{Pacing, PublishReport};
use crate::rig::queues::QueueDepths;
use crate::rig::session::Session;
use crate::rig::warehouse::{self, LoadHistory, Misplaced, RawCount};
use crate::rig::{Clock, Progress, Rig, Round, Setup, StreamPart};
use airflow::{Airflow, AirflowConfig};
use changelog::ChangelogCheck;
use dbt::{Dbt, DbtCommand, DbtConfig, DbtReport};
use diff::{MartsDiff, diff_marts};
use mart::Marts;
use oracle::{Expected, expected_marts};

pub use crate::rig::Phase;

/// What to run, against which stack.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub scenario: Scenario,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// The folder the stack's state lives under (`<root>/target/sluice/<stack>`).
    pub root: PathBuf,
    pub stack: StackName,
    pub binaries: ComponentBinaries,
    /// How long the pipeline may take, after the last publish, to deliver everything to RAW.
    pub quiesce_timeout: Duration,
    /// This many of the stream's first events are also written into the PostgreSQL history, so
    /// the backfill and the stream both deliver them (staging must keep one of each).
    pub overlap: u64,
    pub pacing: Pacing,
    /// Faults to inject while the stream runs (the scenario's `[[chaos]]` or `--chaos`),
    /// validated against the scenario.
    pub chaos: Vec<Fault>,
    /// The components' logs and metrics files: a run folder of its own
    /// ([`stack::new_run_dir`]), which outlives the stack.
    pub work_dir: PathBuf,
    /// What dbt does after the stream: the models only, or also its data tests and source
    /// freshness.
    pub dbt: DbtSteps,
    /// Who runs dbt: the harness, or Airflow's DAG (which runs all of [`DbtSteps::All`]).
    pub orchestrator: Orchestrator,
    /// Another copy of the dbt project to build the marts with (a mutant, in the tests);
    /// None: `infra/dbt`.
    pub dbt_project: Option<PathBuf>,
}

impl RunConfig {
    /// The rig of an e2e run: this config's scenario, components and folder, with `chaos`
    /// (the schedule, or none), default component options and publishing in-process.
    fn setup<'a>(&'a self, seed: u64, chaos: &'a [Fault]) -> Setup<'a> {
        Setup {
            scenario: &self.scenario,
            seed,
            binaries: &self.binaries,
            work_dir: self.work_dir.clone(),
            chaos,
            options: ComponentOptions::default(),
            build: None,
            publishers: Default::default(),
        }
    }

    /// How to run dbt on `state`'s warehouse for this run: `infra/dbt`, or the copy in
    /// `dbt_project` with dbt's folders of its own (its manifest is another project's).
    fn dbt_config(&self, state: &stack::State) -> DbtConfig {
        let mut dbt_config = DbtConfig::for_stack(
            state,
            dbt::work_dir(state),
            self.scenario.supply.constrained,
        );
        if let Some(dir) = &self.dbt_project {
            let name = dir.file_name().unwrap_or_default().to_string_lossy();
            dbt_config.work_dir = dbt_config.work_dir.join(format!("project-{name}"));
            dbt_config.project_dir = dir.clone();
        }
        dbt_config
    }
}

/// Who builds the marts once everything is in RAW.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Orchestrator {
    /// The harness calls dbt itself (a dbt process kept per warehouse): the fast path.
    #[default]
    Dbt,
    /// Airflow's `sluice_marts` DAG, run once with `airflow dags test`, as production runs it.
    Airflow,
}

/// What dbt runs once everything is in RAW. The marts are compared with the oracle either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DbtSteps {
    /// `dbt run`, `dbt test` and `dbt source freshness`, as production's DAG runs them.
    #[default]
    All,
    /// `dbt run` alone: for runs whose question is the marts against the oracle (a fault
    /// schedule, a random scenario), where dbt's tests would say nothing the diff does not.
    ModelsOnly,
}

impl DbtSteps {
    fn commands(self) -> &'static [DbtCommand] {
        match self {
            DbtSteps::All => &[
                DbtCommand::Run,
                DbtCommand::Test,
                DbtCommand::SourceFreshness,
            ],
            DbtSteps::ModelsOnly => &[DbtCommand::Run],
        }
    }

    fn describe(self) -> String {
        let names: Vec<&str> = self.commands().iter().map(|c| c.as_str()).collect();
        format!("dbt {} ...", names.join(", "))
    }
}

impl RunConfig {
    pub fn new(
        scenario: Scenario,
        root: PathBuf,
        stack: StackName,
        binaries: ComponentBinaries,
    ) -> Self {
        let work_dir = stack::new_run_dir(&root, &stack, "e2e");
        Self {
            scenario,
            seed: None,
            root,
            stack,
            binaries,
            quiesce_timeout: Duration::from_secs(120),
            overlap: 0,
            pacing: Pacing::Scenario,
            chaos: Vec::new(),
            work_dir,
            dbt: DbtSteps::All,
            orchestrator: Orchestrator::Dbt,
            dbt_project: None,
        }
    }
}

/// How long a run may take to deliver everything after its last publish: two minutes, plus,
/// with faults, the stack's `redelivery` bound (both queues' visibility timeouts), since a
/// killed consumer's messages come back only after them.
pub fn default_quiesce_timeout(with_faults: bool, redelivery: Duration) -> Duration {
    let base = Duration::from_secs(120);
    if with_faults { base + redelivery } else { base }
}

/// What the generator produced for the run.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Produced {
    pub history: u64,
    pub stream: u64,
    pub duplicates: u64,
    pub late: u64,
    pub poison: u64,
    /// Events that revise an earlier key, and of those the ones that arrive superseded.
    pub revisions: u64,
    pub superseded: u64,
    /// Stream events also placed in the history.
    pub overlap: u64,
    /// Distinct event ids over history and stream: the rows staging must keep.
    pub distinct: u64,
}

/// Counts at every hop, as last observed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Hops {
    pub history: HistoryReport,
    pub snapshot: SnapshotReport,
    pub published: PublishReport,
    pub components: ComponentMetrics,
    pub queues: QueueDepths,
    pub raw_stream: RawCount,
    pub raw_backfill: RawCount,
    pub raw_union: RawCount,
    pub load_history: LoadHistory,
}

pub struct RunReport {
    pub scenario: String,
    pub seed: u64,
    pub phases: Vec<Phase>,
    pub produced: Produced,
    pub hops: Hops,
    /// Set when quiescence timed out: where the events are, hop by hop.
    pub stuck: Option<String>,
    pub dbt: Vec<DbtReport>,
    pub diff: Option<MartsDiff>,
    /// Stream rows checked against their file's partition, and the misplaced ones.
    pub partitions: Option<(u64, Vec<Misplaced>)>,
    /// The warehouse's marts, as read for the diff.
    pub marts: Option<Marts>,
    /// Each fault of the schedule as it happened, with its recovery and the duplicates it caused.
    pub faults: Vec<FaultRecord>,
    /// The OLTP workload and the change log, when the scenario has one.
    pub cdc: Option<CdcReport>,
    /// Files the pipe recorded as loaded more than once (must be none).
    pub loaded_twice: Vec<String>,
    /// Produced events missing from RAW, and RAW events the run never produced (first few).
    pub lost: Vec<String>,
    pub unexpected: Vec<String>,
    /// Everything that makes the run fail, one line each.
    pub problems: Vec<String>,
}

/// The change-data-capture part of a run.
pub struct CdcReport {
    pub applied: Applied,
    /// Rows the cdc's initial snapshot read, and how long from its start to its record.
    pub snapshot_rows: i64,
    pub snapshot_time: Duration,
    /// The change log against the source (None when the run stopped before dbt).
    pub check: Option<ChangelogCheck>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    /// Events per second from the first publish until the last streamed event was in RAW.
    pub fn stream_throughput(&self) -> Option<f64> {
        let span: Duration = self
            .phases
            .iter()
            .filter(|p| matches!(p.name, "stream" | "quiescence"))
            .map(|p| p.elapsed)
            .sum();
        (span > Duration::ZERO && self.stuck.is_none())
            .then(|| self.hops.raw_stream.distinct_events as f64 / span.as_secs_f64())
    }
}

/// The events of a run: the history (with the overlap), the stream's first emissions, and the
/// oracle's marts over both. The stream itself is generated again as it is published, so no
/// emission is held in memory twice.
struct Events {
    history: Vec<Event>,
    ids: HashSet<String>,
    expected: Expected,
    produced: Produced,
}

fn events(scenario: &Scenario, seed: u64, overlap: u64) -> Events {
    let mut generator = Generator::new(scenario, Some(seed));
    let mut history: Vec<Event> = generator.history().collect();
    let stream_events: Vec<Event> = generator.first_events().collect();
    let stats = generator.stats().clone();
    let expected = expected_marts(history.iter().chain(stream_events.iter()));
    let ids = history
        .iter()
        .chain(stream_events.iter())
        .map(|e| e.event_id().to_owned())
        .collect();
    let overlap: Vec<Event> = stream_events.into_iter().take(overlap as usize).collect();
    let produced = Produced {
        history: stats.history,
        stream: stats.stream_events(),
        duplicates: stats.duplicates,
        late: stats.late,
        poison: stats.poison,
        revisions: stats.revisions,
        superseded: stats.superseded,
        overlap: overlap.len() as u64,
        distinct: expected.distinct_events,
    };
    history.extend(overlap);
    Events {
        history,
        ids,
        expected,
        produced,
    }
}

/// Runs the scenario end to end and proves it. `progress` receives one line per step and,
/// while waiting, a line every few seconds.
pub async fn run(config: &RunConfig, progress: &mut dyn Progress) -> Result<RunReport, RunError> {
    let session = Session::open(&config.root, &config.stack).await?;
    let scenario = &config.scenario;
    let seed = config.seed.unwrap_or(scenario.seed);
    let mut clock = Clock::new();

    // A clean slate: the warehouse must hold exactly this run's events.
    session.reset().await?;
    progress.step("reset RAW, LOAD_HISTORY, history.events and every queue");
    let Events {
        history,
        ids,
        expected,
        produced,
    } = events(scenario, seed, config.overlap);
    let mut problems: Vec<String> = expected
        .conflicts
        .iter()
        .map(|id| format!("the generator produced event {id} with two payloads"))
        .collect();
    // dbt imports itself and parses the project while the events flow.
    let dbt = Dbt::new(config.dbt_config(&session.state))?;
    let airflow = match config.orchestrator {
        Orchestrator::Dbt => {
            dbt.prepare();
            None
        }
        Orchestrator::Airflow => Some(std::sync::Arc::new(Airflow::new(
            AirflowConfig::for_stack(
                &session.state,
                dbt.config().clone(),
                config.work_dir.clone(),
            ),
        )?)),
    };
    clock.lap("reset");

    let setup = config.setup(seed, &config.chaos);
    let snapshot_id = format!("e2e-{}-{seed}", scenario.name);
    let (mut rig, (history_report, snapshot_report)) = Box::pin(Rig::prepare(
        session,
        &setup,
        history.into_iter(),
        snapshot_id,
        progress,
        &mut clock,
    ))
    .await?;
    let round = Round {
        scenario,
        seed,
        chaos: &config.chaos,
        pacing: config.pacing,
        stamp_publish_time: false,
        warm_up: Duration::ZERO,
        drain_timeout: config.quiesce_timeout,
        drain_interval: Duration::from_millis(500),
        expected_ids: &ids,
        part: StreamPart::WHOLE,
    };
    // Boxed: a round's future is large, and test threads have small stacks.
    let outcome = Box::pin(rig.round(&round, &mut (), progress)).await?;
    clock.record(&[
        ("stream", outcome.stream_time),
        ("quiescence", outcome.drain_time),
    ]);
    let snapshot = rig.snapshot;
    let (session, stopped) = rig.finish().await;
    let mut hops = Hops {
        history: history_report,
        snapshot: snapshot_report,
        published: outcome.published,
        components: outcome.drained.observed.components.clone(),
        queues: outcome.drained.observed.queues.clone(),
        raw_stream: outcome.drained.observed.raw_stream.clone(),
        ..Hops::default()
    };
    match stopped {
        Ok(final_metrics) => hops.components = final_metrics,
        Err(e) => problems.push(format!("a component did not stop cleanly: {e}")),
    }
    let sf = &session.sf;
    hops.raw_backfill = warehouse::raw_count(sf, "EVENTS_BACKFILL").await?;
    hops.raw_union = warehouse::raw_union(sf).await?;
    hops.load_history = warehouse::load_history(sf).await?;
    hops.queues = session.queues.depths().await?;
    clock.lap("stop components");

    problems.extend(outcome.problems);
    let mut report = RunReport {
        scenario: scenario.name.clone(),
        seed,
        phases: Vec::new(),
        produced,
        hops,
        stuck: outcome.drained.stuck,
        dbt: Vec::new(),
        diff: None,
        partitions: Some(outcome.partitions),
        marts: None,
        faults: outcome.faults,
        cdc: outcome.applied.map(|applied| {
            let (snapshot_rows, snapshot_time) = snapshot.unwrap_or_default();
            CdcReport {
                applied,
                snapshot_rows,
                snapshot_time,
                check: None,
            }
        }),
        loaded_twice: outcome.loaded_twice,
        lost: outcome.lost,
        unexpected: outcome.unexpected,
        problems,
    };
    if report.stuck.is_none() {
        prove(
            &session,
            MartsBuilder { dbt: &dbt, airflow },
            config,
            &expected,
            &mut report,
            progress,
            &mut clock,
        )
        .await?;
    }
    report.phases = clock.phases;
    session.close().await;
    Ok(report)
}

/// Who builds the marts in [`prove`]: the harness's dbt, or Airflow's DAG when there is one.
struct MartsBuilder<'a> {
    dbt: &'a Dbt,
    airflow: Option<std::sync::Arc<Airflow>>,
}

/// dbt, then the marts against the oracle, the change log against its source, and RAW's
/// distinct events against the run's.
async fn prove(
    session: &Session,
    builder: MartsBuilder<'_>,
    config: &RunConfig,
    expected: &Expected,
    report: &mut RunReport,
    progress: &mut dyn Progress,
    clock: &mut Clock,
) -> Result<(), RunError> {
    // Not `dbt build`: a failed test would skip the marts downstream, and the diff is what says
    // which rows are wrong.
    let dbt_reports = match builder.airflow {
        None => {
            progress.step(&config.dbt.describe());
            builder.dbt.invoke(config.dbt.commands()).await?
        }
        Some(airflow) => {
            progress.step(&format!(
                "airflow dags test {} (tasks {}) ...",
                airflow::DAG_ID,
                airflow::TASKS.join(", ")
            ));
            let run = airflow.run().await?;
            progress.step(&format!(
                "airflow: the {} run {} in {:.1}s (log: {})",
                airflow::DAG_ID,
                if run.succeeded { "succeeded" } else { "failed" },
                run.elapsed.as_secs_f64(),
                run.log.display()
            ));
            report.problems.extend(run.problems());
            run.reports()
        }
    };
    for r in &dbt_reports {
        progress.step(r.to_string().trim_end());
        for f in &r.failures {
            report.problems.push(format!(
                "dbt {}: {} {}: {}",
                r.command, f.status, f.unique_id, f.message
            ));
        }
    }
    // The models' report comes first (`dbt run`, or the DAG's `dbt_run` task if it ran).
    let built = dbt_reports
        .first()
        .is_some_and(|models| models.command == "run" && models.models > 0 && models.ok());
    report.dbt = dbt_reports;
    clock.lap("dbt");

    // Marts are read even when a model failed, as long as they exist: reset dropped them, so
    // what is there was built by this run.
    if built || warehouse::marts_exist(&session.sf).await? {
        let actual = warehouse::read_marts(&session.sf).await?;
        let diff = diff_marts(&expected.marts, &actual);
        report.problems.extend(diff.problems("the oracle"));
        report.diff = Some(diff);
        report.marts = Some(actual);
    }
    if let Some(cdc) = report.cdc.as_mut() {
        let check = changelog::check(
            &session.pg,
            &session.sf,
            &cdc.applied,
            &expected.marts.fct_orders,
        )
        .await?;
        report.problems.extend(check.diff.problems("the source"));
        for (lsn, changes, size) in check.partial.iter().take(5) {
            report.problems.push(format!(
                "the transaction committed at LSN {lsn} is in RAW.CDC_CHANGES in part: {changes} of its {size} changes"
            ));
        }
        let expected_changes = cdc.applied.row_changes();
        if check.raw.distinct_events < expected_changes {
            report.problems.push(format!(
                "RAW.CDC_CHANGES holds {} distinct row changes; the workload made {expected_changes}",
                check.raw.distinct_events
            ));
        }
        cdc.check = Some(check);
    }
    if report.hops.raw_union.distinct_events != report.produced.distinct {
        report.problems.push(format!(
            "RAW holds {} distinct events; the run produced {}",
            report.hops.raw_union.distinct_events, report.produced.distinct
        ));
    }
    clock.lap("checks");
    Ok(())
}

impl RunReport {
    /// The change-data-capture section, when the run had a workload.
    fn write_cdc(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(cdc) = &self.cdc else {
            return Ok(());
        };
        let m = &self.hops.components;
        let w = &cdc.applied.stats;
        writeln!(f, "change data capture")?;
        writeln!(
            f,
            "  workload      {} rows before the cdc started, then {} transactions: {} inserts, {} updates, {} deletes ({} started late)",
            w.initial_rows, w.transactions, w.inserts, w.updates, w.deletes, cdc.applied.behind
        )?;
        writeln!(
            f,
            "  snapshot      {} rows read and confirmed in {:.1}s",
            cdc.snapshot_rows,
            cdc.snapshot_time.as_secs_f64()
        )?;
        if let Some(c) = &m.cdc {
            let latency = c
                .commit_to_confirm_us
                .decode()
                .ok()
                .filter(|h| !h.is_empty());
            writeln!(
                f,
                "  captured      {} changes in {} transactions published, {} confirmed; {} restarts{}",
                c.changes,
                c.transactions,
                c.confirmed_changes,
                c.restarts,
                latency.map_or(String::new(), |h| format!(
                    "; commit to broker confirm p50 {:.1} ms, p99 {:.1} ms",
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0
                ))
            )?;
        }
        if let Some(check) = &cdc.check {
            writeln!(
                f,
                "  change log    {} RAW rows -> {} distinct row changes (the workload made {}); {} partial transactions",
                check.raw.rows,
                check.raw.distinct_events,
                cdc.applied.row_changes(),
                check.partial.len()
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.produced;
        let h = &self.hops;
        let m = &h.components;
        writeln!(f, "e2e {} (seed {})", self.scenario, self.seed)?;
        writeln!(f, "events")?;
        writeln!(
            f,
            "  produced      {} history + {} stream ({} late), {} duplicates, {} poison; {} stream events also in history",
            p.history, p.stream, p.late, p.duplicates, p.poison, p.overlap
        )?;
        writeln!(
            f,
            "  revisions     {} events revise an earlier key ({} arrive after the event that supersedes them)",
            p.revisions, p.superseded
        )?;
        writeln!(
            f,
            "  backfilled    {} into PostgreSQL, {} into RAW.EVENTS_BACKFILL",
            h.history.inserted, h.snapshot.inserted
        )?;
        writeln!(f, "  published     {} bodies", h.published.published)?;
        if let Some(r) = &m.relay {
            writeln!(
                f,
                "  forwarded     {} by the relay in {} SQS messages; {} dead-lettered",
                r.forwarded, r.sqs_messages, r.dead_lettered
            )?;
        }
        if let Some(b) = &m.batcher {
            writeln!(
                f,
                "  written       {} events in {} files by the batcher",
                b.events_written, b.objects_written
            )?;
        }
        if let Some(pipe) = &m.pipe {
            writeln!(
                f,
                "  loaded        {} rows from {} files by the pipe ({} failed files)",
                pipe.rows_loaded, pipe.files_loaded, pipe.files_failed
            )?;
        }
        writeln!(
            f,
            "  deduplicated  {} RAW rows -> {} distinct events ({} copies dropped by staging)",
            h.raw_union.rows,
            h.raw_union.distinct_events,
            h.raw_union.rows.saturating_sub(h.raw_union.distinct_events)
        )?;
        writeln!(
            f,
            "  dead-lettered {} in the RabbitMQ dead-letter queue, {} in the SQS one",
            h.queues.rabbit_dead_letter, h.queues.ingest_dead_letter.visible
        )?;
        if h.published.republished > 0 || h.published.reconnects > 0 {
            writeln!(
                f,
                "  republished   {} bodies after {} publisher reconnects (unconfirmed when the link broke)",
                h.published.republished, h.published.reconnects
            )?;
        }
        self.write_cdc(f)?;
        if !self.faults.is_empty() {
            writeln!(f, "faults")?;
            for r in &self.faults {
                writeln!(f, "  {r}")?;
            }
            writeln!(
                f,
                "  files loaded twice: {}; lost events: {}; unexpected events: {}",
                self.loaded_twice.len(),
                self.lost.len(),
                self.unexpected.len()
            )?;
        }
        if let Some(stuck) = &self.stuck {
            writeln!(f, "stuck\n{stuck}")?;
        }
        for dbt in &self.dbt {
            write!(f, "{dbt}")?;
        }
        if let Some(diff) = &self.diff {
            writeln!(f, "marts vs oracle")?;
            for line in diff.to_string().lines() {
                writeln!(f, "  {line}")?;
            }
        }
        if let Some((checked, misplaced)) = &self.partitions {
            writeln!(
                f,
                "partitions: {checked} streamed rows checked, {} outside their source/date partition",
                misplaced.len()
            )?;
        }
        if let Some(check) = self.cdc.as_ref().and_then(|c| c.check.as_ref()) {
            writeln!(
                f,
                "change log vs the source (PostgreSQL and the workload's history)"
            )?;
            for line in check.diff.to_string().lines() {
                writeln!(f, "  {line}")?;
            }
        }
        writeln!(f, "phases")?;
        for phase in &self.phases {
            writeln!(
                f,
                "  {:<16} {:>6.1}s",
                phase.name,
                phase.elapsed.as_secs_f64()
            )?;
        }
        let total: Duration = self.phases.iter().map(|p| p.elapsed).sum();
        writeln!(f, "  {:<16} {:>6.1}s", "total", total.as_secs_f64())?;
        if let Some(rate) = self.stream_throughput() {
            writeln!(
                f,
                "throughput: {rate:.0} events/s from first publish to the last streamed event in RAW"
            )?;
        }
        if self.passed() {
            let also = if self.cdc.is_some() {
                ", and the change log matches the source"
            } else {
                ""
            };
            writeln!(f, "PASS: the marts match the oracle{also}")
        } else {
            writeln!(f, "FAIL:")?;
            for problem in &self.problems {
                writeln!(f, "  - {problem}")?;
            }
            Ok(())
        }
    }
}
