//! `load-test`: rig rounds ([`crate::rig`]) under a scenario's schedule, measured.
//!
//! On top of the rig:
//! - [`baseline`]: broker-only and SQS-only throughput on the same stack, first;
//! - the stream published open-model (intended send times, publish delay recorded), while the
//!   rig's sampler records a point per second (rates per hop, queue depths, CPU and RSS);
//! - a warm-up left out of the statistics, then a drain timed per hop;
//! - [`freshness`] per event (intended publish to visible in RAW) and per hop (the components'
//!   own histograms), accounting per source;
//! - [`gates`] from the scenario's `[expect]`, [`search`] for `--find-max`, [`compare`] against
//!   an earlier report, and the [`report`] in JSON, Markdown and [`html`].

pub mod baseline;
pub mod cdc;
pub mod compare;
pub mod freshness;
pub mod gates;
pub mod html;
pub mod latency;
pub mod report;
pub mod search;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use stack::StackName;
use synth::{Component, Generator, Scenario};
use tokio::sync::Notify;

use crate::error::{RunError, io_err};
use crate::rig::chaos::nemesis::FaultRecord;
use crate::rig::components::{ComponentBinaries, ComponentMetrics, ComponentOptions};
use crate::rig::drain::Hop;
use crate::rig::publish::{Pacing, PublishProgress, PublishReport, Publishers};
use crate::rig::sampler::{Sample, Sampler};
use crate::rig::session::Session;
use crate::rig::{Clock, Outcome, Progress, Rig, Round, Seen, Setup, Stage, StreamPart, Watch};
use baseline::Baselines;
use freshness::Freshness;
use html::Band;
use latency::{Distribution, since};
use report::{
    Accounting, DrainSection, FreshnessSection, PublishSection, Rates, Report, Resources, Settings,
    SourceCount,
};
use runtime::latency::new_histogram;
use search::{SearchConfig, SearchResult, StepOutcome};

/// What to run and how.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub scenario: Scenario,
    pub seed: Option<u64>,
    pub root: PathBuf,
    pub stack: StackName,
    pub binaries: ComponentBinaries,
    /// `release` or `dev`: the components' build, for the report.
    pub profile: String,
    /// Multiplies every rate of the scenario.
    pub rate_scale: f64,
    pub find_max: bool,
    /// Measured runs (each reported; their spread is the run-to-run noise).
    pub repeat: u32,
    /// Per-event timing: publish-time stamps for the relay's hop histogram. Off only to measure
    /// what the timing itself costs.
    pub timing: bool,
    /// An earlier report to compare with, and the relative change that counts as one.
    pub baseline: Option<Report>,
    pub tolerance: f64,
    /// Faults to carry out during each measured run (not with `find_max`).
    pub chaos: Vec<synth::chaos::Fault>,
    /// The components' logs, metrics and the pipe's load log (beside the reports, outside the
    /// stack's folder, so they outlive the stack).
    pub work_dir: PathBuf,
    /// Who publishes the measured runs' streams (the baselines publish from this process).
    pub publishers: Publishers,
}

/// One measured run (a repeat, or a step of the search).
struct Measurement {
    scenario: Scenario,
    seed: u64,
    /// The sampler clock's reading when this run's schedule started.
    started_at_s: f64,
    published: PublishReport,
    drain: DrainSection,
    freshness: Freshness,
    hops: BTreeMap<String, Histogram<u64>>,
    accounting: Accounting,
    rates: Rates,
    faults: Vec<FaultRecord>,
    /// With an `[oltp]` workload: the change log's figures.
    cdc: Option<cdc::CdcSection>,
    problems: Vec<String>,
}

/// The events per second a scenario offers.
fn offered_rate(scenario: &Scenario) -> f64 {
    let profile = scenario.total_profile();
    match scenario.duration {
        Some(d) if d.get() > Duration::ZERO => {
            profile.events_by(d.get().as_secs_f64()) / d.get().as_secs_f64()
        }
        _ => scenario.rates.total(),
    }
}

/// What every measured run shares: the rig, the sampler over all of them, the pipe's load log.
struct Bench<'a> {
    rig: Rig,
    sampler: Sampler,
    bands: Vec<Band>,
    runs: Vec<Measurement>,
    load_log: PathBuf,
    config: &'a LoadConfig,
    /// The history's event ids: in RAW for the first run only (a later one resets RAW).
    history_ids: HashSet<String>,
}

