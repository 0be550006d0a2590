//! The run sequence, written once: prepare, then rounds of stream, drain and the common checks.

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backfill::history::HistoryReport;
use backfill::snapshot::SnapshotReport;
use events::Event;
use synth::chaos::Fault;
use synth::oltp::Workload;
use synth::{Emission, Generator, Scenario, Stats};
use tokio::sync::Notify;

use crate::error::{RunError, io_err};
use crate::rig::chaos::nemesis::{self, FaultRecord, Proxies, Targets, Tracker};
use crate::rig::components::{
    ComponentBinaries, ComponentError, ComponentMetrics, ComponentOptions, Components,
    MetricsReader,
};
use crate::rig::drain::{Drained, Expect, Observed, drain};
use crate::rig::oltp::{Applied, Driver, wait_for_snapshot};
use crate::rig::progress::{Clock, Progress};
use crate::rig::publish::{
    Pacing, PublishConfig, PublishProgress, PublishReport, Publishers, publish_observed,
    publish_split,
};
use crate::rig::queues::Queues;
use crate::rig::session::{Session, SessionError};
use crate::rig::warehouse::{self, Misplaced};

/// What a rig runs: the scenario, its components and the faults any round carries out.
pub struct Setup<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub binaries: &'a ComponentBinaries,
    /// The components' logs and metrics files (created if missing).
    pub work_dir: PathBuf,
    /// Every fault a round may carry out: the services they cut off get fault proxies.
    pub chaos: &'a [Fault],
    pub options: ComponentOptions,
    /// How the components were built (`release`), when the start line should say it.
    pub build: Option<&'a str>,
    pub publishers: Publishers,
}

/// A stack with the history backfilled and the components running.
pub struct Rig {
    pub session: Session,
    pub components: Components,
    pub work_dir: PathBuf,
    proxies: Proxies,
    /// The scenario's `[oltp]` workload, its first rows in place; it runs in the first round.
    workload: Option<(Workload, Driver)>,
    /// The cdc's initial snapshot: rows read, and how long until it was recorded.
    pub snapshot: Option<(i64, Duration)>,
    publishers: Publishers,
}

/// One stream through the running components.
pub struct Round<'a> {
    pub scenario: &'a Scenario,
    pub seed: u64,
    pub chaos: &'a [Fault],
    pub pacing: Pacing,
    /// A publish-time stamp on every body, for the relay's hop histogram.
    pub stamp_publish_time: bool,
    /// Publish delays before this offset are left out of the statistics.
    pub warm_up: Duration,
    /// How long the drain may take after the last publish.
    pub drain_timeout: Duration,
    /// How often the drain looks at every hop.
    pub drain_interval: Duration,
    /// Every event id RAW must hold afterwards: the stream's, and the history's when it is in
    /// RAW.EVENTS_BACKFILL.
    pub expected_ids: &'a HashSet<String>,
    /// Which part of the stream this round publishes (all of it, or one wave of several).
    pub part: StreamPart,
}

/// One of `waves` consecutive parts of a stream, by emission index: wave `wave` publishes
/// emissions `[wave * n / waves, (wave + 1) * n / waves)` of the `n`, on the schedule shifted so
/// that its first emission is due at once. A late or duplicated emission lands in whichever
/// wave its position puts it, so revisions and late events cross waves as they would cross
/// hourly runs.
/// What a part of a stream delivers: RAW and the dead-letter queue hold what every part up to
/// its end delivered; the relay dead-letters this part's poison.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartCounts {
    pub poison_in_part: u64,
    pub poison_through: u64,
    /// First emissions of events: distinct stream events.
    pub events_through: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPart {
    wave: usize,
    waves: usize,
}

impl StreamPart {
    pub const WHOLE: StreamPart = StreamPart { wave: 0, waves: 1 };

    /// Wave `wave` (from 0) of `waves`; None unless `wave < waves`.
    pub fn wave(wave: usize, waves: usize) -> Option<StreamPart> {
        (wave < waves).then_some(StreamPart { wave, waves })
    }

