//! One end-to-end run against a stack that is up: reset, backfill, start the components,
//! publish the scenario, wait for quiescence, stop the components, dbt build and freshness,
//! then the checks (marts against the oracle, partitions, dead letters).
//!
//! Infrastructure failures (a service that does not answer) are errors; everything the run
//! proves or disproves is in the [`RunReport`], whose `problems` decide pass or fail.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backfill::history::HistoryReport;
use backfill::snapshot::SnapshotReport;
use events::Event;
use stack::StackName;
use synth::chaos::Fault;
use synth::{Generator, Scenario};

use crate::changelog::{self, ChangelogCheck, ChangelogError};
use crate::chaos::nemesis::{self, FaultRecord, Proxies, Targets, Tracker};
use crate::components::{ComponentBinaries, ComponentError, ComponentMetrics, ComponentOptions};
use crate::dbt::{Dbt, DbtCommand, DbtConfig, DbtError, DbtReport};
use crate::diff::{MartsDiff, diff_marts};
use crate::drain::{DrainError, Expect, Observed, drain};
use crate::mart::Marts;
use crate::oltp::{Applied, Driver, WorkloadError};
use crate::oracle::expected_marts;
use crate::publish::{Pacing, PublishConfig, PublishError, PublishReport, publish};
use crate::queues::{QueueDepths, QueueError};
use crate::session::{Session, SessionError};
use crate::warehouse::{self, LoadHistory, Misplaced, RawCount, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Dbt(#[from] DbtError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error("the cdc slot: {0}")]
    Cdc(#[from] cdc::CdcError),
    #[error(transparent)]
    Snapshot(#[from] crate::oltp::SnapshotWaitError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

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
}

impl RunConfig {
    pub fn new(
        scenario: Scenario,
        root: PathBuf,
        stack: StackName,
        binaries: ComponentBinaries,
    ) -> Self {
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

#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub elapsed: Duration,
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

/// Phase timing.
struct Clock {
    phases: Vec<Phase>,
    started: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            phases: Vec::new(),
            started: Instant::now(),
        }
    }

    fn lap(&mut self, name: &'static str) -> Duration {
        let elapsed = self.started.elapsed();
        self.phases.push(Phase { name, elapsed });
        self.started = Instant::now();
        elapsed
    }
}

/// Runs the scenario end to end. `progress` receives one line per step and, while waiting,
/// a line every few seconds.
pub async fn run(config: &RunConfig, progress: &dyn Fn(&str)) -> Result<RunReport, E2eError> {
    let mut session = Session::open(&config.root, &config.stack).await?;
    let scenario = &config.scenario;
    let seed = config.seed.unwrap_or(scenario.seed);
    let mut clock = Clock::new();
    let mut problems = Vec::new();

    // A clean slate: the warehouse must hold exactly this run's events.
    session.reset().await?;
    progress("reset RAW, LOAD_HISTORY, history.events and every queue");

    // The events: history, then the stream's first emissions (the oracle's input). The stream
    // itself is generated again as it is published, so no emission is held in memory twice.
    let mut generator = Generator::new(scenario, Some(seed));
    let history: Vec<Event> = generator.history().collect();
    let stream_events: Vec<Event> = generator.first_events().collect();
    let stats = generator.stats().clone();
    let overlap: Vec<Event> = stream_events
        .iter()
        .take(config.overlap as usize)
        .cloned()
        .collect();
    let expected = expected_marts(history.iter().chain(stream_events.iter()));
    let produced_ids: HashSet<String> = history
        .iter()
        .chain(stream_events.iter())
        .map(|e| e.event_id().to_owned())
        .collect();
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
    for id in &expected.conflicts {
        problems.push(format!(
            "the generator produced event {id} with two payloads"
        ));
    }
    clock.lap("reset");

    // Backfill: history (with any overlap) into PostgreSQL, then the snapshot into RAW.
    let (history_report, snapshot_report) = session
        .backfill(
            history.into_iter().chain(overlap),
            format!("e2e-{}-{seed}", scenario.name),
        )
        .await?;
    let mut hops = Hops {
        history: history_report,
        snapshot: snapshot_report,
        ..Hops::default()
    };
    let backfill_time = clock.lap("backfill");
    progress(&format!(
        "backfill: {} history events into PostgreSQL, {} rows into RAW.EVENTS_BACKFILL ({:.1}s)",
        hops.history.inserted,
        hops.snapshot.inserted,
        backfill_time.as_secs_f64()
    ));

    // The operational workload: a fresh slot, empty tables, then the rows its snapshot reads.
    let mut workload = synth::oltp::Workload::new(scenario, Some(seed));
    let mut driver = None;
    if let Some(workload) = workload.as_mut() {
        cdc::slot::reset(&session.pg, cdc::DEFAULT_SLOT).await?;
        Driver::reset(&session.pg).await?;
        let mut d = Driver::connect(&session.state.postgres.url).await?;
        d.initial(workload).await?;
        progress(&format!(
            "workload: {} rows in shop.customers and shop.order_status for the cdc's snapshot",
            workload.stats().initial_rows
        ));
        driver = Some(d);
    }
    clock.lap("workload setup");

    // The components, then the stream.
    let work_dir = session.state.dir.join("e2e");
    let proxies = Proxies::for_faults(&session.state, &config.chaos)
        .await
        .map_err(|source| E2eError::Io {
            context: "starting the fault proxies".into(),
            source,
        })?;
    let mut components = session.start_components(
        &config.binaries,
        scenario,
        &work_dir,
        &proxies.options(&session.state, ComponentOptions::default()),
    )?;
    let names: Vec<&str> = scenario.components().iter().map(|c| c.name()).collect();
    progress(&format!(
        "started {} (logs and metrics in {})",
        names.join(", "),
        work_dir.display()
    ));
    let snapshot = match &workload {
        Some(_) => Some(
            crate::oltp::wait_for_snapshot(
                &session.pg,
                &mut components,
                &work_dir.join("cdc.log"),
                progress,
            )
            .await?,
        ),
        None => None,
    };
    let total = stats.stream_events() + stats.duplicates + stats.poison;
    let mut publish_config = PublishConfig::new(session.state.rabbitmq.amqp_url.clone());
    publish_config.pacing = config.pacing;
    let mut last_report = Instant::now();
    let targets = Targets {
        root: config.root.clone(),
        stack: config.stack.clone(),
        proxies: &proxies,
        sqs: &session.sqs,
    };
    let mut tracker = Tracker::connect(&session.state, &config.chaos)
        .await
        .map_err(SessionError::Snowflake)?;
    let schedule_start = Instant::now();
    let done = tokio::sync::Notify::new();
    let mut say = |line: &str| progress(line);
    // The stream, the workload and the fault schedule together; the tracker watches until all
    // are over.
    let mut stream_generator = Generator::new(scenario, Some(seed));
    let applying = async {
        match (workload.as_mut(), driver.as_mut()) {
            (Some(workload), Some(driver)) => {
                driver
                    .run(workload, schedule_start, |n| {
                        progress(&format!("  workload: {n} transactions committed"))
                    })
                    .await?;
                driver.finish().await.map(Some)
            }
            _ => Ok(None),
        }
    };
    let work = async {
        let both = tokio::join!(
            publish(&publish_config, stream_generator.stream(), |n| {
                if last_report.elapsed() >= Duration::from_secs(2) {
                    last_report = Instant::now();
                    progress(&format!("  published {n}/{total}"));
                }
            },),
            nemesis::run(
                &config.chaos,
                schedule_start,
                &mut components,
                &targets,
                &mut say
            ),
        );
        done.notify_one();
        both
    };
    let tracking = async {
        if !config.chaos.is_empty() {
            tracker
                .run_until(&done, schedule_start, &session.queues)
                .await;
        }
    };
    let (((published, mut faults), ()), applied) =
        tokio::join!(async { tokio::join!(work, tracking) }, applying);
    hops.published = published?;
    let applied: Option<Applied> = applied?;
    let stream_time = clock.lap("stream");
    progress(&format!(
        "stream: published {} bodies in {:.1}s ({:.0}/s)",
        hops.published.published,
        stream_time.as_secs_f64(),
        hops.published.achieved_rate()
    ));

    // Quiescence: every queue drained and every streamed event in RAW.
    let expect = Expect {
        published: hops.published.published,
        poison: produced.poison,
        stream_distinct: produced.stream,
        cdc_changes: applied.as_ref().map(Applied::row_changes),
    };
    let mut last_progress = Instant::now();
    let done = tokio::sync::Notify::new();
    let draining = async {
        let r = drain(
            &expect,
            &mut components,
            &session.queues,
            &session.sf,
            config.quiesce_timeout,
            Duration::from_millis(500),
            |observed, gap| {
                if last_progress.elapsed() >= Duration::from_secs(3) {
                    last_progress = Instant::now();
                    progress(&format!(
                        "  waiting: {}/{} streamed events in RAW; {}",
                        observed.raw_stream.distinct_events,
                        expect.stream_distinct,
                        gap.unwrap_or("settling")
                    ));
                }
            },
        )
        .await;
        done.notify_one();
        r
    };
    // The tracker goes on through the drain: a fault's recovery may end there.
    let tracking = async {
        if !config.chaos.is_empty() {
            tracker
                .run_until(&done, schedule_start, &session.queues)
                .await;
        }
    };
    let (drained, ()) = tokio::join!(draining, tracking);
    let drained = drained?;
    tracker.complete(&mut faults);
    let Observed {
        components: last_metrics,
        queues: last_queues,
        raw_stream,
        ..
    } = drained.observed;
    hops.components = last_metrics;
    hops.queues = last_queues;
    hops.raw_stream = raw_stream;
    let stuck = drained.stuck;
    let quiesce_time = clock.lap("quiescence");
    match &stuck {
        None => progress(&format!(
            "quiescent after {:.1}s: every queue drained, {} streamed events in RAW",
            quiesce_time.as_secs_f64(),
            hops.raw_stream.distinct_events
        )),
        Some(where_) => problems.push(where_.clone()),
    }

    match components.stop(Duration::from_secs(20)).await {
        Ok(final_metrics) => hops.components = final_metrics,
        Err(e) => problems.push(format!("a component did not stop cleanly: {e}")),
    }
    let sf = &session.sf;
    hops.raw_backfill = warehouse::raw_count(sf, "EVENTS_BACKFILL").await?;
    hops.raw_union = warehouse::raw_union(sf).await?;
    hops.load_history = warehouse::load_history(sf).await?;
    hops.queues = session.queues.depths().await?;
    clock.lap("stop components");

    let mut report = RunReport {
        scenario: scenario.name.clone(),
        seed,
        phases: Vec::new(),
        produced,
        hops,
        stuck,
        dbt: Vec::new(),
        diff: None,
        partitions: None,
        marts: None,
        faults,
        cdc: applied.map(|applied| {
            let (snapshot_rows, snapshot_time) = snapshot.unwrap_or_default();
            CdcReport {
                applied,
                snapshot_rows,
                snapshot_time,
                check: None,
            }
        }),
        loaded_twice: Vec::new(),
        lost: Vec::new(),
        unexpected: Vec::new(),
        problems,
    };
    // Loss accounting by event id, so a failure names the events and not only a count; done
    // before a stuck run returns too, since events that never arrive are what leaves it stuck.
    let in_raw = warehouse::raw_event_ids(&session.sf).await?;
    let mut lost: Vec<String> = produced_ids.difference(&in_raw).cloned().collect();
    let mut unexpected: Vec<String> = in_raw.difference(&produced_ids).cloned().collect();
    lost.sort();
    unexpected.sort();
    for (what, ids) in [
        ("lost (produced, not in RAW)", &lost),
        ("unexpected (in RAW, never produced)", &unexpected),
    ] {
        if !ids.is_empty() {
            report.problems.push(format!(
                "{} events {what}: {}{}",
                ids.len(),
                ids.iter().take(10).cloned().collect::<Vec<_>>().join(", "),
                if ids.len() > 10 { ", ..." } else { "" }
            ));
        }
    }
    report.lost = lost;
    report.unexpected = unexpected;
    report.loaded_twice = warehouse::files_loaded_twice(&session.sf).await?;
    report
        .problems
        .extend(warehouse::loaded_twice_problem(&report.loaded_twice));
    report.problems.extend(nemesis::problems(&report.faults));
    if report.stuck.is_some() {
        report.phases = clock.phases;
        session.close().await;
        return Ok(report);
    }

    // dbt: the models, then the tests and source freshness. Not `dbt build`: a failed test
    // would skip the marts downstream, and the diff is what says which rows are wrong.
    progress("dbt run, test and source freshness ...");
    let state = &session.state;
    let dbt = Dbt::new(DbtConfig::for_stack(
        state,
        crate::dbt::work_dir(state),
        scenario.supply.constrained,
    ))?;
    let dbt_reports = dbt
        .invoke(&[
            DbtCommand::Run,
            DbtCommand::Test,
            DbtCommand::SourceFreshness,
        ])
        .await?;
    for r in &dbt_reports {
        progress(r.to_string().trim_end());
        for f in &r.failures {
            report.problems.push(format!(
                "dbt {}: {} {}: {}",
                r.command, f.status, f.unique_id, f.message
            ));
        }
    }
    let models = &dbt_reports[0];
    let built = models.models > 0 && models.ok();
    report.dbt = dbt_reports;
    clock.lap("dbt");

    // Checks.
    // Marts are read even when a model failed, as long as they exist: reset dropped them, so
    // what is there was built by this run.
    if built || warehouse::marts_exist(&session.sf).await? {
        let actual = warehouse::read_marts(&session.sf).await?;
        let diff = diff_marts(&expected.marts, &actual);
        report.problems.extend(diff.problems("the oracle"));
        report.diff = Some(diff);
        report.marts = Some(actual);
    }
    let (checked, misplaced) = warehouse::check_partitions(&session.sf).await?;
    for m in misplaced.iter().take(5) {
        report.problems.push(format!(
            "event {} ({}, occurred {}) was loaded from {}, outside its partition",
            m.event_id, m.source, m.occurred_at, m.file
        ));
    }
    if misplaced.len() > 5 {
        report
            .problems
            .push(format!("... {} misplaced events in all", misplaced.len()));
    }
    report.partitions = Some((checked, misplaced));
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
    let dead_lettered = report
        .hops
        .components
        .relay
        .as_ref()
        .map(|r| r.dead_lettered)
        .unwrap_or(0);
    // Under faults a poison body can be dead-lettered twice (the publisher re-sends what the
    // broker had not confirmed when it died; a restarted relay's counters start again): each
    // must be there at least once. Without faults, exactly once.
    let in_queue = report.hops.queues.rabbit_dead_letter;
    let poison = report.produced.poison;
    let dead_letters_ok = if config.chaos.is_empty() {
        dead_lettered == poison && in_queue == poison
    } else {
        in_queue >= poison
    };
    if !dead_letters_ok {
        report.problems.push(format!(
            "dead letters: {} poison bodies published, relay dead-lettered {}, dead-letter queue holds {}",
            report.produced.poison, dead_lettered, report.hops.queues.rabbit_dead_letter
        ));
    }
    if report.hops.raw_union.distinct_events != report.produced.distinct {
        report.problems.push(format!(
            "RAW holds {} distinct events; the run produced {}",
            report.hops.raw_union.distinct_events, report.produced.distinct
        ));
    }
    clock.lap("checks");
    report.phases = clock.phases;
    session.close().await;
    Ok(report)
}

/// What quiescence waits for.
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
        if let Some(cdc) = &self.cdc {
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
        }
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