/// Runs the load test; writes `report.json`, `report.md` and `report.html` into `out_dir`.
pub async fn run(
    config: &LoadConfig,
    out_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<Report, RunError> {
    let started_at = chrono::Utc::now();
    let mut clock = Clock::new();
    std::fs::create_dir_all(out_dir).map_err(io_err(format!("creating {}", out_dir.display())))?;
    let scenario = config.scenario.with_rates_scaled(config.rate_scale);
    let seed = config.seed.unwrap_or(scenario.seed);
    if synth::oltp::Workload::new(&scenario, Some(seed)).is_some()
        && (config.find_max || config.repeat > 1)
    {
        return Err(RunError::WorkloadOnce(scenario.name.clone()));
    }

    let session = Session::open(&config.root, &config.stack).await?;
    session.reset().await?;
    let mut sampler = Sampler::new(&session.state, Instant::now());
    let mut bands: Vec<Band> = Vec::new();
    let baselines = measure_baselines(
        &session,
        &scenario,
        seed,
        &mut sampler,
        &mut bands,
        progress,
    )
    .await?;
    clock.lap("baselines");

    session.reset().await?;
    let work_dir = config.work_dir.clone();
    let load_log = work_dir.join("pipe-loads.ndjson");
    let _ = std::fs::remove_file(&load_log);
    let setup = Setup {
        scenario: &scenario,
        seed,
        binaries: &config.binaries,
        work_dir,
        chaos: if config.find_max { &[] } else { &config.chaos },
        options: ComponentOptions {
            load_log: Some(load_log.clone()),
            ..ComponentOptions::default()
        },
        build: Some(&config.profile),
        publishers: config.publishers.clone(),
    };
    let mut history_ids = HashSet::new();
    let mut generator = Generator::new(&scenario, Some(seed));
    let history = generator.history().inspect(|e| {
        history_ids.insert(e.event_id().to_owned());
    });
    let snapshot_id = format!("load-{}-{seed}", scenario.name);
    let (rig, _) = Box::pin(Rig::prepare(
        session,
        &setup,
        history,
        snapshot_id,
        progress,
        &mut clock,
    ))
    .await?;
    sampler.watch(&rig.components.pids());
    let mut bench = Bench {
        rig,
        sampler,
        bands,
        runs: Vec::new(),
        load_log,
        config,
        history_ids,
    };
    let find_max = if config.find_max {
        Some(search_max(&mut bench, &scenario, seed, progress).await?)
    } else {
        for k in 0..config.repeat.max(1) {
            if config.repeat > 1 {
                progress.step(&format!("run {} of {}", k + 1, config.repeat));
            }
            let m = measure(
                &mut bench,
                &scenario,
                seed.wrapping_add(u64::from(k)),
                u64::from(k),
                progress,
            )
            .await?;
            bench.bands.push(Band {
                from_s: m.started_at_s,
                to_s: m.started_at_s + scenario.warm_up().as_secs_f64(),
                label: "W: warm-up".into(),
            });
            for (i, f) in m.faults.iter().enumerate() {
                bench.bands.push(Band {
                    from_s: m.started_at_s + f.started_at_s,
                    to_s: m.started_at_s + f.healed_at_s.max(f.started_at_s + 0.5),
                    // Numbered as in the faults table.
                    label: format!("{}: {} {}", i + 1, f.fault.kind, f.fault.target),
                });
            }
            // Restarted components have new PIDs.
            bench.sampler.watch(&bench.rig.components.pids());
            bench.runs.push(m);
        }
        None
    };
    clock.lap("measured runs");
    let Bench {
        rig,
        sampler,
        bands,
        runs,
        ..
    } = bench;
    let (session, stopped) = rig.finish().await;
    session.close().await;

    let mut report = assemble(
        config, &scenario, seed, started_at, baselines, &sampler, &runs, find_max,
    );
    if let Err(e) = stopped {
        report
            .problems
            .insert(0, format!("a component did not stop cleanly: {e}"));
    }
    clock.lap("report");
    report.phases = clock
        .phases
        .iter()
        .map(|p| (p.name.to_owned(), p.elapsed.as_secs_f64()))
        .collect();
    write_report(&report, &bands, out_dir)?;
    Ok(report)
}

/// Same-run baselines, before anything else uses the services, sampled like the run (what the
/// services cost on their own is in the series too).
async fn measure_baselines(
    session: &Session,
    scenario: &Scenario,
    seed: u64,
    sampler: &mut Sampler,
    bands: &mut Vec<Band>,
    progress: &mut dyn Progress,
) -> Result<Baselines, RunError> {
    progress.step(&format!(
        "baseline: broker only ({} events, publish with confirms + a plain consumer)",
        scenario.load.broker_baseline_events
    ));
    let idle = Arc::new(PublishProgress::default());
    let no_components = crate::rig::components::MetricsReader::default();
    let from = sampler.now();
    let done = Notify::new();
    let (broker, ()) = tokio::join!(
        async {
            let r = baseline::broker_only(
                &session.state.rabbitmq.amqp_url,
                scenario,
                seed ^ 0xba5e,
                scenario.load.broker_baseline_events,
            )
            .await;
            done.notify_one();
            r
        },
        sampler.run_until(&done, &idle, &no_components, &session.queues, |_| {})
    );
    let broker = broker?;
    bands.push(Band {
        from_s: from,
        to_s: sampler.now(),
        label: "B: broker-only baseline".into(),
    });
    let body_len = typical_body_len(scenario, seed);
    progress.step(&format!(
        "baseline: broker only {:.0} events/s; SQS only ({} messages of {body_len} bytes, send + receive + delete)",
        broker.events_per_s, scenario.load.sqs_baseline_events
    ));
    let from = sampler.now();
    let done = Notify::new();
    let (sqs, ()) = tokio::join!(
        async {
            let r =
                baseline::sqs_only(&session.sqs, scenario.load.sqs_baseline_events, body_len).await;
            done.notify_one();
            r
        },
        sampler.run_until(&done, &idle, &no_components, &session.queues, |_| {})
    );
    let sqs = sqs?;
    bands.push(Band {
        from_s: from,
        to_s: sampler.now(),
        label: "S: SQS-only baseline".into(),
    });
    progress.step(&format!(
        "baseline: SQS only {:.0} messages/s",
        sqs.events_per_s
    ));
    Ok(Baselines { broker, sqs })
}

/// `--find-max`: steps of the scenario at rates the search picks, each measured.
async fn search_max(
    bench: &mut Bench<'_>,
    scenario: &Scenario,
    seed: u64,
    progress: &mut dyn Progress,
) -> Result<SearchResult, RunError> {
    let base_rate = offered_rate(scenario).max(1e-6);
    let limit = freshness_limit(scenario);
    let search_config = SearchConfig {
        start: base_rate,
        ..SearchConfig::default()
    };
    let mut step_no = 0u64;
    let shared = RefCell::new((bench, progress));
    search::find_max(search_config, |rate| {
        step_no += 1;
        let k = step_no;
        let shared = &shared;
        async move {
            let mut guard = shared.borrow_mut();
            let (bench, progress) = &mut *guard;
            let mut step = scenario.with_rates_scaled(rate / base_rate);
            step.duration = Some(scenario.load.step);
            step.max_events = None;
            progress.step(&format!(
                "find-max step {k}: {rate:.0} events/s for {}",
                scenario.load.step
            ));
            let m = measure(bench, &step, seed.wrapping_add(k), k, &mut **progress).await?;
            bench.bands.push(Band {
                from_s: m.started_at_s,
                to_s: m.started_at_s + step.warm_up().as_secs_f64(),
                label: format!("W{k}: step {k} warm-up"),
            });
            let outcome = step_outcome(&m, rate, limit);
            progress.step(&format!(
                "  step {k}: delivered {:.0}/s, freshness p50 {:.0} ms p99 {:.0} ms, drained in {:.1} s: {}",
                outcome.delivered,
                outcome.freshness_p50_ms,
                outcome.freshness_p99_ms,
                outcome.drain_ms / 1000.0,
                if outcome.sustainable {
                    "sustained".to_owned()
                } else {
                    format!("not sustained ({})", outcome.reason.as_deref().unwrap_or(""))
                }
            ));
            bench.runs.push(m);
            Ok::<_, RunError>(outcome)
        }
    })
    .await
}

/// The report about the run that matters (the last repeat, or the highest rate the search
/// sustained), with every run's problems, the repeats' noise, gates and the comparison.
#[allow(clippy::too_many_arguments)]
fn assemble(
    config: &LoadConfig,
    scenario: &Scenario,
    seed: u64,
    started_at: chrono::DateTime<chrono::Utc>,
    baselines: Baselines,
    sampler: &Sampler,
    runs: &[Measurement],
    find_max: Option<SearchResult>,
) -> Report {
    let primary = match &find_max {
        Some(result) => runs
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                result.steps.iter().any(|s| {
                    s.sustainable
                        && (s.offered - offered_rate(&m.scenario)).abs() < 1e-6 * s.offered.max(1.0)
                })
            })
            .max_by(|a, b| offered_rate(&a.1.scenario).total_cmp(&offered_rate(&b.1.scenario)))
            .map(|(i, _)| i)
            .unwrap_or(0),
        None => runs.len() - 1,
    };
    let m = &runs[primary];
    let measured_rates = Rates {
        end_to_end_to_broker: m.rates.end_to_end / baselines.broker.events_per_s.max(1e-9),
        end_to_end_to_sqs: m.rates.end_to_end / baselines.sqs.events_per_s.max(1e-9),
        ..m.rates.clone()
    };
    let mut report = Report {
        format: report::FORMAT,
        scenario: scenario.name.clone(),
        seed,
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        settings: Settings {
            offered_rate: offered_rate(&m.scenario),
            rate_scale: config.rate_scale,
            duration_s: m.scenario.duration.map_or(0.0, |d| d.as_secs_f64()),
            warm_up_s: m.scenario.warm_up().as_secs_f64(),
            pack: scenario.pipeline.pack,
            batch_size: scenario.pipeline.batch_size,
            batch_window_ms: scenario.pipeline.batch_window.get().as_millis() as u64,
            file_format: format!("{:?}", scenario.pipeline.file_format).to_lowercase(),
            profile: config.profile.clone(),
            timing: config.timing,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            publishers: match &config.publishers {
                Publishers::InProcess => 1,
                Publishers::Split(w) => w.count.get(),
            },
            batcher: match config.binaries.batcher_shape {
                crate::rig::components::BatcherShape::Poller => "poller".into(),
                crate::rig::components::BatcherShape::Lambda => "lambda".into(),
            },
        },
        baselines,
        rates: measured_rates,
        publish: PublishSection {
            bodies: m.published.published,
            events: m.published.events,
            behind: m.published.behind,
            delay: Distribution::of(&m.published.delay),
        },
        freshness: FreshnessSection {
            end_to_end: Distribution::of(&m.freshness.end_to_end),
            hops: m
                .hops
                .iter()
                .map(|(k, h)| (k.clone(), Distribution::of(h)))
                .collect(),
            to_object: Distribution::of(&m.freshness.to_object),
            series: m.freshness.series.clone(),
            unmatched_rows: m.freshness.unmatched,
            during_faults: m
                .freshness
                .faults
                .as_ref()
                .map(|(d, _)| Distribution::of(d)),
            outside_faults: m
                .freshness
                .faults
                .as_ref()
                .map(|(_, o)| Distribution::of(o)),
        },
        drain: m.drain.clone(),
        accounting: m.accounting.clone(),
        resources: Resources {
            peak_rss_bytes: sampler.peak_rss(),
            mean_cpu_cores: sampler.mean_cpu(),
        },
        series: sampler.samples.clone(),
        run_started_at_s: m.started_at_s,
        gates: Vec::new(),
        find_max,
        figures: Vec::new(),
        repeats: Vec::new(),
        comparison: None,
        phases: Vec::new(),
        faults: m.faults.clone(),
        cdc: m.cdc.clone(),
        problems: m.problems.clone(),
    };
    // Every run must lose nothing, not only the one reported.
    for (i, run) in runs.iter().enumerate() {
        if i != primary {
            report.problems.extend(
                run.problems
                    .iter()
                    .map(|p| format!("run {} (seed {}): {p}", i + 1, run.seed)),
            );
        }
    }
    figures(&mut report, runs);
    let peak_rss = Component::ALL
        .iter()
        .filter_map(|c| {
            report
                .resources
                .peak_rss_bytes
                .get(c.name())
                .map(|b| (*c, *b))
        })
        .collect();
    let p = &report.freshness.end_to_end.percentiles;
    let measured = gates::Measured {
        freshness_p99: (p.count > 0).then(|| Duration::from_secs_f64(p.p99_ms / 1000.0)),
        freshness_max: (p.count > 0).then(|| Duration::from_secs_f64(p.max_ms / 1000.0)),
        rate_ratio: Some(match &report.find_max {
            Some(s) => s.max_sustainable / report.baselines.broker.events_per_s.max(1e-9),
            None => report.rates.end_to_end_to_broker,
        }),
        lost: runs.iter().map(|r| r.accounting.lost).sum(),
        peak_rss,
    };
    report.gates = gates::evaluate(&scenario.expect, &measured);
    if let Some(old) = &config.baseline {
        report.comparison = Some(compare::compare(
            &old.figures,
            &report.figures,
            config.tolerance,
        ));
    }
    report
}

