//! Incremental marts, proven. Production builds FCT_ORDERS incrementally every hour, while
//! events keep arriving: a revision or a cancellation of an order built an hour ago must still
//! land. Here a scenario is streamed through the real pipeline in waves (consecutive parts of
//! its emission order, so revisions, duplicates and late events cross waves), and after each
//! wave the models are built as the DAG builds them (`dbt run`, FCT_ORDERS merged into what
//! the previous wave left), then compared with the oracle over every event delivered so far,
//! and with a full refresh of FCT_ORDERS on the same RAW.
//!
//! After the last wave dbt's data tests run on the marts it left.
//!
//! The full refresh replaces the merged table, so each wave's merge starts from a correct
//! table: a merge that misses a row shows in the wave it misses it.

use std::collections::HashSet;
use std::time::Duration;

use events::Event;
use synth::{Body, Generator};

use super::RunConfig;
use super::dbt::{Dbt, DbtCommand, DbtReport};
use super::diff::{MartsDiff, TableDiff, diff_marts, diff_table};
use super::oracle::expected_marts;
use crate::error::RunError;
use crate::rig::session::Session;
use crate::rig::warehouse;
use crate::rig::{Clock, Progress, Rig, Round, StreamPart};

/// What one wave showed.
pub struct WaveReport {
    /// From 1.
    pub wave: usize,
    /// Distinct events in RAW after the wave (history included).
    pub events: u64,
    /// FCT_ORDERS rows after the wave, and how many the merge inserted or changed against
    /// the table it started from.
    pub fct_orders_rows: usize,
    pub merged_rows: usize,
    /// `dbt run` with FCT_ORDERS merged, and `dbt run --full-refresh` of FCT_ORDERS alone.
    pub incremental: DbtReport,
    pub full_refresh: DbtReport,
    /// The marts after the merge against the oracle over the events delivered so far.
    pub oracle: MartsDiff,
    /// FCT_ORDERS after the merge against its full refresh.
    pub refresh: TableDiff,
}

impl WaveReport {
    pub fn passed(&self) -> bool {
        self.incremental.ok()
            && self.full_refresh.ok()
            && self.oracle.is_match()
            && self.refresh.is_match()
    }
}

pub struct WavesReport {
    pub scenario: String,
    pub seed: u64,
    pub waves: Vec<WaveReport>,
    /// dbt's data tests on the marts the last wave left (None if a wave did not drain).
    pub tests: Option<DbtReport>,
    /// Everything that makes the run fail, one line each (wave by wave).
    pub problems: Vec<String>,
}

impl WavesReport {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

impl std::fmt::Display for WavesReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} (seed {}) in {} waves, FCT_ORDERS merged after each:",
            self.scenario,
            self.seed,
            self.waves.len()
        )?;
        writeln!(
            f,
            "  wave  events  fct_orders  merged  incremental  full refresh  oracle  refresh"
        )?;
        for w in &self.waves {
            writeln!(
                f,
                "  {:>4}  {:>6}  {:>10}  {:>6}  {:>10.1}s  {:>11.1}s  {:>6}  {:>7}",
                w.wave,
                w.events,
                w.fct_orders_rows,
                w.merged_rows,
                w.incremental.elapsed.as_secs_f64(),
                w.full_refresh.elapsed.as_secs_f64(),
                if w.oracle.is_match() {
                    "equal"
                } else {
                    "DIFFER"
                },
                if w.refresh.is_match() {
                    "equal"
                } else {
                    "DIFFER"
                },
            )?;
        }
        if let Some(tests) = &self.tests {
            write!(f, "  after the last wave: {tests}")?;
        }
        for problem in &self.problems {
            writeln!(f, "  PROBLEM {problem}")?;
        }
        Ok(())
    }
}

/// The history, and each wave's first emissions (the events that wave delivers for the first
/// time), of the scenario's stream split into `waves`.
fn wave_events(config: &RunConfig, seed: u64, waves: usize) -> (Vec<Event>, Vec<Vec<Event>>) {
    let mut generator = Generator::new(&config.scenario, Some(seed));
    let history: Vec<Event> = generator.history().collect();
    let stream: Vec<Body> = generator.stream().map(|e| e.body).collect();
    let parts = (0..waves)
        .map(|wave| {
            let part = StreamPart::wave(wave, waves).expect("wave < waves");
            stream[part.range(stream.len())]
                .iter()
                .filter_map(|body| match body {
                    Body::Event(event) => Some(event.clone()),
                    Body::Duplicate(_) | Body::Poison(_) => None,
                })
                .collect()
        })
        .collect();
    (history, parts)
}

/// The order events of a later wave whose order an earlier wave already delivered
/// (amendments, cancellations, and creations that arrive after their amendment): the rows a
/// merge must re-read. A run that proves the merge needs some.
pub fn orders_revised_across_waves(config: &RunConfig, waves: usize) -> usize {
    use events::Payload;
    let order_id = |event: &Event| match event.payload() {
        Payload::OrderCreated(o) => Some(o.order_id.clone()),
        Payload::OrderAmended(o) => Some(o.order_id.clone()),
        Payload::OrderCancelled(o) => Some(o.order_id.clone()),
        _ => None,
    };
    let seed = config.seed.unwrap_or(config.scenario.seed);
    let (_, parts) = wave_events(config, seed, waves);
    let mut seen: HashSet<String> = HashSet::new();
    let mut revised = 0;
    for part in parts {
        let ids: Vec<String> = part.iter().filter_map(order_id).collect();
        revised += ids.iter().filter(|id| seen.contains(*id)).count();
        seen.extend(ids);
    }
    revised
}