    /// The emission indices of this part, of a stream of `total`.
    pub fn range(self, total: usize) -> std::ops::Range<usize> {
        self.wave * total / self.waves..(self.wave + 1) * total / self.waves
    }

    /// What `stream` (of `total` emissions) holds in this part, and up to its end.
    pub fn counts(self, stream: impl Iterator<Item = Emission>, total: usize) -> PartCounts {
        let range = self.range(total);
        let mut counts = PartCounts::default();
        for (i, emission) in stream.take(range.end).enumerate() {
            match emission.body {
                synth::Body::Poison(_) => {
                    counts.poison_through += 1;
                    counts.poison_in_part += u64::from(range.contains(&i));
                }
                synth::Body::Event(_) => counts.events_through += 1,
                synth::Body::Duplicate(_) => {}
            }
        }
        counts
    }

    /// This part of `stream`, its schedule starting at the part's first emission.
    pub fn of<'a>(
        self,
        stream: impl Iterator<Item = Emission> + 'a,
        total: usize,
    ) -> impl Iterator<Item = Emission> + 'a {
        let range = self.range(total);
        let mut start = None;
        stream
            .enumerate()
            .filter(move |(i, _)| range.contains(i))
            .map(move |(_, mut emission)| {
                let start = *start.get_or_insert(emission.offset);
                emission.offset = emission.offset.saturating_sub(start);
                emission
            })
    }
}

/// What a round did, and what it found wrong.
pub struct Outcome {
    pub stats: Stats,
    /// Poison bodies the dead-letter queue holds once this round drained (every earlier wave's
    /// too, when the round is one wave of several).
    pub dead_letters_through: u64,
    pub published: PublishReport,
    /// The workload's transactions, when this round ran it.
    pub applied: Option<Applied>,
    pub faults: Vec<FaultRecord>,
    pub drained: Drained,
    /// When the schedule started: fault times and the load log are offsets from here.
    pub started: Instant,
    /// From the first publish to the last, and from then until the drain ended.
    pub stream_time: Duration,
    pub drain_time: Duration,
    /// Expected events missing from RAW, and RAW events nobody produced.
    pub lost: Vec<String>,
    pub unexpected: Vec<String>,
    /// Files the pipe recorded as loaded more than once.
    pub loaded_twice: Vec<String>,
    /// Streamed rows checked against their file's partition, and the misplaced ones.
    pub partitions: (u64, Vec<Misplaced>),
    /// Everything that makes the round fail, one line each.
    pub problems: Vec<String>,
}

/// Which part of a round a [`Watch`] runs beside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Stream,
    Drain,
}

/// What a watch may look at.
pub struct Seen<'a> {
    pub published: &'a Arc<PublishProgress>,
    pub metrics: &'a MetricsReader,
    pub queues: &'a Queues,
    pub pg: &'a tokio_postgres::Client,
    /// When the schedule started.
    pub started: Instant,
    /// The bodies the round publishes.
    pub total: u64,
}

/// What a caller samples while a round streams and drains (load-test's time series); `()`
/// samples nothing.
#[allow(async_fn_in_trait)]
pub trait Watch {
    /// Runs beside `stage` until `done` is notified.
    async fn during(
        &mut self,
        stage: Stage,
        seen: &Seen<'_>,
        done: &Notify,
        progress: &RefCell<&mut dyn Progress>,
    );
}

impl Watch for () {
    async fn during(&mut self, _: Stage, _: &Seen<'_>, _: &Notify, _: &RefCell<&mut dyn Progress>) {
    }
}