/// Headline figures, with the spread of the repeats as their noise.
fn figures(report: &mut Report, runs: &[Measurement]) {
    let mut figures = report.headline();
    if runs.len() > 1 && report.find_max.is_none() {
        let per_run: Vec<BTreeMap<String, f64>> = runs
            .iter()
            .map(|run| {
                let mut r = report.clone();
                r.rates = Rates {
                    end_to_end_to_broker: run.rates.end_to_end
                        / r.baselines.broker.events_per_s.max(1e-9),
                    end_to_end_to_sqs: run.rates.end_to_end
                        / r.baselines.sqs.events_per_s.max(1e-9),
                    ..run.rates.clone()
                };
                r.freshness.end_to_end = Distribution::of(&run.freshness.end_to_end);
                r.publish.delay = Distribution::of(&run.published.delay);
                r.headline()
                    .into_iter()
                    .map(|f| (f.name, f.value))
                    .collect()
            })
            .collect();
        for f in &mut figures {
            let values: Vec<f64> = per_run
                .iter()
                .filter_map(|r| r.get(&f.name).copied())
                .collect();
            f.noise = compare::noise(&values);
        }
        report.repeats = per_run;
    }
    report.figures = figures;
}

/// Part of the pipe's hop: from the object's creation to the pipe holding its notice (SNS, the
/// notify queue, the poll and the pipe's linger).
pub const NOTICE_HOP: &str = "S3 -> notice in the pipe (SNS, queue, poll)";

