//! One end-to-end run against a stack that is up: reset, backfill, start the components,
//! publish the scenario, wait for quiescence, stop the components, dbt build and freshness,
//! then the checks (marts against the oracle, partitions, dead letters).
//!
//! Infrastructure failures (a service that does not answer) are errors; everything the run
//! proves or disproves is in the [`RunReport`], whose `problems` decide pass or fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use backfill::history::HistoryReport;
use backfill::snapshot::{SnapshotConfig, SnapshotReport};
use events::Event;
use stack::{StackName, State};
use synth::{Body, Generator, Scenario};

use crate::components::{ComponentBinaries, ComponentError, ComponentMetrics, Components};
use crate::dbt::{Dbt, DbtConfig, DbtError, DbtReport};
use crate::diff::{MartsDiff, diff_marts};
use crate::mart::Marts;
use crate::oracle::expected_marts;
use crate::publish::{Pacing, PublishConfig, PublishError, PublishReport, publish};
use crate::queues::{QueueDepths, QueueError, Queues};
use crate::warehouse::{self, LoadHistory, Misplaced, RawCount, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("reading the stack's state: {0}")]
    State(#[from] stack::StackError),
    #[error("connecting to Snowflake: {0}")]
    Snowflake(#[source] snowflake::Error),
    #[error("PostgreSQL ({what}): {source}")]
    Postgres {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("backfill: {0}")]
    Backfill(#[from] backfill::BackfillError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Component(#[from] ComponentError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Dbt(#[from] DbtError),
}

fn pg_err(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> E2eError {
    move |source| E2eError::Postgres { what, source }
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
        }
    }
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
    /// Everything that makes the run fail, one line each.
    pub problems: Vec<String>,
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
    let state = State::load(&config.root, &config.stack)?;
    let scenario = &config.scenario;
    let seed = config.seed.unwrap_or(scenario.seed);
    let mut clock = Clock::new();
    let mut problems = Vec::new();

    // Connections, and a clean slate: the warehouse must hold exactly this run's events.
    let sf_config = state
        .snowflake
        .client_config()
        .map_err(E2eError::Snowflake)?;
    let sf = snowflake::Client::connect(sf_config)
        .await
        .map_err(E2eError::Snowflake)?;
    let (mut pg, connection) = tokio_postgres::connect(&state.postgres.url, tokio_postgres::NoTls)
        .await
        .map_err(pg_err("connecting"))?;
    tokio::spawn(connection);
    let sdk = stack::aws_config(&state.aws).await;
    let queues = Queues::connect(&state, aws_sdk_sqs::Client::new(&sdk)).await?;
    warehouse::reset(&sf).await?;
    pg.batch_execute("DELETE FROM history.events")
        .await
        .map_err(pg_err("emptying history.events"))?;
    queues.purge().await?;
    progress("reset RAW, LOAD_HISTORY, history.events and every queue");

    // The events: history, then the stream (first emissions, duplicates, poison).
    let mut generator = Generator::new(scenario, Some(seed));
    let history: Vec<Event> = generator.history().collect();
    let emissions: Vec<synth::Emission> = generator.stream().collect();
    let stats = generator.stats().clone();
    let stream_events: Vec<&Event> = emissions
        .iter()
        .filter_map(|e| match &e.body {
            Body::Event(event) => Some(event),
            Body::Duplicate(_) | Body::Poison(_) => None,
        })
        .collect();
    let overlap: Vec<Event> = stream_events
        .iter()
        .take(config.overlap as usize)
        .map(|e| (*e).clone())
        .collect();
    let expected = expected_marts(history.iter().chain(stream_events.iter().copied()));
    let produced = Produced {
        history: stats.history,
        stream: stats.stream_events(),
        duplicates: stats.duplicates,
        late: stats.late,
        poison: stats.poison,
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
    let mut hops = Hops {
        history: backfill::history::load(&mut pg, history.iter().chain(&overlap).cloned()).await?,
        ..Hops::default()
    };
    hops.snapshot = backfill::snapshot::copy(
        &pg,
        &sf,
        &SnapshotConfig {
            snapshot_id: format!("e2e-{}-{seed}", scenario.name),
            ..SnapshotConfig::default()
        },
    )
    .await?;
    let backfill_time = clock.lap("backfill");
    progress(&format!(
        "backfill: {} history events into PostgreSQL, {} rows into RAW.EVENTS_BACKFILL ({:.1}s)",
        hops.history.inserted,
        hops.snapshot.inserted,
        backfill_time.as_secs_f64()
    ));

    // The components, then the stream.
    let work_dir = state.dir.join("e2e");
    let mut components = Components::start(
        &config.binaries,
        &config.root,
        &config.stack,
        scenario,
        &work_dir,
    )?;
    progress(&format!(
        "started relay, batcher and pipe (logs and metrics in {})",
        work_dir.display()
    ));
    let total = emissions.len() as u64;
    let mut publish_config = PublishConfig::new(state.rabbitmq.amqp_url.clone());
    publish_config.pacing = config.pacing;
    let mut last_report = Instant::now();
    hops.published = publish(&publish_config, emissions, |n| {
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            progress(&format!("  published {n}/{total}"));
        }
    })
    .await?;
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
    };
    let deadline = Instant::now() + config.quiesce_timeout;
    let mut settled = 0;
    let mut last_progress = Instant::now();
    let stuck = loop {
        if let Err(e) = components.check_running() {
            break Some(e.to_string());
        }
        hops.components = components.metrics();
        hops.queues = queues.depths().await?;
        hops.raw_stream = warehouse::raw_count(&sf, "EVENTS_STREAM").await?;
        let gap = expect.first_gap(&hops);
        settled = if gap.is_none() { settled + 1 } else { 0 };
        // Two clean looks in a row: the metrics files lag by up to a second.
        if settled >= 2 {
            break None;
        }
        if Instant::now() >= deadline {
            break Some(format!(
                "not quiescent after {:?}: {}\n(component counters are their last metrics-file writes, up to 1 s old)\n{}",
                config.quiesce_timeout,
                gap.unwrap_or_else(|| "counts settled too late".into()),
                hop_table(&expect, &hops)
            ));
        }
        if last_progress.elapsed() >= Duration::from_secs(3) {
            last_progress = Instant::now();
            progress(&format!(
                "  waiting: {}/{} streamed events in RAW; {}",
                hops.raw_stream.distinct_events,
                expect.stream_distinct,
                gap.as_deref().unwrap_or("settling")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
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
    hops.raw_backfill = warehouse::raw_count(&sf, "EVENTS_BACKFILL").await?;
    hops.raw_union = warehouse::raw_union(&sf).await?;
    hops.load_history = warehouse::load_history(&sf).await?;
    hops.queues = queues.depths().await?;
    queues.close().await;
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
        problems,
    };
    if report.stuck.is_some() {
        report.phases = clock.phases;
        return Ok(report);
    }

    // dbt: the models, then the tests and source freshness. Not `dbt build`: a failed test
    // would skip the marts downstream, and the diff is what says which rows are wrong.
    progress("dbt run, test and source freshness ...");
    let dbt = Dbt::new(DbtConfig::for_stack(
        &state,
        crate::dbt::work_dir(&state),
        scenario.supply.constrained,
    ))?;
    let models = dbt.run_models().await?;
    progress(models.to_string().trim_end());
    let tests = dbt.test().await?;
    progress(tests.to_string().trim_end());
    let freshness = dbt.freshness().await?;
    progress(freshness.to_string().trim_end());
    for r in [&models, &tests, &freshness] {
        for f in &r.failures {
            report.problems.push(format!(
                "dbt {}: {} {}: {}",
                r.command, f.status, f.unique_id, f.message
            ));
        }
    }
    let built = models.models > 0 && models.ok();
    report.dbt = vec![models, tests, freshness];
    clock.lap("dbt");

    // Checks.
    // Marts are read even when a model failed, as long as they exist: reset dropped them, so
    // what is there was built by this run.
    if built || warehouse::marts_exist(&sf).await? {
        let actual = warehouse::read_marts(&sf).await?;
        let diff = diff_marts(&expected.marts, &actual);
        for t in diff.tables.iter().filter(|t| !t.is_match()) {
            report.problems.push(format!(
                "{} differs from the oracle: {} missing, {} unexpected, {} changed, {} repeated keys",
                t.table,
                t.missing.len(),
                t.unexpected.len(),
                t.changed.len(),
                t.repeated.len()
            ));
        }
        report.diff = Some(diff);
        report.marts = Some(actual);
    }
    let (checked, misplaced) = warehouse::check_partitions(&sf).await?;
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
    let dead_lettered = report
        .hops
        .components
        .relay
        .map(|r| r.dead_lettered)
        .unwrap_or(0);
    if dead_lettered != report.produced.poison
        || report.hops.queues.rabbit_dead_letter != report.produced.poison
    {
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
    let _ = sf.close().await;
    Ok(report)
}

/// What quiescence waits for.
struct Expect {
    published: u64,
    poison: u64,
    stream_distinct: u64,
}

impl Expect {
    /// The first hop, in pipeline order, that has not caught up; None when all have.
    fn first_gap(&self, hops: &Hops) -> Option<String> {
        let q = &hops.queues;
        let Some(relay) = hops.components.relay else {
            return Some("the relay has not reported yet".into());
        };
        if relay.received < self.published {
            return Some(format!(
                "RabbitMQ -> relay: {} of {} published bodies received ({} ready in the source queues)",
                relay.received, self.published, q.rabbit_ready
            ));
        }
        if relay.forwarded + relay.dead_lettered < relay.received {
            return Some(format!(
                "relay -> SQS: {} received, {} forwarded, {} dead-lettered",
                relay.received, relay.forwarded, relay.dead_lettered
            ));
        }
        if q.rabbit_dead_letter < self.poison {
            return Some(format!(
                "dead-letter queue: {} of {} poison bodies arrived",
                q.rabbit_dead_letter, self.poison
            ));
        }
        if !q.ingest.is_empty() {
            return Some(format!("SQS ingest queue -> batcher: {}", q.ingest));
        }
        if !q.notify.is_empty() {
            return Some(format!("SNS notify queue -> pipe: {}", q.notify));
        }
        if hops.raw_stream.distinct_events < self.stream_distinct {
            return Some(format!(
                "pipe -> RAW: {} of {} streamed events loaded, every queue empty",
                hops.raw_stream.distinct_events, self.stream_distinct
            ));
        }
        None
    }
}

/// Every hop's counters, for the "where are the events stuck" report.
fn hop_table(expect: &Expect, hops: &Hops) -> String {
    let m = &hops.components;
    let q = &hops.queues;
    let mut out = String::new();
    let mut line = |hop: &str, text: String| out.push_str(&format!("  {hop:<22} {text}\n"));
    line(
        "published",
        format!("{} bodies ({} poison)", expect.published, expect.poison),
    );
    line(
        "rabbitmq",
        format!(
            "{} ready in source queues, {} in dead-letter",
            q.rabbit_ready, q.rabbit_dead_letter
        ),
    );
    line(
        "relay",
        m.relay.map_or("no metrics yet".into(), |r| {
            format!(
                "{} received, {} forwarded, {} dead-lettered, {} acked",
                r.received, r.forwarded, r.dead_lettered, r.acked
            )
        }),
    );
    line(
        "sqs ingest",
        format!("{}; dead-letter: {}", q.ingest, q.ingest_dead_letter),
    );
    line(
        "batcher",
        m.batcher.map_or("no metrics yet".into(), |b| {
            format!(
                "{} events in, {} written in {} objects, {} poison / {} failed records",
                b.events_in,
                b.events_written,
                b.objects_written,
                b.poison_records,
                b.failed_records
            )
        }),
    );
    line("sns -> notify queue", q.notify.to_string());
    line(
        "pipe",
        m.pipe.map_or("no metrics yet".into(), |p| {
            format!(
                "{} files loaded ({} rows), {} skipped, {} failed",
                p.files_loaded, p.rows_loaded, p.files_skipped, p.files_failed
            )
        }),
    );
    line(
        "RAW.EVENTS_STREAM",
        format!(
            "{} rows, {} of {} streamed events",
            hops.raw_stream.rows, hops.raw_stream.distinct_events, expect.stream_distinct
        ),
    );
    out
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
            "  backfilled    {} into PostgreSQL, {} into RAW.EVENTS_BACKFILL",
            h.history.inserted, h.snapshot.inserted
        )?;
        writeln!(f, "  published     {} bodies", h.published.published)?;
        if let Some(r) = m.relay {
            writeln!(
                f,
                "  forwarded     {} by the relay in {} SQS messages; {} dead-lettered",
                r.forwarded, r.sqs_messages, r.dead_lettered
            )?;
        }
        if let Some(b) = m.batcher {
            writeln!(
                f,
                "  written       {} events in {} files by the batcher",
                b.events_written, b.objects_written
            )?;
        }
        if let Some(pipe) = m.pipe {
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
            writeln!(f, "PASS: the marts match the oracle")
        } else {
            writeln!(f, "FAIL:")?;
            for problem in &self.problems {
                writeln!(f, "  - {problem}")?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queues::SqsDepth;

    fn caught_up() -> (Expect, Hops) {
        let expect = Expect {
            published: 100,
            poison: 2,
            stream_distinct: 95,
        };
        let mut hops = Hops::default();
        hops.components.relay = Some(relay::MetricsSnapshot {
            received: 100,
            forwarded: 98,
            dead_lettered: 2,
            ..Default::default()
        });
        hops.queues.rabbit_dead_letter = 2;
        hops.raw_stream = RawCount {
            rows: 98,
            distinct_events: 95,
        };
        (expect, hops)
    }

    #[test]
    fn quiescence_names_the_first_hop_behind() {
        let (expect, hops) = caught_up();
        assert_eq!(expect.first_gap(&hops), None);

        let mut behind = hops.clone();
        behind.queues.ingest = SqsDepth {
            visible: 3,
            in_flight: 10,
        };
        behind.raw_stream.distinct_events = 80;
        let gap = expect.first_gap(&behind).unwrap();
        assert!(
            gap.starts_with("SQS ingest queue -> batcher: 3 waiting, 10 in flight"),
            "{gap}"
        );

        let mut relay_behind = behind.clone();
        relay_behind.components.relay.as_mut().unwrap().received = 60;
        relay_behind.queues.rabbit_ready = 40;
        let gap = expect.first_gap(&relay_behind).unwrap();
        assert!(
            gap.contains("60 of 100 published bodies received (40 ready"),
            "{gap}"
        );

        let mut lost = hops.clone();
        lost.raw_stream.distinct_events = 90;
        let gap = expect.first_gap(&lost).unwrap();
        assert!(
            gap.contains("90 of 95 streamed events loaded, every queue empty"),
            "{gap}"
        );

        let table = hop_table(&expect, &lost);
        for hop in [
            "relay",
            "sqs ingest",
            "batcher",
            "pipe",
            "RAW.EVENTS_STREAM",
        ] {
            assert!(table.contains(hop), "{table}");
        }
    }

    #[test]
    fn missing_dead_letters_keep_the_run_waiting() {
        let (expect, mut hops) = caught_up();
        hops.queues.rabbit_dead_letter = 1;
        let gap = expect.first_gap(&hops).unwrap();
        assert!(gap.contains("1 of 2 poison bodies"), "{gap}");
    }
}