/// Streams `config`'s scenario in `waves` waves and proves the incremental marts after each.
/// The question is the merge, not the transport or the orchestrator: the config's fault
/// schedule, overlap and orchestrator are not used (dbt runs directly, as in the DAG's tasks).
pub async fn run_in_waves(
    config: &RunConfig,
    waves: usize,
    progress: &mut dyn Progress,
) -> Result<WavesReport, RunError> {
    assert!(
        waves >= 2,
        "waves: at least 2, for a merge into an earlier build"
    );
    let session = Session::open(&config.root, &config.stack).await?;
    let scenario = &config.scenario;
    let seed = config.seed.unwrap_or(scenario.seed);
    let mut clock = Clock::new();
    session.reset().await?;
    progress.step("reset RAW, LOAD_HISTORY, history.events, every queue and the marts");

    let (history, parts) = wave_events(config, seed, waves);
    let dbt = Dbt::new(config.dbt_config(&session.state))?;
    dbt.prepare();
    let setup = config.setup(seed, &[]);
    let mut delivered: Vec<Event> = history.clone();
    let (mut rig, _) = Box::pin(Rig::prepare(
        session,
        &setup,
        history.into_iter(),
        format!("waves-{}-{seed}", scenario.name),
        progress,
        &mut clock,
    ))
    .await?;

    let mut report = WavesReport {
        scenario: scenario.name.clone(),
        seed,
        waves: Vec::new(),
        tests: None,
        problems: Vec::new(),
    };
    let mut before: Option<crate::prove::mart::Table> = None;
    for (wave, part) in parts.into_iter().enumerate() {
        delivered.extend(part);
        let ids: HashSet<String> = delivered.iter().map(|e| e.event_id().to_owned()).collect();
        let round = Round {
            scenario,
            seed,
            chaos: &[],
            pacing: config.pacing,
            stamp_publish_time: false,
            warm_up: Duration::ZERO,
            drain_timeout: config.quiesce_timeout,
            drain_interval: Duration::from_millis(500),
            expected_ids: &ids,
            part: StreamPart::wave(wave, waves).expect("wave < waves"),
        };
        progress.step(&format!("wave {} of {waves}: streaming", wave + 1));
        let outcome = Box::pin(rig.round(&round, &mut (), progress)).await?;
        let problems: Vec<String> = outcome
            .problems
            .iter()
            .map(|p| format!("wave {}: {p}", wave + 1))
            .collect();
        report.problems.extend(problems);
        if outcome.drained.stuck.is_some() {
            break;
        }

        progress.step(&format!(
            "wave {} of {waves}: dbt run (FCT_ORDERS merged), then a full refresh of it",
            wave + 1
        ));
        let [incremental] = <[DbtReport; 1]>::try_from(dbt.invoke(&[DbtCommand::Run]).await?)
            .expect("one command, one report");
        let merged = warehouse::read_marts(&rig.session.sf).await?;
        let [full_refresh] =
            <[DbtReport; 1]>::try_from(dbt.invoke(&[DbtCommand::FullRefreshOrders]).await?)
                .expect("one command, one report");
        let refreshed = warehouse::read_table(&rig.session.sf, merged.fct_orders.spec).await?;

        let expected = expected_marts(delivered.iter());
        let oracle = diff_marts(&expected.marts, &merged);
        let refresh = diff_table(&refreshed, &merged.fct_orders);
        let merged_rows = match &before {
            Some(before) => {
                let d = diff_table(before, &merged.fct_orders);
                d.unexpected.len() + d.changed.len()
            }
            None => merged.fct_orders.len(),
        };
        let w = wave + 1;
        for r in [&incremental, &full_refresh] {
            for f in &r.failures {
                report.problems.push(format!(
                    "wave {w}: dbt {}: {} {}: {}",
                    r.command, f.status, f.unique_id, f.message
                ));
            }
        }
        report.problems.extend(
            oracle
                .problems("the oracle")
                .into_iter()
                .map(|p| format!("wave {w}: {p}")),
        );
        if !refresh.is_match() {
            report.problems.push(format!(
                "wave {w}: FCT_ORDERS merged differs from its full refresh:\n{refresh}"
            ));
        }
        progress.step(&format!(
            "wave {w}: {} events, FCT_ORDERS {} rows ({merged_rows} merged), oracle {}, full refresh {}",
            ids.len(),
            merged.fct_orders.len(),
            if oracle.is_match() { "equal" } else { "DIFFERS" },
            if refresh.is_match() { "equal" } else { "DIFFERS" },
        ));
        report.waves.push(WaveReport {
            wave: w,
            events: ids.len() as u64,
            fct_orders_rows: merged.fct_orders.len(),
            merged_rows,
            incremental,
            full_refresh,
            oracle,
            refresh,
        });
        before = Some(refreshed);
    }
    if report.waves.len() == waves {
        progress.step("dbt test on the marts the last wave left");
        let [tests] = <[DbtReport; 1]>::try_from(dbt.invoke(&[DbtCommand::Test]).await?)
            .expect("one command, one report");
        for f in &tests.failures {
            report.problems.push(format!(
                "after the last wave: dbt test: {} {}: {}",
                f.status, f.unique_id, f.message
            ));
        }
        report.tests = Some(tests);
    }
    let (session, stopped) = rig.finish().await;
    if let Err(e) = stopped {
        report
            .problems
            .push(format!("a component did not stop cleanly: {e}"));
    }
    session.close().await;
    Ok(report)
}