/// The freshness a step must keep to count as sustained: the scenario's p99 gate, or the batch
/// window plus 5 s.
fn freshness_limit(scenario: &Scenario) -> Duration {
    scenario
        .expect
        .freshness_p99
        .map(|s| s.get())
        .unwrap_or(scenario.pipeline.batch_window.get() + Duration::from_secs(5))
}

fn step_outcome(m: &Measurement, offered: f64, limit: Duration) -> StepOutcome {
    let p = latency::Percentiles::of(&m.freshness.end_to_end);
    let drain_ms = m
        .drain
        .seconds
        .get(Hop::Pipe.label())
        .copied()
        .flatten()
        .map_or(f64::INFINITY, |s| s * 1000.0);
    let publish_rate = m.rates.published;
    let delay_p99 = latency::Percentiles::of(&m.published.delay).p99_ms;
    let reason = if let Some(stuck) = &m.drain.stuck {
        Some(format!(
            "did not drain: {}",
            stuck.lines().next().unwrap_or("")
        ))
    } else if m.accounting.lost > 0 {
        Some(format!("{} events lost", m.accounting.lost))
    } else if delay_p99 > 1000.0 {
        // The broker would not take the rate: sends ran over a second behind schedule.
        Some(format!(
            "the publisher fell behind: publish delay p99 {delay_p99:.0} ms, {publish_rate:.0}/s of {offered:.0}/s offered"
        ))
    } else if Duration::from_secs_f64(p.p99_ms / 1000.0) > limit {
        Some(format!(
            "freshness p99 {:.0} ms over {:.0} ms",
            p.p99_ms,
            limit.as_secs_f64() * 1000.0
        ))
    } else {
        None
    };
    StepOutcome {
        offered,
        delivered: m.rates.end_to_end,
        freshness_p50_ms: p.p50_ms,
        freshness_p99_ms: p.p99_ms,
        drain_ms,
        sustainable: reason.is_none(),
        reason,
    }
}

