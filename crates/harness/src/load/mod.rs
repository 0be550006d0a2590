//! `load-test`: the real pipeline under a scenario's schedule, measured.
//!
//! The run pipeline is `e2e`'s ([`crate::session`], [`crate::publish`], [`crate::drain`]); on top:
//! - [`baseline`]: broker-only and SQS-only throughput on the same stack, first;
//! - the stream published open-model (intended send times, publish delay recorded), while
//!   [`sampler`] records a point per second (rates per hop, queue depths, CPU and RSS);
//! - a warm-up left out of the statistics, then a drain timed per hop;
//! - [`freshness`] per event (intended publish to visible in RAW) and per hop (the components'
//!   own histograms), loss accounting per source;
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
pub mod sampler;
pub mod search;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use stack::StackName;
use synth::{Component, Generator, Scenario};

use crate::chaos::nemesis::{self, FaultRecord, Proxies, Targets, Tracker};
use crate::components::{ComponentBinaries, ComponentMetrics, ComponentOptions, Components};
use crate::drain::{DrainError, Expect, HOPS, drain};
use crate::publish::{
    Pacing, PublishConfig, PublishError, PublishProgress, PublishReport, publish_observed,
};
use crate::queues::QueueError;
use crate::session::{Session, SessionError};
use crate::warehouse::WarehouseError;
use baseline::{BaselineError, Baselines};
use freshness::{Clock, Freshness};
use html::Band;
use latency::{Distribution, since};
use report::{
    Accounting, DrainSection, FreshnessSection, PublishSection, Rates, Report, Resources, Settings,
    SourceCount,
};
use runtime::latency::new_histogram;
use sampler::{Sample, Sampler};
use search::{SearchConfig, StepOutcome};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Drain(#[from] DrainError),
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Workload(#[from] crate::oltp::WorkloadError),
    #[error(transparent)]
    Snapshot(#[from] crate::oltp::SnapshotWaitError),
    #[error("the cdc slot: {0}")]
    Cdc(#[from] ::cdc::CdcError),
    #[error(
        "{0} has an [oltp] workload, which runs once per load test: drop --find-max and --repeat"
    )]
    WorkloadOnce(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LoadError {
    let context = context.into();
    move |source| LoadError::Io { context, source }
}

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
}

/// What the caller shows while a run goes on.
pub trait Progress {
    /// A step of the run (baselines, backfill, a search step, ...).
    fn step(&mut self, line: &str);
    /// One sample of the time series, with the number of bodies the current run will publish.
    fn tick(&mut self, sample: &Sample, total: u64);
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

/// The workload of a scenario with `[oltp]`, its first rows in place and the cdc's snapshot of
/// them taken.
struct WorkloadRun {
    workload: synth::oltp::Workload,
    driver: crate::oltp::Driver,
    snapshot: (i64, Duration),
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

/// Runs the load test; writes `report.json`, `report.md` and `report.html` into `out_dir`.
pub async fn run(
    config: &LoadConfig,
    out_dir: &Path,
    progress: &mut dyn Progress,
) -> Result<Report, LoadError> {
    let started_at = chrono::Utc::now();
    let clock_start = Instant::now();
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut lap = Instant::now();
    let mut phase = |name: &str, lap: &mut Instant| {
        phases.push((name.to_owned(), lap.elapsed().as_secs_f64()));
        *lap = Instant::now();
    };
    std::fs::create_dir_all(out_dir).map_err(io_err(format!("creating {}", out_dir.display())))?;
    let scenario = config.scenario.with_rates_scaled(config.rate_scale);
    let seed = config.seed.unwrap_or(scenario.seed);

    let mut session = Session::open(&config.root, &config.stack).await?;
    session.reset().await?;
    let mut sampler = Sampler::new(&session.state, clock_start);
    let mut bands: Vec<Band> = Vec::new();

    // Same-run baselines, before anything else uses the services, sampled like the run (what
    // the services cost on their own is in the series too).
    progress.step(&format!(
        "baseline: broker only ({} events, publish with confirms + a plain consumer)",
        scenario.load.broker_baseline_events
    ));
    let idle = Arc::new(PublishProgress::default());
    let no_components = crate::components::MetricsReader::default();
    let from = sampler.now();
    let done = tokio::sync::Notify::new();
    let (broker, ()) = tokio::join!(
        async {
            let r = baseline::broker_only(
                &session.state.rabbitmq.amqp_url,
                &scenario,
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
        label: "broker-only baseline".into(),
    });
    let body_len = typical_body_len(&scenario, seed);
    progress.step(&format!(
        "baseline: broker only {:.0} events/s; SQS only ({} messages of {body_len} bytes, send + receive + delete)",
        broker.events_per_s, scenario.load.sqs_baseline_events
    ));
    let from = sampler.now();
    let done = tokio::sync::Notify::new();
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
        label: "SQS-only baseline".into(),
    });
    progress.step(&format!(
        "baseline: SQS only {:.0} messages/s",
        sqs.events_per_s
    ));
    let baselines = Baselines { broker, sqs };
    phase("baselines", &mut lap);

    session.reset().await?;
    let mut history = Generator::new(&scenario, Some(seed));
    let (loaded, snapshot) = session
        .backfill(history.history(), format!("load-{}-{seed}", scenario.name))
        .await?;
    progress.step(&format!(
        "backfill: {} history events into PostgreSQL, {} into RAW.EVENTS_BACKFILL",
        loaded.inserted, snapshot.inserted
    ));
    phase("backfill", &mut lap);

    // The workload's first rows, before the cdc starts: its snapshot reads them.
    let mut workload = match synth::oltp::Workload::new(&scenario, Some(seed)) {
        Some(_) if config.find_max || config.repeat > 1 => {
            return Err(LoadError::WorkloadOnce(scenario.name.clone()));
        }
        Some(mut workload) => {
            ::cdc::slot::reset(&session.pg, ::cdc::DEFAULT_SLOT).await?;
            crate::oltp::Driver::reset(&session.pg).await?;
            let mut driver = crate::oltp::Driver::connect(&session.state.postgres.url).await?;
            driver.initial(&mut workload).await?;
            progress.step(&format!(
                "workload: {} rows in shop.customers and shop.order_status for the cdc's snapshot",
                workload.stats().initial_rows
            ));
            Some((workload, driver))
        }
        None => None,
    };

    let work_dir = session.state.dir.join("load");
    std::fs::create_dir_all(&work_dir)
        .map_err(io_err(format!("creating {}", work_dir.display())))?;
    let load_log = work_dir.join("pipe-loads.ndjson");
    let _ = std::fs::remove_file(&load_log);
    let proxies = Proxies::for_faults(&session.state, &config.chaos)
        .await
        .map_err(io_err("starting the fault proxies"))?;
    let mut components = session.start_components(
        &config.binaries,
        &scenario,
        &work_dir,
        &proxies.options(
            &session.state,
            ComponentOptions {
                load_log: Some(load_log.clone()),
                ..ComponentOptions::default()
            },
        ),
    )?;
    sampler.watch(&components.pids());
    let names: Vec<&str> = scenario.components().iter().map(|c| c.name()).collect();
    progress.step(&format!(
        "started {} ({} build; logs and metrics in {})",
        names.join(", "),
        config.profile,
        work_dir.display()
    ));
    let mut workload = match workload.take() {
        Some((workload, driver)) => {
            let say = |line: &str| eprintln!("{line}");
            let snapshot = crate::oltp::wait_for_snapshot(
                &session.pg,
                &mut components,
                &work_dir.join("cdc.log"),
                &say,
            )
            .await?;
            Some(WorkloadRun {
                workload,
                driver,
                snapshot,
            })
        }
        None => None,
    };

    let mut runs: Vec<Measurement> = Vec::new();
    let find_max = if config.find_max {
        let base_rate = offered_rate(&scenario).max(1e-6);
        let limit = freshness_limit(&scenario);
        let search_config = SearchConfig {
            start: base_rate,
            ..SearchConfig::default()
        };
        let mut step_no = 0u64;
        let (scenario, load_log) = (&scenario, &load_log);
        let shared = std::cell::RefCell::new((
            &mut session,
            &mut components,
            &mut sampler,
            &mut runs,
            &mut bands,
            &mut *progress,
        ));
        let result = search::find_max(search_config, |rate| {
            step_no += 1;
            let k = step_no;
            let shared = &shared;
            async move {
                let mut guard = shared.borrow_mut();
                let (session, components, sampler, runs, bands, progress) = &mut *guard;
                let mut step = scenario.with_rates_scaled(rate / base_rate);
                step.duration = Some(scenario.load.step);
                step.max_events = None;
                progress.step(&format!("find-max step {k}: {rate:.0} events/s for {}", scenario.load.step));
                let m = measure_once(session, components, sampler, &step, seed.wrapping_add(k), k, load_log, config, &Proxies::default(), None, &mut **progress).await?;
                bands.push(Band {
                    from_s: m.started_at_s,
                    to_s: m.started_at_s + step.warm_up().as_secs_f64(),
                    label: format!("step {k} warm-up"),
                });
                let outcome = step_outcome(&m, rate, limit);
                progress.step(&format!(
                    "  step {k}: delivered {:.0}/s, freshness p50 {:.0} ms p99 {:.0} ms, drained in {:.1} s: {}",
                    outcome.delivered,
                    outcome.freshness_p50_ms,
                    outcome.freshness_p99_ms,
                    outcome.drain_ms / 1000.0,
                    if outcome.sustainable { "sustained".to_owned() } else { format!("not sustained ({})", outcome.reason.as_deref().unwrap_or("")) }
                ));
                runs.push(m);
                Ok::<_, LoadError>(outcome)
            }
        })
        .await?;
        Some(result)
    } else {
        for k in 0..config.repeat.max(1) {
            if config.repeat > 1 {
                progress.step(&format!("run {} of {}", k + 1, config.repeat));
            }
            let m = measure_once(
                &mut session,
                &mut components,
                &mut sampler,
                &scenario,
                seed.wrapping_add(u64::from(k)),
                u64::from(k),
                &load_log,
                config,
                &proxies,
                workload.as_mut(),
                progress,
            )
            .await?;
            bands.push(Band {
                from_s: m.started_at_s,
                to_s: m.started_at_s + scenario.warm_up().as_secs_f64(),
                label: "warm-up".into(),
            });
            for f in &m.faults {
                bands.push(Band {
                    from_s: m.started_at_s + f.started_at_s,
                    to_s: m.started_at_s + f.healed_at_s.max(f.started_at_s + 0.5),
                    label: format!("{} {}", f.fault.kind, f.fault.target),
                });
            }
            // Restarted components have new PIDs.
            sampler.watch(&components.pids());
            runs.push(m);
        }
        None
    };
    phase("measured runs", &mut lap);
    let stopped = components.stop(Duration::from_secs(20)).await;
    session.close().await;

    // The run the report is about: the last repeat, or the highest rate the search sustained.
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
    let mut problems: Vec<String> = m.problems.clone();
    if let Err(e) = stopped {
        problems.push(format!("a component did not stop cleanly: {e}"));
    }
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
        gates: Vec::new(),
        find_max,
        figures: Vec::new(),
        repeats: Vec::new(),
        comparison: None,
        phases: Vec::new(),
        faults: m.faults.clone(),
        cdc: m.cdc.clone(),
        problems: Vec::new(),
    };
    // Every run must lose nothing, not only the one reported.
    for (i, run) in runs.iter().enumerate() {
        if i != primary {
            problems.extend(
                run.problems
                    .iter()
                    .map(|p| format!("run {} (seed {}): {p}", i + 1, run.seed)),
            );
        }
    }
    report.problems = problems;

    // Headline figures, with the spread of the repeats as their noise.
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
    phase("report", &mut lap);
    report.phases = phases;
    write_report(&report, &bands, out_dir)?;
    Ok(report)
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
        .get(HOPS[2])
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

/// One measured run: reset, publish the scenario on its schedule while sampling, drain, count.
#[allow(clippy::too_many_arguments)]
async fn measure_once(
    session: &mut Session,
    components: &mut Components,
    sampler: &mut Sampler,
    scenario: &Scenario,
    seed: u64,
    index: u64,
    load_log: &Path,
    config: &LoadConfig,
    proxies: &Proxies,
    mut workload: Option<&mut WorkloadRun>,
    progress: &mut dyn Progress,
) -> Result<Measurement, LoadError> {
    // Faults only in the measured runs, not in the steps of a search.
    let chaos: &[synth::chaos::Fault] = if config.find_max { &[] } else { &config.chaos };
    // Each run's events are its own: another seed (new ids, new files) and, a day apart per
    // run, their own event times.
    let mut scenario = scenario.clone();
    scenario.start += chrono::Duration::days(index as i64);
    if index > 0 {
        session.reset().await?;
    }
    let warm_up = scenario.warm_up();
    let mut generator = Generator::new(&scenario, Some(seed));
    let total = {
        let mut counting = Generator::new(&scenario, Some(seed));
        counting.stream().count() as u64
    };
    let mut publish_config = PublishConfig::new(session.state.rabbitmq.amqp_url.clone());
    publish_config.pacing = Pacing::Scenario;
    publish_config.stamp_publish_time = config.timing;
    publish_config.warm_up = warm_up;
    let observed = Arc::new(PublishProgress::default());
    let reader = components.reader();
    let done = tokio::sync::Notify::new();
    let started_at_s = sampler.now();
    let mut at_warm_up: Option<ComponentMetrics> = None;
    let run_start = Instant::now();

    // Publish on the schedule while sampling, and carry out the faults.
    let targets = Targets {
        root: config.root.clone(),
        stack: config.stack.clone(),
        proxies,
        sqs: &session.sqs,
    };
    let mut tracker = Tracker::connect(&session.state, chaos)
        .await
        .map_err(SessionError::Snowflake)?;
    let tracked = tokio::sync::Notify::new();
    let progress = std::cell::RefCell::new(progress);
    let mut say = |line: &str| progress.borrow_mut().step(line);
    let mut wal = Vec::new();
    let sampler_clock = sampler.clock();
    let pg = &session.pg;
    let with_workload = workload.is_some();
    let wal_done = tokio::sync::Notify::new();
    let applying = async {
        match workload.as_mut() {
            Some(w) => {
                w.driver.run(&mut w.workload, run_start, |_| {}).await?;
                w.driver.finish().await.map(Some)
            }
            None => Ok(None),
        }
    };
    let publishing = async {
        let (r, faults, applied) = tokio::join!(
            publish_observed(&publish_config, generator.stream(), &observed, |_| {}),
            nemesis::run(chaos, run_start, components, &targets, &mut say),
            applying,
        );
        done.notify_one();
        tracked.notify_one();
        wal_done.notify_one();
        (r, faults, applied)
    };
    let wal_sampling = async {
        if with_workload {
            cdc::sample_wal(pg, ::cdc::DEFAULT_SLOT, sampler_clock, &wal_done, &mut wal).await;
        }
    };
    let sampling = sampler.run_until(&done, &observed, &reader, &session.queues, |s| {
        progress.borrow_mut().tick(s, total);
        if at_warm_up.is_none() && run_start.elapsed() >= warm_up {
            at_warm_up = Some(reader.read());
        }
    });
    let tracking = async {
        if !chaos.is_empty() {
            tracker
                .run_until(&tracked, run_start, &session.queues)
                .await;
        }
    };
    let ((published, mut faults, applied), (), (), ()) =
        tokio::join!(publishing, sampling, tracking, wal_sampling);
    let published = published?;
    let applied = applied?;
    let progress = progress.into_inner();
    let at_warm_up = at_warm_up.unwrap_or_default();
    let publish_elapsed = run_start.elapsed();

    // Drain, still sampling.
    let stats = generator.stats().clone();
    let expect = Expect {
        published: published.published,
        poison: stats.poison,
        stream_distinct: stats.stream_events(),
        cdc_changes: applied.as_ref().map(crate::oltp::Applied::row_changes),
    };
    let done = tokio::sync::Notify::new();
    let wal_done = tokio::sync::Notify::new();
    let draining = async {
        let r = drain(
            &expect,
            components,
            &session.queues,
            &session.sf,
            scenario.load.drain_timeout.get(),
            Duration::from_millis(250),
            |_, _| {},
        )
        .await;
        done.notify_one();
        wal_done.notify_one();
        r
    };
    let sampling = sampler.run_until(&done, &observed, &reader, &session.queues, |s| {
        progress.tick(s, total)
    });
    let wal_sampling = async {
        if with_workload {
            cdc::sample_wal(pg, ::cdc::DEFAULT_SLOT, sampler_clock, &wal_done, &mut wal).await;
        }
    };
    // The tracker goes on through the drain: a fault's recovery may end there.
    let tracked = tokio::sync::Notify::new();
    let draining = async {
        let r = draining.await;
        tracked.notify_one();
        r
    };
    let tracking = async {
        if !chaos.is_empty() {
            tracker
                .run_until(&tracked, run_start, &session.queues)
                .await;
        }
    };
    let (drained, (), (), ()) = tokio::join!(draining, sampling, tracking, wal_sampling);
    let drained = drained?;
    tracker.complete(&mut faults);
    let mut drain_section = DrainSection {
        seconds: BTreeMap::new(),
        stuck: drained.stuck.clone(),
    };
    for (hop, after) in HOPS.iter().zip(drained.caught_up_after) {
        drain_section
            .seconds
            .insert((*hop).to_owned(), after.map(|d| d.as_secs_f64()));
    }
    let mut problems = Vec::new();
    if let Some(stuck) = &drained.stuck {
        problems.push(stuck.clone());
    }

    // Hop latencies as the components measured them, the warm-up cut off.
    let last = components.metrics();
    let decode =
        |e: &runtime::latency::EncodedHistogram| e.decode().unwrap_or_else(|_| new_histogram());
    let mut hops = BTreeMap::new();
    if let (Some(now), before) = (&last.relay, &at_warm_up.relay) {
        let before = before
            .as_ref()
            .map(|b| decode(&b.publish_to_sqs_us))
            .unwrap_or_else(new_histogram);
        hops.insert(
            HOPS[0].to_owned(),
            since(&decode(&now.publish_to_sqs_us), &before),
        );
    }
    if let (Some(now), before) = (&last.batcher, &at_warm_up.batcher) {
        let before = before
            .as_ref()
            .map(|b| decode(&b.sqs_to_object_us))
            .unwrap_or_else(new_histogram);
        hops.insert(
            HOPS[1].to_owned(),
            since(&decode(&now.sqs_to_object_us), &before),
        );
    }
    if let (Some(now), before) = (&last.pipe, &at_warm_up.pipe) {
        let before_visible = before
            .as_ref()
            .map(|b| decode(&b.object_to_visible_us))
            .unwrap_or_else(new_histogram);
        hops.insert(
            HOPS[2].to_owned(),
            since(&decode(&now.object_to_visible_us), &before_visible),
        );
        let before_notice = before
            .as_ref()
            .map(|b| decode(&b.object_to_notice_us))
            .unwrap_or_else(new_histogram);
        hops.insert(
            NOTICE_HOP.to_owned(),
            since(&decode(&now.object_to_notice_us), &before_notice),
        );
    }

    // Every event accounted for, per source.
    let accounting = account(session, &published, &last, &drained.observed).await?;
    if accounting.lost > 0 || accounting.unexpected > 0 {
        problems.push(format!(
            "{} events lost and {} unexpected in RAW (per source: {})",
            accounting.lost,
            accounting.unexpected,
            accounting
                .sources
                .iter()
                .map(|s| format!(
                    "{} {} published / {} in RAW",
                    s.source, s.published, s.distinct_in_raw
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // Under faults a re-sent poison body is dead-lettered twice: at least once each, then.
    let dead_letters_ok = if chaos.is_empty() {
        accounting.dead_letter_queue == accounting.poison_published
    } else {
        accounting.dead_letter_queue >= accounting.poison_published
    };
    if !dead_letters_ok {
        problems.push(format!(
            "dead letters: {} poison bodies published, {} in the dead-letter queue",
            accounting.poison_published, accounting.dead_letter_queue
        ));
    }

    let loads = freshness::read_load_log(load_log)
        .map_err(io_err(format!("reading {}", load_log.display())))?;
    let windows: Vec<(Duration, Duration)> = chaos.iter().map(|f| (f.start, f.end)).collect();
    let freshness = freshness::measure(
        &session.sf,
        &loads,
        Clock {
            run_start_us: published.schedule_start_us,
            scenario_start: scenario.start,
            warm_up,
        },
        &windows,
    )
    .await?;
    let cdc = match (&applied, workload.as_ref()) {
        (Some(applied), Some(w)) => {
            let (commit_to_raw, unmatched) = cdc::commit_to_raw(&session.sf, &loads).await?;
            let (retained_wal_max_bytes, retained_wal_last_bytes, unconfirmed_wal_max_bytes) =
                cdc::wal_figures(&wal);
            let confirm = last
                .cdc
                .as_ref()
                .map(|c| decode(&c.commit_to_confirm_us))
                .unwrap_or_else(new_histogram);
            let span = scenario.duration.map_or(1.0, |d| d.as_secs_f64());
            if drained.stuck.is_none() && unmatched > 0 {
                problems.push(format!(
                    "{unmatched} row changes in RAW came from files the pipe's load log does not name"
                ));
            }
            Some(cdc::CdcSection {
                transactions: applied.stats.transactions,
                row_changes: applied.stats.row_changes(),
                offered_transactions_per_s: scenario.oltp.map_or(0.0, |o| o.transactions.get()),
                confirmed_changes_per_s: applied.stats.row_changes() as f64 / span,
                snapshot_rows: w.snapshot.0,
                snapshot_s: w.snapshot.1.as_secs_f64(),
                commit_to_confirm: Distribution::of(&confirm),
                commit_to_raw: Distribution::of(&commit_to_raw),
                retained_wal_max_bytes,
                retained_wal_last_bytes,
                unconfirmed_wal_max_bytes,
                wal,
                unmatched,
            })
        }
        _ => None,
    };
    problems.extend(nemesis::problems(&faults));
    let loaded_twice = crate::warehouse::files_loaded_twice(&session.sf).await?;
    problems.extend(crate::warehouse::loaded_twice_problem(&loaded_twice));
    if freshness.unmatched > 0 {
        problems.push(format!(
            "{} events in RAW came from files the pipe's load log does not name",
            freshness.unmatched
        ));
    }

    // Rates over the measured window: after the warm-up, until the last publish.
    let window: Vec<&Sample> = sampler
        .samples
        .iter()
        .filter(|s| {
            s.t >= started_at_s + warm_up.as_secs_f64()
                && s.t <= started_at_s + publish_elapsed.as_secs_f64()
        })
        .collect();
    let rate_of = |f: fn(&Sample) -> u64| match (window.first(), window.last()) {
        (Some(a), Some(b)) if b.t > a.t => f(b).saturating_sub(f(a)) as f64 / (b.t - a.t),
        _ => 0.0,
    };
    let rates = Rates {
        offered: offered_rate(&scenario),
        // The publisher's own count over its own clock: exact, where the sampled window is not.
        published: published.achieved_rate(),
        forwarded: rate_of(|s| s.forwarded),
        written: rate_of(|s| s.written),
        loaded: rate_of(|s| s.loaded),
        end_to_end: freshness.delivered_rate(),
        end_to_end_to_broker: 0.0,
        end_to_end_to_sqs: 0.0,
    };
    Ok(Measurement {
        scenario,
        seed,
        started_at_s,
        published,
        drain: drain_section,
        freshness,
        hops,
        accounting,
        rates,
        faults,
        cdc,
        problems,
    })
}

/// Published events per source against distinct events and rows in RAW; poison against the
/// dead letters.
async fn account(
    session: &Session,
    published: &PublishReport,
    metrics: &ComponentMetrics,
    observed: &crate::drain::Observed,
) -> Result<Accounting, LoadError> {
    let what = "counting RAW.EVENTS_STREAM per source";
    let rows = session
        .sf
        .query(
            "SELECT EVENT:source::string, COUNT(*), COUNT(DISTINCT EVENT:event_id::string) \
             FROM SLUICE.RAW.EVENTS_STREAM GROUP BY 1",
            &[],
        )
        .await
        .map_err(|source| WarehouseError::Query {
            what: what.into(),
            source,
        })?
        .rows()
        .await
        .map_err(|source| WarehouseError::Query {
            what: what.into(),
            source,
        })?;
    let count = |v: &snowflake::Value| match v {
        snowflake::Value::Int(n) => (*n).max(0) as u64,
        snowflake::Value::Decimal(d) => d.to_string().parse().unwrap_or(0),
        snowflake::Value::Float(f) => *f as u64,
        _ => 0,
    };
    let mut in_raw: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in &rows {
        if let [snowflake::Value::Text(source), n, distinct] = row.as_slice() {
            in_raw.insert(source.clone(), (count(n), count(distinct)));
        }
    }
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
pub fn write_report(report: &Report, bands: &[Band], out_dir: &Path) -> Result<(), LoadError> {
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
