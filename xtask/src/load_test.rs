//! `cargo xtask load-test`: measure the real pipeline at a scenario's rates.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use harness::load::LoadConfig;
use harness::rig::Progress;
use harness::rig::publish::Publishers;
use harness::rig::sampler::Sample;
use stack::DownOptions;

use crate::stack_args::{ChaosArg, StackArg, root, runtime};

/// The exit code of a run whose gates failed (k6's), apart from 1 for everything else.
pub const GATES_FAILED: u8 = 99;

// The command's --help text is the `LoadTest` variant's doc comment in main.rs.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: crate::stack_args::ScenarioArg,
    #[command(flatten)]
    stack: StackArg,
    #[command(flatten)]
    chaos: ChaosArg,
    #[command(flatten)]
    provider: crate::stack_args::ProviderArg,
    #[command(flatten)]
    queue_timeouts: crate::stack_args::QueueTimeoutsArg,
    /// Leave the stack running afterwards.
    #[arg(long)]
    keep: bool,
    /// Where the reports go, with the components' logs under `components/` [default:
    /// target/sluice-runs/<stack>/<UTC time>-load/, which `down` leaves in place].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// An earlier report.json: each headline figure is printed beside it with the change, and
    /// changes beyond --tolerance (and beyond the run-to-run noise) are flagged.
    #[arg(long, value_name = "REPORT.json")]
    baseline: Option<PathBuf>,
    /// The relative change --baseline flags, in percent.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    tolerance: f64,
    /// Find the highest sustainable rate: offer the scenario's rate, double it while the
    /// pipeline keeps up (everything drained, freshness p99 within the scenario's gate or the
    /// batch window + 5 s), then halve the interval to the first rate it did not; each step
    /// lasts the scenario's `load.step`.
    #[arg(long)]
    find_max: bool,
    /// Multiply every rate of the scenario (the events' and the OLTP workload's transactions).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    rate_scale: f64,
    /// Run the measured part N times on the same stack; the spread is the noise --baseline
    /// tolerates.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    repeat: u32,
    /// Build and run the components with the dev profile instead of release (the profile the
    /// tests build, so no second dependency build; figures are then not release figures).
    #[arg(long)]
    dev: bool,
    /// No per-event publish-time stamps (the relay's hop histogram stays empty): to measure
    /// what the timing costs.
    #[arg(long)]
    no_timing: bool,
    /// Use the relay, batcher (and lambda-host, batcher-lambda), pipe and cdc executables in DIR instead of building them (e.g. the
    /// ones `cargo test` built in target/debug); with --publishers above 1, the `publisher`
    /// worker too.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Publish the measured runs from N worker processes (the `publisher` binary), the stream
    /// split between them by key, one shared start; their publish-delay histograms are merged.
    /// Their logs go to `publishers/` beside the reports.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    publishers: u32,
    /// How the batcher runs: `poller` (its own SQS poller) or `lambda` (its Lambda bootstrap
    /// under a Lambda Runtime API, fed by an event-source mapping, as in production).
    #[arg(long, value_enum, default_value_t)]
    batcher: crate::cargo::Batcher,
}

/// Interval lines on a pipe or a file (CI logs), a live bar on a terminal.
struct Lines {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    interval: Duration,
}

impl Lines {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:30} {pos}/{len} published  {msg}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self {
            bar,
            last_line: Instant::now(),
            interval: Duration::from_secs(5),
        }
    }
}

fn describe(s: &Sample) -> String {
    let depth = |q: &str| s.queues.get(q).copied().unwrap_or(0);
    format!(
        "t={:>5.0}s published {} forwarded {} written {} loaded {} | waiting: rabbitmq {} ingest {} notify {}",
        s.t,
        s.published,
        s.forwarded,
        s.written,
        s.loaded,
        depth("rabbitmq cards") + depth("rabbitmq orders") + depth("rabbitmq manufacturing"),
        depth("sqs ingest"),
        depth("sqs snowpipe-notify")
    )
}

impl Progress for Lines {
    fn step(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// The samples say how far the run is: a line every few seconds on a pipe, the bar on a
    /// terminal.
    fn detail(&mut self, _line: &str) {}

    fn tick(&mut self, sample: &Sample, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(sample.published.min(total));
                bar.set_message(describe(sample));
            }
            None => {
                if self.last_line.elapsed() >= self.interval {
                    self.last_line = Instant::now();
                    eprintln!("  {}", describe(sample));
                }
            }
        }
    }
}