impl Rig {
    /// The history into PostgreSQL and RAW, the workload's first rows, the fault proxies, the
    /// components, and (with a workload) the cdc's snapshot of those rows. Laps `backfill` and
    /// `start` on `clock`.
    pub async fn prepare(
        mut session: Session,
        setup: &Setup<'_>,
        history: impl Iterator<Item = Event>,
        snapshot_id: String,
        progress: &mut dyn Progress,
        clock: &mut Clock,
    ) -> Result<(Self, (HistoryReport, SnapshotReport)), RunError> {
        let backfilled = session.backfill(history, snapshot_id).await?;
        let took = clock.lap("backfill");
        progress.step(&format!(
            "backfill: {} history events into PostgreSQL, {} rows into RAW.EVENTS_BACKFILL ({:.1}s)",
            backfilled.0.inserted,
            backfilled.1.inserted,
            took.as_secs_f64()
        ));

        // The workload's first rows, before the cdc starts: its snapshot reads them.
        let workload = match Workload::new(setup.scenario, Some(setup.seed)) {
            Some(mut workload) => {
                cdc::slot::reset(&session.pg, cdc::DEFAULT_SLOT).await?;
                Driver::reset(&session.pg).await?;
                let mut driver = Driver::connect(&session.state.postgres.url).await?;
                driver.initial(&mut workload).await?;
                progress.step(&format!(
                    "workload: {} rows in shop.customers and shop.order_status for the cdc's snapshot",
                    workload.stats().initial_rows
                ));
                Some((workload, driver))
            }
            None => None,
        };

        let work_dir = setup.work_dir.clone();
        std::fs::create_dir_all(&work_dir)
            .map_err(io_err(format!("creating {}", work_dir.display())))?;
        let proxies = Proxies::for_faults(&session.state, setup.chaos)
            .await
            .map_err(io_err("starting the fault proxies"))?;
        let mut components = session.start_components(
            setup.binaries,
            setup.scenario,
            &work_dir,
            &proxies.options(&session.state, setup.options.clone()),
        )?;
        let names: Vec<&str> = setup
            .scenario
            .components()
            .iter()
            .map(|c| c.name())
            .collect();
        let build = setup
            .build
            .map_or(String::new(), |b| format!("{b} build; "));
        progress.step(&format!(
            "started {} ({build}logs and metrics in {})",
            names.join(", "),
            work_dir.display()
        ));
        let snapshot = match &workload {
            Some(_) => Some(
                wait_for_snapshot(
                    &session.pg,
                    &mut components,
                    &work_dir.join("cdc.log"),
                    progress,
                )
                .await?,
            ),
            None => None,
        };
        clock.lap("start");
        let rig = Self {
            session,
            components,
            work_dir,
            proxies,
            workload,
            snapshot,
            publishers: setup.publishers.clone(),
        };
        Ok((rig, backfilled))
    }