/// The average protobuf body of the scenario as SQS text (base64), for the SQS baseline.
fn typical_body_len(scenario: &Scenario, seed: u64) -> usize {
    let bodies: Vec<usize> = Generator::new(scenario, Some(seed))
        .first_events()
        .take(200)
        .map(|e| events::wire::to_text(&e.encode()).len())
        .collect();
    (bodies.iter().sum::<usize>() / bodies.len().max(1)).max(1)
}

/// What load-test samples while a round streams and drains: the time series (and the progress
/// bar's ticks), the components' metrics at the end of the warm-up, and the WAL the cdc's slot
/// retains.
struct Sampling<'a> {
    sampler: &'a mut Sampler,
    warm_up: Duration,
    at_warm_up: Option<ComponentMetrics>,
    with_workload: bool,
    wal: Vec<cdc::WalPoint>,
}

impl Watch for Sampling<'_> {
    async fn during(
        &mut self,
        stage: Stage,
        seen: &Seen<'_>,
        done: &Notify,
        progress: &RefCell<&mut dyn Progress>,
    ) {
        let Self {
            sampler,
            warm_up,
            at_warm_up,
            with_workload,
            wal,
        } = self;
        let clock = sampler.clock();
        let (sampled, walled) = (Notify::new(), Notify::new());
        let sampling =
            sampler.run_until(&sampled, seen.published, seen.metrics, seen.queues, |s| {
                progress.borrow_mut().tick(s, seen.total);
                if stage == Stage::Stream
                    && at_warm_up.is_none()
                    && seen.started.elapsed() >= *warm_up
                {
                    *at_warm_up = Some(seen.metrics.read());
                }
            });
        let wal_sampling = async {
            if *with_workload {
                cdc::sample_wal(seen.pg, ::cdc::DEFAULT_SLOT, clock, &walled, wal).await;
            }
        };
        let fan_out = async {
            done.notified().await;
            sampled.notify_one();
            walled.notify_one();
        };
        tokio::join!(sampling, wal_sampling, fan_out);
    }
}