impl Args {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // Everything the user gave is checked before anything starts.
        let scenario = self.scenario.load()?;
        anyhow::ensure!(
            self.rate_scale.is_finite() && self.rate_scale > 0.0,
            "--rate-scale {}: must be a number greater than 0",
            self.rate_scale
        );
        anyhow::ensure!(
            self.tolerance.is_finite() && self.tolerance >= 0.0,
            "--tolerance {}: must be a percentage of 0 or more",
            self.tolerance
        );
        let root = root();
        let chaos = self.chaos.faults(
            &scenario,
            &self.scenario,
            &stack::stack_dir(&root, &self.stack.stack),
        )?;
        let provider = self.provider.kind(crate::stack_args::Provider::Native);
        crate::stack_args::check_faults_for(provider, &chaos)?;
        // The production queues: what the pipeline is measured with.
        let queue_timeouts = self
            .queue_timeouts
            .timeouts(crate::stack_args::Profile::Production)?;
        anyhow::ensure!(
            chaos.is_empty() || !self.find_max,
            "--find-max measures capacity and does not run a fault schedule; drop --find-max, \
             or --chaos (and the scenario's [[chaos]])"
        );
        let baseline = self
            .baseline
            .as_deref()
            .map(harness::load::read_report)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let binaries = match &self.bin_dir {
            Some(dir) => harness::rig::components::ComponentBinaries::in_dir(dir),
            None => crate::cargo::build_components(&root, !self.dev)?,
        }
        .with_batcher(self.batcher.into());
        binaries.check(&synth::Component::ALL)?;
        let publisher_exe = match (&self.bin_dir, self.publishers) {
            (_, 1) => None,
            (Some(dir), _) => {
                let exe = dir.join("publisher");
                anyhow::ensure!(
                    exe.is_file(),
                    "--publishers {}: no publisher worker at {}; build it with `cargo build -p \
                     publisher`, or leave out --bin-dir",
                    self.publishers,
                    exe.display()
                );
                Some(exe)
            }
            (None, _) => Some(crate::cargo::build_publisher(&root, !self.dev)?),
        };
        let rt = runtime()?;
        let we_started = crate::stack_args::ensure_up(
            &rt,
            &root,
            &self.stack.stack,
            crate::stack_args::NewStack {
                provider,
                images: self.provider.image_choice(),
                queue_timeouts,
            },
        )?;
        // Outside the stack's folder: the reports stay when the stack goes down.
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| stack::new_run_dir(&root, &self.stack.stack, "load"));
        let config = LoadConfig {
            scenario,
            seed: self.scenario.seed,
            root: root.clone(),
            stack: self.stack.stack.clone(),
            binaries,
            profile: match (&self.bin_dir, self.dev) {
                (Some(dir), _) => format!("prebuilt in {}", dir.display()),
                (None, true) => "dev".into(),
                (None, false) => "release".into(),
            },
            rate_scale: self.rate_scale,
            find_max: self.find_max,
            repeat: self.repeat,
            timing: !self.no_timing,
            baseline,
            tolerance: self.tolerance / 100.0,
            chaos,
            work_dir: out.join("components"),
            publishers: match publisher_exe {
                None => Publishers::InProcess,
                Some(exe) => Publishers::Split(harness::rig::publish::Workers {
                    exe,
                    count: std::num::NonZeroU32::new(self.publishers).expect("1 or more"),
                    dir: out.join("publishers"),
                }),
            },
        };
        let mut lines = Lines::new();
        let outcome = rt.block_on(async {
            tokio::select! {
                r = harness::load::run(&config, &out, &mut lines) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });
        if let Some(bar) = &lines.bar {
            bar.finish_and_clear();
        }
        if we_started && !self.keep {
            stack::down(&root, &self.stack.stack, DownOptions::default())
                .context("taking the stack down")?;
        }
        let report = outcome
            .context("interrupted; components stopped")?
            .context("the load test could not run")?;
        println!("{}", report.markdown());
        if let Some(comparison) = &report.comparison {
            println!(
                "against {}:",
                self.baseline
                    .as_ref()
                    .map_or(String::new(), |p| p.display().to_string())
            );
            for c in comparison {
                println!("  {c}");
            }
        }
        println!(
            "reports: {} (report.json, report.md, report.html)",
            out.display()
        );
        if !report.problems.is_empty() {
            eprintln!("load test {} failed:", report.scenario);
            for p in &report.problems {
                eprintln!("  - {p}");
            }
            return Ok(ExitCode::FAILURE);
        }
        let failed = report.failed_gates();
        if !failed.is_empty() {
            eprintln!(
                "load test {}: {} gate(s) failed:",
                report.scenario,
                failed.len()
            );
            for g in failed {
                eprintln!("  - {g}");
            }
            return Ok(ExitCode::from(GATES_FAILED));
        }
        Ok(ExitCode::SUCCESS)
    }
}
