//! `cargo xtask e2e`: one scenario through the real pipeline, proved against the oracle.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::prove::{Phase, RunConfig};
use harness::rig::publish::Pacing;
use stack::DownOptions;

use crate::stack_args::{ChaosArg, StackArg, root, runtime};

// The command's --help text is the `E2e` variant's doc comment in main.rs.
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
    /// Leave the stack running afterwards (to look at the warehouse, say with `cargo xtask sql`).
    #[arg(long)]
    keep: bool,
    /// How long, after the last publish, every event may take to reach RAW [default: 120s, plus
    /// with a fault schedule both queues' visibility timeouts (the stack's, see `--profile`):
    /// messages a killed consumer held come back only after them].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    quiesce_timeout: Option<Duration>,
    /// Publish as fast as the broker confirms instead of at the scenario's rate.
    #[arg(long)]
    unpaced: bool,
    /// Also write the first N stream events into the PostgreSQL history, so the backfill and
    /// the stream both deliver them (staging must keep one of each).
    #[arg(long, value_name = "N", default_value_t = 0)]
    overlap: u64,
    /// Build and run the components with the release profile.
    #[arg(long)]
    release: bool,
    /// Who builds the marts once everything is in RAW: `dbt` (the harness runs dbt run, test
    /// and source freshness itself) or `airflow` (Airflow's `sluice_marts` DAG from
    /// infra/airflow/dags, run once with `airflow dags test` against SQLite metadata in the
    /// stack's folder; Airflow is installed on first use, as the other Python tools).
    #[arg(long, value_enum, default_value_t = Orchestrator::Dbt)]
    orchestrator: Orchestrator,
    /// How the batcher runs: `poller` (its own SQS poller) or `lambda` (its Lambda bootstrap
    /// under a Lambda Runtime API, fed by an event-source mapping, as in production).
    #[arg(long, value_enum, default_value_t)]
    batcher: crate::cargo::Batcher,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Orchestrator {
    Dbt,
    Airflow,
}

impl From<Orchestrator> for harness::prove::Orchestrator {
    fn from(o: Orchestrator) -> Self {
        match o {
            Orchestrator::Dbt => Self::Dbt,
            Orchestrator::Airflow => Self::Airflow,
        }
    }
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        // A malformed scenario is rejected before anything starts.
        let scenario = self.scenario.load()?;
        let root = root();
        let chaos = self.chaos.faults(
            &scenario,
            &self.scenario,
            &root.join("target/sluice").join(self.stack.stack.as_str()),
        )?;
        let provider = self.provider.kind(crate::stack_args::Provider::Native);
        crate::stack_args::check_faults_for(provider, &chaos)?;
        let queue_timeouts = self
            .queue_timeouts
            .timeouts(crate::stack_args::Profile::Test)?;
        let mut phases = Vec::new();

        let started = Instant::now();
        let binaries =
            crate::cargo::build_components(&root, self.release)?.with_batcher(self.batcher.into());
        phases.push(Phase {
            name: "build",
            elapsed: started.elapsed(),
        });

        let rt = runtime()?;
        let started = Instant::now();
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
        phases.push(Phase {
            name: "up",
            elapsed: started.elapsed(),
        });

        let mut config = RunConfig::new(scenario, root.clone(), self.stack.stack.clone(), binaries);
        config.seed = self.scenario.seed;
        // The running stack's timeouts, which may not be the ones asked for above.
        let redelivery = stack::State::load(&root, &self.stack.stack)
            .context("reading the stack's state")?
            .aws
            .queue_timeouts
            .redelivery_bound();
        config.quiesce_timeout =
            self.quiesce_timeout
                .unwrap_or(harness::prove::default_quiesce_timeout(
                    !chaos.is_empty(),
                    redelivery,
                ));
        config.overlap = self.overlap;
        config.chaos = chaos;
        config.orchestrator = self.orchestrator.into();
        config.pacing = if self.unpaced {
            Pacing::Unpaced
        } else {
            Pacing::Scenario
        };
        let mut progress = |line: &str| eprintln!("{line}");
        let outcome = rt.block_on(async {
            tokio::select! {
                r = harness::prove::run(&config, &mut progress) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });

        let take_down = we_started && !self.keep;
        let started = Instant::now();
        if take_down {
            stack::down(&root, &self.stack.stack, DownOptions::default())
                .context("taking the stack down")?;
        }
        let down = Phase {
            name: "down",
            elapsed: started.elapsed(),
        };
        let Some(outcome) = outcome else {
            bail!(
                "interrupted; components stopped{}",
                if take_down { ", stack taken down" } else { "" }
            );
        };
        let mut report = outcome?;
        phases.append(&mut report.phases);
        phases.push(down);
        report.phases = phases;
        print!("{report}");
        println!(
            "logs and metrics: {} (kept after the stack goes down)",
            config.work_dir.display()
        );
        if !take_down {
            println!(
                "stack `{}` is still running: `cargo xtask down --stack {}` stops it",
                self.stack.stack, self.stack.stack
            );
        }
        if !report.passed() {
            bail!(
                "e2e {} failed: {} problem(s), listed above",
                report.scenario,
                report.problems.len()
            );
        }
        Ok(())
    }
}