/// One measured run: a rig round on the scenario's schedule, sampled, then its figures.
async fn measure(
    bench: &mut Bench<'_>,
    scenario: &Scenario,
    seed: u64,
    index: u64,
    progress: &mut dyn Progress,
) -> Result<Measurement, RunError> {
    let config = bench.config;
    // Faults only in the measured runs, not in the steps of a search.
    let chaos: &[synth::chaos::Fault] = if config.find_max { &[] } else { &config.chaos };
    // Each run's events are its own: another seed (new ids, new files) and, a day apart per
    // run, their own event times.
    let mut scenario = scenario.clone();
    scenario.start += chrono::Duration::days(index as i64);
    if index > 0 {
        bench.rig.session.reset().await?;
    }
    let mut expected_ids: HashSet<String> = Generator::new(&scenario, Some(seed))
        .first_events()
        .map(|e| e.event_id().to_owned())
        .collect();
    if index == 0 {
        expected_ids.extend(bench.history_ids.iter().cloned());
    }
    let warm_up = scenario.warm_up();
    let round = Round {
        scenario: &scenario,
        seed,
        chaos,
        pacing: Pacing::Scenario,
        stamp_publish_time: config.timing,
        warm_up,
        drain_timeout: scenario.load.drain_timeout.get(),
        drain_interval: Duration::from_millis(250),
        expected_ids: &expected_ids,
        part: StreamPart::WHOLE,
    };
    let started_at_s = bench.sampler.now();
    let mut sampling = Sampling {
        sampler: &mut bench.sampler,
        warm_up,
        at_warm_up: None,
        with_workload: bench.rig.has_workload(),
        wal: Vec::new(),
    };
    // Boxed: a round's future is large, and test threads have small stacks.
    let outcome = Box::pin(bench.rig.round(&round, &mut sampling, progress)).await?;
    let at_warm_up = sampling.at_warm_up.take().unwrap_or_default();
    let wal = std::mem::take(&mut sampling.wal);
    let mut problems = outcome.problems.clone();
    let mut drain = DrainSection {
        seconds: BTreeMap::new(),
        stuck: outcome.drained.stuck.clone(),
    };
    for hop in Hop::ALL {
        drain.seconds.insert(
            hop.label().to_owned(),
            outcome
                .drained
                .caught_up_after(hop)
                .map(|d| d.as_secs_f64()),
        );
    }
    let last = bench.rig.components.metrics();
    let hops = hop_latencies(&last, &at_warm_up);
    let session = &bench.rig.session;
    let accounting = account(
        session,
        &outcome.published,
        &last,
        &outcome.drained.observed,
    )
    .await?;

    let loads = freshness::read_load_log(&bench.load_log)
        .map_err(io_err(format!("reading {}", bench.load_log.display())))?;
    let windows: Vec<(Duration, Duration)> = chaos.iter().map(|f| (f.start, f.end)).collect();
    let freshness = freshness::measure(
        &session.sf,
        &loads,
        freshness::Clock {
            run_start_us: outcome.published.schedule_start_us,
            scenario_start: scenario.start,
            warm_up,
        },
        &windows,
    )
    .await?;
    if freshness.unmatched > 0 {
        problems.push(format!(
            "{} events in RAW came from files the pipe's load log does not name",
            freshness.unmatched
        ));
    }
    let cdc = match &outcome.applied {
        Some(applied) => {
            let (commit_to_raw, unmatched) = cdc::commit_to_raw(&session.sf, &loads).await?;
            if outcome.drained.stuck.is_none() && unmatched > 0 {
                problems.push(format!(
                    "{unmatched} row changes in RAW came from files the pipe's load log does not name"
                ));
            }
            Some(cdc_section(
                &scenario,
                applied,
                &last,
                bench.rig.snapshot.unwrap_or_default(),
                commit_to_raw,
                unmatched,
                wal,
            ))
        }
        None => None,
    };
    let rates = rates(
        &bench.sampler,
        &scenario,
        &outcome,
        started_at_s,
        &freshness,
    );
    Ok(Measurement {
        scenario,
        seed,
        started_at_s,
        published: outcome.published,
        drain,
        freshness,
        hops,
        accounting,
        rates,
        faults: outcome.faults,
        cdc,
        problems,
    })
}