    /// The round's stream published on its schedule while the fault schedule and the workload
    /// run, then a drain, then the checks every run must pass.
    pub async fn round(
        &mut self,
        round: &Round<'_>,
        watch: &mut impl Watch,
        progress: &mut dyn Progress,
    ) -> Result<Outcome, RunError> {
        let whole = Generator::new(round.scenario, Some(round.seed))
            .stream()
            .count();
        let total = round.part.range(whole).len() as u64;
        let before = self.components.metrics();
        let publish_config = self.publish_config(round);
        let observed = Arc::new(PublishProgress::default());
        let reader = self.components.reader();
        let mut tracker = Tracker::connect(self.session.sf.config(), round.chaos)
            .await
            .map_err(SessionError::Snowflake)?;
        let progress = RefCell::new(progress);
        let started = Instant::now();
        let seen = Seen {
            published: &observed,
            metrics: &reader,
            queues: &self.session.queues,
            pg: &self.session.pg,
            started,
            total,
        };

        // The stream, the workload and the fault schedule together; the tracker and the watch
        // look on until all three are over.
        let mut generator = Generator::new(round.scenario, Some(round.seed));
        let targets = Targets {
            root: self.session.root.clone(),
            stack: self.session.stack.clone(),
            state: &self.session.state,
            warehouse: self.session.sf.config(),
            proxies: &self.proxies,
            sqs: &self.session.sqs,
        };
        let mut workload = self.workload.take();
        let mut last_line = Instant::now();
        let mut say = |line: &str| progress.borrow_mut().step(line);
        let applying = apply(workload.as_mut(), started, &progress);
        let publishers = self.publishers.clone();
        let on_progress = |n| {
            if last_line.elapsed() >= Duration::from_secs(2) {
                last_line = Instant::now();
                progress
                    .borrow_mut()
                    .detail(&format!("  published {n}/{total}"));
            }
        };
        let publishing = async {
            match &publishers {
                Publishers::InProcess => {
                    let part = round.part.of(generator.stream(), whole);
                    publish_observed(&publish_config, part, &observed, on_progress)
                        .await
                        .map_err(RunError::from)
                }
                Publishers::Split(workers) => {
                    // The workers regenerate and publish the whole stream.
                    debug_assert_eq!(round.part, StreamPart::WHOLE, "waves publish in-process");
                    let report = publish_split(
                        workers,
                        &publish_config,
                        round.scenario,
                        round.seed,
                        &observed,
                        on_progress,
                    )
                    .await?;
                    // The workers generated the stream; the run's expectations come from the
                    // same stream generated here.
                    generator.stream().for_each(drop);
                    Ok(report)
                }
            }
        };
        let streaming = async {
            tokio::join!(
                publishing,
                nemesis::run(
                    round.chaos,
                    started,
                    &mut self.components,
                    &targets,
                    &mut say
                ),
                applying,
            )
        };
        let (published, mut faults, applied) = beside(
            Box::pin(streaming),
            &mut tracker,
            Stage::Stream,
            watch,
            &seen,
            &progress,
        )
        .await;
        let published = published?;
        let applied: Option<Applied> = applied?;
        let stream_time = started.elapsed();
        progress.borrow_mut().step(&format!(
            "stream: published {} bodies in {:.1}s ({:.0}/s)",
            published.published,
            stream_time.as_secs_f64(),
            published.achieved_rate()
        ));

        // The drain: every queue empty and every streamed event in RAW. The tracker goes on
        // through it, since a fault's recovery may end there.
        let mut stats = generator.stats().clone();
        let delivered = if round.part == StreamPart::WHOLE {
            PartCounts {
                poison_in_part: stats.poison,
                poison_through: stats.poison,
                events_through: stats.stream_events(),
            }
        } else {
            let mut again = Generator::new(round.scenario, Some(round.seed));
            round.part.counts(again.stream(), whole)
        };
        // The round's own poison: what the relay dead-letters in it.
        stats.poison = delivered.poison_in_part;
        let expect = Expect {
            published: published.published,
            poison: delivered.poison_through,
            stream_distinct: delivered.events_through,
            cdc_changes: applied.as_ref().map(Applied::row_changes),
        };
        let mut last_line = Instant::now();
        let draining = drain(
            &expect,
            &mut self.components,
            &self.session.queues,
            &self.session.sf,
            round.drain_timeout,
            round.drain_interval,
            |observed, gap| {
                if last_line.elapsed() >= Duration::from_secs(3) {
                    last_line = Instant::now();
                    progress
                        .borrow_mut()
                        .detail(&waiting(&expect, observed, gap));
                }
            },
        );
        let drained = beside(
            Box::pin(draining),
            &mut tracker,
            Stage::Drain,
            watch,
            &seen,
            &progress,
        )
        .await;
        let drained = drained?;
        tracker.complete(&mut faults);
        let drain_time = started.elapsed() - stream_time;
        if drained.stuck.is_none() {
            progress.borrow_mut().step(&format!(
                "quiescent after {:.1}s: every queue drained, {} streamed events in RAW",
                drain_time.as_secs_f64(),
                drained.observed.raw_stream.distinct_events
            ));
        }

        let mut outcome = Outcome {
            stats,
            dead_letters_through: delivered.poison_through,
            published,
            applied,
            faults,
            drained,
            started,
            stream_time,
            drain_time,
            lost: Vec::new(),
            unexpected: Vec::new(),
            loaded_twice: Vec::new(),
            partitions: (0, Vec::new()),
            problems: Vec::new(),
        };
        check(
            &self.session,
            &self.components,
            round,
            &before,
            &mut outcome,
        )
        .await?;
        Ok(outcome)
    }