fn decode(e: &runtime::latency::EncodedHistogram) -> Histogram<u64> {
    e.decode().unwrap_or_else(|_| new_histogram())
}

/// Hop latencies as the components measured them, the warm-up cut off.
fn hop_latencies(
    last: &ComponentMetrics,
    at_warm_up: &ComponentMetrics,
) -> BTreeMap<String, Histogram<u64>> {
    let mut hops = BTreeMap::new();
    let mut add = |hop: &str, now: Option<Histogram<u64>>, before: Option<Histogram<u64>>| {
        if let Some(now) = now {
            let before = before.unwrap_or_else(new_histogram);
            hops.insert(hop.to_owned(), since(&now, &before));
        }
    };
    add(
        Hop::Relay.label(),
        last.relay.as_ref().map(|m| decode(&m.publish_to_sqs_us)),
        at_warm_up
            .relay
            .as_ref()
            .map(|m| decode(&m.publish_to_sqs_us)),
    );
    add(
        Hop::Batcher.label(),
        last.batcher.as_ref().map(|m| decode(&m.sqs_to_object_us)),
        at_warm_up
            .batcher
            .as_ref()
            .map(|m| decode(&m.sqs_to_object_us)),
    );
    add(
        Hop::Pipe.label(),
        last.pipe.as_ref().map(|m| decode(&m.object_to_visible_us)),
        at_warm_up
            .pipe
            .as_ref()
            .map(|m| decode(&m.object_to_visible_us)),
    );
    add(
        NOTICE_HOP,
        last.pipe.as_ref().map(|m| decode(&m.object_to_notice_us)),
        at_warm_up
            .pipe
            .as_ref()
            .map(|m| decode(&m.object_to_notice_us)),
    );
    hops
}

fn cdc_section(
    scenario: &Scenario,
    applied: &crate::rig::oltp::Applied,
    last: &ComponentMetrics,
    snapshot: (i64, Duration),
    commit_to_raw: Histogram<u64>,
    unmatched: u64,
    wal: Vec<cdc::WalPoint>,
) -> cdc::CdcSection {
    let (retained_wal_max_bytes, retained_wal_last_bytes, unconfirmed_wal_max_bytes) =
        cdc::wal_figures(&wal);
    let confirm = last
        .cdc
        .as_ref()
        .map(|c| decode(&c.commit_to_confirm_us))
        .unwrap_or_else(new_histogram);
    let span = scenario.duration.map_or(1.0, |d| d.as_secs_f64());
    cdc::CdcSection {
        transactions: applied.stats.transactions,
        row_changes: applied.stats.row_changes(),
        offered_transactions_per_s: scenario.oltp.map_or(0.0, |o| o.transactions.get()),
        confirmed_changes_per_s: applied.stats.row_changes() as f64 / span,
        snapshot_rows: snapshot.0,
        snapshot_s: snapshot.1.as_secs_f64(),
        commit_to_confirm: Distribution::of(&confirm),
        commit_to_raw: Distribution::of(&commit_to_raw),
        retained_wal_max_bytes,
        retained_wal_last_bytes,
        unconfirmed_wal_max_bytes,
        wal,
        unmatched,
    }
}

/// Rates over the measured window: after the warm-up, until the last publish.
fn rates(
    sampler: &Sampler,
    scenario: &Scenario,
    outcome: &Outcome,
    started_at_s: f64,
    freshness: &Freshness,
) -> Rates {
    let from = started_at_s + scenario.warm_up().as_secs_f64();
    let to = started_at_s + outcome.stream_time.as_secs_f64();
    let window: Vec<&Sample> = sampler
        .samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .collect();
    let rate_of = |f: fn(&Sample) -> u64| match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.t > a.t => f(b).saturating_sub(f(a)) as f64 / (b.t - a.t),
        _ => 0.0,
    };
    Rates {
        offered: offered_rate(scenario),
        // The publisher's own count over its own clock: exact, where the sampled window is not.
        published: outcome.published.achieved_rate(),
        forwarded: rate_of(|s| s.forwarded),
        written: rate_of(|s| s.written),
        loaded: rate_of(|s| s.loaded),
        end_to_end: freshness.delivered_rate(),
        end_to_end_to_broker: 0.0,
        end_to_end_to_sqs: 0.0,
    }
}

/// Published events per source against distinct events and rows in RAW; poison against the
/// dead letters.
async fn account(
    session: &Session,
    published: &PublishReport,
    metrics: &ComponentMetrics,
    observed: &crate::rig::drain::Observed,
) -> Result<Accounting, RunError> {
    let mut in_raw = crate::rig::warehouse::stream_counts_by_source(&session.sf).await?;
    let mut out = Accounting {
        poison_published: published.poison,
        dead_lettered: metrics.relay.as_ref().map_or(0, |r| r.dead_lettered),
        dead_letter_queue: observed.queues.rabbit_dead_letter,
        ..Accounting::default()
    };
    for (i, source) in events::Source::GENERATED.iter().enumerate() {
        let (rows, distinct) = in_raw.remove(source.as_str()).unwrap_or_default();
        let sent = published.events_by_source[i];
        let c = SourceCount {
            source: source.as_str().to_owned(),
            published: sent,
            distinct_in_raw: distinct,
            rows_in_raw: rows,
            lost: sent.saturating_sub(distinct),
            unexpected: distinct.saturating_sub(sent),
        };
        out.lost += c.lost;
        out.unexpected += c.unexpected;
        out.duplicate_rows += rows - distinct.min(rows);
        out.sources.push(c);
    }
    for (source, (rows, distinct)) in in_raw {
        out.unexpected += distinct;
        out.sources.push(SourceCount {
            source,
            published: 0,
            distinct_in_raw: distinct,
            rows_in_raw: rows,
            lost: 0,
            unexpected: distinct,
        });
    }
    Ok(out)
}

/// Writes `report.json`, `report.md` and `report.html` (each written then renamed, so a
/// reader never sees half a file).
pub fn write_report(report: &Report, bands: &[Band], out_dir: &Path) -> Result<(), RunError> {
    let write = |name: &str, bytes: &[u8]| {
        let path = out_dir.join(name);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, bytes)
            .and_then(|()| std::fs::rename(&partial, &path))
            .map_err(io_err(format!("writing {}", path.display())))
    };
    write(
        "report.json",
        &serde_json::to_vec_pretty(report).expect("a report serializes"),
    )?;
    write("report.md", report.markdown().as_bytes())?;
    write("report.html", html::render(report, bands).as_bytes())?;
    Ok(())
}

/// Reads an earlier `report.json` (for `--baseline`), naming the file on any problem.
pub fn read_report(path: &Path) -> Result<Report, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a load-test report: {e}", path.display()))?;
    if report.format != report::FORMAT {
        return Err(format!(
            "{}: report format {} (this build reads format {})",
            path.display(),
            report.format,
            report::FORMAT
        ));
    }
    Ok(report)
}