    fn publish_config(&self, round: &Round<'_>) -> PublishConfig {
        let mut config = PublishConfig::new(self.session.state.rabbitmq.amqp_url.clone());
        config.pacing = round.pacing;
        config.stamp_publish_time = round.stamp_publish_time;
        config.warm_up = round.warm_up;
        config
    }

    /// Whether the next round runs the scenario's `[oltp]` workload (the first one does).
    pub fn has_workload(&self) -> bool {
        self.workload.is_some()
    }

    /// Stops the components (their last metrics, or why one did not stop cleanly) and hands the
    /// session back.
    pub async fn finish(self) -> (Session, Result<ComponentMetrics, ComponentError>) {
        let stopped = self.components.stop(Duration::from_secs(20)).await;
        (self.session, stopped)
    }
}

/// Runs `work` with the tracker (under faults) and the watch looking on until it is over.
async fn beside<T>(
    work: impl Future<Output = T>,
    tracker: &mut Tracker,
    stage: Stage,
    watch: &mut impl Watch,
    seen: &Seen<'_>,
    progress: &RefCell<&mut dyn Progress>,
) -> T {
    let (tracked, watched) = (Notify::new(), Notify::new());
    let work = async {
        let out = work.await;
        tracked.notify_one();
        watched.notify_one();
        out
    };
    let (out, (), ()) = tokio::join!(
        work,
        tracker.run_until(&tracked, seen.started, seen.queues),
        watch.during(stage, seen, &watched, progress)
    );
    out
}

/// The workload's transactions at their offsets from `started`, then its record of them.
async fn apply(
    workload: Option<&mut (Workload, Driver)>,
    started: Instant,
    progress: &RefCell<&mut dyn Progress>,
) -> Result<Option<Applied>, RunError> {
    let Some((workload, driver)) = workload else {
        return Ok(None);
    };
    driver
        .run(workload, started, |n| {
            progress
                .borrow_mut()
                .detail(&format!("  workload: {n} transactions committed"))
        })
        .await?;
    Ok(Some(driver.finish().await?))
}

/// The drain's progress line: how far RAW is, and the first hop behind.
fn waiting(expect: &Expect, observed: &Observed, gap: Option<&str>) -> String {
    format!(
        "  waiting: {}/{} streamed events in RAW; {}",
        observed.raw_stream.distinct_events,
        expect.stream_distinct,
        gap.unwrap_or("settling")
    )
}

/// The checks every run must pass: nothing lost or made up (by event id), no file loaded twice,
/// every poison body dead-lettered, every streamed row in its partition, every fault carried
/// out. Done on a stuck drain too, since what never arrived is what left it stuck.
async fn check(
    session: &Session,
    components: &Components,
    round: &Round<'_>,
    before: &ComponentMetrics,
    outcome: &mut Outcome,
) -> Result<(), RunError> {
    let sf = &session.sf;
    let problems = &mut outcome.problems;
    if let Some(stuck) = &outcome.drained.stuck {
        problems.push(stuck.clone());
    }
    let in_raw = warehouse::raw_event_ids(sf).await?;
    let (lost, unexpected) = missing_and_extra(round.expected_ids, &in_raw);
    problems.extend(id_problems(&lost, &unexpected));
    outcome.lost = lost;
    outcome.unexpected = unexpected;
    outcome.loaded_twice = warehouse::files_loaded_twice(sf).await?;
    problems.extend(warehouse::loaded_twice_problem(&outcome.loaded_twice));
    problems.extend(nemesis::problems(&outcome.faults));

    let poison = outcome.stats.poison;
    let under_faults = !round.chaos.is_empty();
    let relay = |m: &ComponentMetrics| m.relay.as_ref().map_or(0, |r| r.dead_lettered);
    let mut dead_lettered = relay(&components.metrics()).saturating_sub(relay(before));
    // The relay writes its metrics file once a second: a count short of the poison gets that
    // long to arrive. Under faults its count is not judged (a restarted relay starts again).
    let deadline = Instant::now() + Duration::from_secs(3);
    while !under_faults && dead_lettered < poison && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        dead_lettered = relay(&components.metrics()).saturating_sub(relay(before));
    }
    let in_queue = outcome.drained.observed.queues.rabbit_dead_letter;
    problems.extend(dead_letter_problem(
        under_faults,
        DeadLetters {
            poison,
            already_in_queue: outcome.dead_letters_through - poison,
        },
        dead_lettered,
        in_queue,
    ));

    let (checked, misplaced) = warehouse::check_partitions(sf).await?;
    problems.extend(partition_problems(&misplaced));
    outcome.partitions = (checked, misplaced);
    Ok(())
}

/// Expected ids missing from RAW, and RAW ids nobody produced, each sorted.
fn missing_and_extra(
    expected: &HashSet<String>,
    in_raw: &HashSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut lost: Vec<String> = expected.difference(in_raw).cloned().collect();
    let mut unexpected: Vec<String> = in_raw.difference(expected).cloned().collect();
    lost.sort();
    unexpected.sort();
    (lost, unexpected)
}

/// A problem line for lost and one for unexpected events, naming the first ten of each.
fn id_problems(lost: &[String], unexpected: &[String]) -> Vec<String> {
    [
        ("lost (produced, not in RAW)", lost),
        ("unexpected (in RAW, never produced)", unexpected),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .map(|(what, ids)| {
        format!(
            "{} events {what}: {}{}",
            ids.len(),
            ids[..ids.len().min(10)].join(", "),
            if ids.len() > 10 { ", ..." } else { "" }
        )
    })
    .collect()
}

/// Without faults every poison body is dead-lettered exactly once, by the relay's count of this
/// round and by the queue. Under faults a body can be dead-lettered twice (the publisher re-sends
/// what the broker had not confirmed when it died), so each must be in the queue at least once.
fn dead_letter_problem(
    under_faults: bool,
    expected: DeadLetters,
    dead_lettered: u64,
    in_queue: u64,
) -> Option<String> {
    let DeadLetters {
        poison,
        already_in_queue,
    } = expected;
    let ok = if under_faults {
        in_queue >= poison + already_in_queue
    } else {
        dead_lettered == poison && in_queue == poison + already_in_queue
    };
    (!ok).then(|| {
        let earlier = if already_in_queue > 0 {
            format!(" (and {already_in_queue} of earlier waves)")
        } else {
            String::new()
        };
        format!(
            "dead letters: {poison} poison bodies published{earlier}, relay dead-lettered {dead_lettered}, dead-letter queue holds {in_queue}"
        )
    })
}

/// The poison bodies a round published, and those earlier waves left in the dead-letter queue.
#[derive(Clone, Copy, Debug)]
struct DeadLetters {
    poison: u64,
    already_in_queue: u64,
}

/// The first five streamed rows outside their partition, and how many in all.
fn partition_problems(misplaced: &[Misplaced]) -> Vec<String> {
    let mut out: Vec<String> = misplaced
        .iter()
        .take(5)
        .map(|m| {
            format!(
                "event {} ({}, occurred {}) was loaded from {}, outside its partition",
                m.event_id, m.source, m.occurred_at, m.file
            )
        })
        .collect();
    if misplaced.len() > 5 {
        out.push(format!("... {} misplaced events in all", misplaced.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> HashSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn every_missing_and_every_extra_id_is_named() {
        let (lost, unexpected) = missing_and_extra(&ids(&["a", "b", "c"]), &ids(&["c", "b", "z"]));
        assert_eq!(
            (lost.clone(), unexpected.clone()),
            (vec!["a".to_owned()], vec!["z".to_owned()])
        );
        let problems = id_problems(&lost, &unexpected);
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("1 events lost") && problems[0].ends_with(": a"));
        assert!(problems[1].starts_with("1 events unexpected") && problems[1].ends_with(": z"));
        let (lost, unexpected) = missing_and_extra(&ids(&["a"]), &ids(&["a"]));
        assert!(id_problems(&lost, &unexpected).is_empty());
        let many: Vec<String> = (0..12).map(|i| format!("e{i:02}")).collect();
        assert!(id_problems(&many, &[])[0].ends_with("e09, ..."));
    }

    #[test]
    fn dead_letters_are_exact_without_faults_and_at_least_once_under_them() {
        let three = DeadLetters {
            poison: 3,
            already_in_queue: 0,
        };
        assert_eq!(dead_letter_problem(false, three, 3, 3), None);
        assert!(
            dead_letter_problem(false, three, 2, 3).is_some(),
            "one the relay did not count"
        );
        assert!(
            dead_letter_problem(false, three, 3, 4).is_some(),
            "one dead-lettered twice"
        );
        assert!(
            dead_letter_problem(false, three, 3, 2).is_some(),
            "one missing from the queue"
        );
        assert_eq!(dead_letter_problem(true, three, 0, 5), None);
        assert!(dead_letter_problem(true, three, 3, 2).is_some());
    }

    #[test]
    fn a_later_wave_counts_its_own_poison_and_finds_the_earlier_in_the_queue() {
        let wave = DeadLetters {
            poison: 11,
            already_in_queue: 9,
        };
        assert_eq!(dead_letter_problem(false, wave, 11, 20), None);
        let shown = dead_letter_problem(false, wave, 11, 11).expect("the earlier nine are gone");
        assert!(shown.contains("(and 9 of earlier waves)"), "{shown}");
        assert!(
            dead_letter_problem(false, wave, 20, 20).is_some(),
            "the relay counts this wave"
        );
    }

    #[test]
    fn waves_split_the_stream_without_gap_or_overlap_and_count_what_is_delivered() {
        use synth::{Body, Emission};
        let stream: Vec<Emission> = (0..10u64)
            .map(|i| Emission {
                offset: Duration::from_secs(i),
                body: Body::Poison(synth::Poison {
                    source: events::Source::Orders,
                    bytes: vec![i as u8],
                }),
            })
            .collect();
        let parts: Vec<std::ops::Range<usize>> = (0..3)
            .map(|w| StreamPart::wave(w, 3).unwrap().range(10))
            .collect();
        assert_eq!(parts, [0..3, 3..6, 6..10]);
        assert!(StreamPart::wave(3, 3).is_none());
        let second: Vec<Emission> = StreamPart::wave(1, 3)
            .unwrap()
            .of(stream.clone().into_iter(), 10)
            .collect();
        assert_eq!(second.len(), 3);
        assert_eq!(second[0].offset, Duration::ZERO, "a wave starts at once");
        assert_eq!(second[2].offset, Duration::from_secs(2));
        let counts = StreamPart::wave(1, 3)
            .unwrap()
            .counts(stream.into_iter(), 10);
        assert_eq!((counts.poison_in_part, counts.poison_through), (3, 6));
    }

    #[test]
    fn misplaced_rows_are_named_up_to_five_then_counted() {
        let m = |i: usize| Misplaced {
            file: format!("f{i}"),
            event_id: format!("e{i}"),
            source: "orders".into(),
            occurred_at: "2026-03-01T00:00:00Z".into(),
        };
        assert!(partition_problems(&[]).is_empty());
        let seven: Vec<Misplaced> = (0..7).map(m).collect();
        let problems = partition_problems(&seven);
        assert_eq!(problems.len(), 6);
        assert!(problems[0].contains("e0") && problems[0].contains("f0"));
        assert_eq!(problems[5], "... 7 misplaced events in all");
    }
}
