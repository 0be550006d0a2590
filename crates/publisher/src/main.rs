//! `publisher`: one worker of a split publish. See `publisher --help`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use publisher::workers::{AMQP_URL_ENV, Line, SHARD_ENV, SHARDS_ENV};
use publisher::{Pacing, PublishConfig, PublishProgress, Shard};

/// Publishes its shard of a scenario's stream to RabbitMQ on the scenario's schedule, from a
/// start time it shares with the other workers, and prints JSON lines on stdout: progress every
/// 250 ms, then its report with the publish-delay histogram (or the error). Every key goes to
/// exactly one shard, so N workers given shards 0..N-1 publish the whole stream once.
///
/// Run by `cargo xtask load-test --publishers N`, or elsewhere: as a Kubernetes Indexed Job
/// (infra/k8s/publisher-job.yaml) or ECS tasks (infra/cloudformation/publisher.yaml).
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The scenario file.
    #[arg(long, env = "SLUICE_SCENARIO")]
    scenario: PathBuf,
    /// The stream's seed [default: the scenario's].
    #[arg(long, env = "SLUICE_SEED")]
    seed: Option<u64>,
    /// This worker's shard, 0-based.
    #[arg(long, env = SHARD_ENV)]
    shard: u32,
    /// How many workers share the stream.
    #[arg(long, env = SHARDS_ENV)]
    shards: u32,
    /// RabbitMQ URL, e.g. amqp://user:password@127.0.0.1:5672/%2f.
    #[arg(long, env = AMQP_URL_ENV, hide_env_values = true)]
    amqp_url: String,
    /// The schedule's start, microseconds since the epoch, the same for every worker
    /// [default: now].
    #[arg(long, env = "SLUICE_START_AT_US")]
    start_at_us: Option<u64>,
    /// The exchange to publish to.
    #[arg(long, default_value = "events")]
    exchange: String,
    /// Unconfirmed publishes allowed at once.
    #[arg(long, default_value_t = 2000)]
    confirm_window: usize,
    /// Publish delays before this offset are left out of the histogram.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    warm_up: Duration,
    /// As fast as the broker confirms, ignoring the schedule.
    #[arg(long)]
    unpaced: bool,
    /// No publish-time header (it times the relay's hop).
    #[arg(long)]
    no_publish_time: bool,
}

fn print(line: &Line) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string(line).expect("a line serializes")
    );
    let _ = out.flush();
}

#[tokio::main]
async fn main() {
    runtime::init_tracing();
    match run(Cli::parse()).await {
        Ok(()) => {}
        Err(e) => {
            print(&Line::Failed {
                error: format!("{e:#}"),
            });
            std::process::exit(1);
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let shard = Shard::new(cli.shard, cli.shards)?;
    let scenario = synth::Scenario::load(&cli.scenario)?;
    let seed = cli.seed.unwrap_or(scenario.seed);
    let mut config = PublishConfig::new(cli.amqp_url);
    config.exchange = cli.exchange;
    config.confirm_window = cli.confirm_window;
    config.warm_up = cli.warm_up;
    config.start_at_us = cli.start_at_us;
    config.stamp_publish_time = !cli.no_publish_time;
    config.pacing = if cli.unpaced {
        Pacing::Unpaced
    } else {
        Pacing::Scenario
    };
    let observed = Arc::new(PublishProgress::default());
    let ticker = tokio::spawn({
        let observed = observed.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                print(&Line::progress(&observed));
            }
        }
    });
    let mut generator = synth::Generator::new(&scenario, Some(seed));
    let stream = generator.stream().filter(move |e| shard.owns(&e.body));
    let report = publisher::publish_observed(&config, stream, &observed, |_| {}).await;
    ticker.abort();
    let report = report.with_context(|| format!("publishing shard {}", shard.index()))?;
    print(&Line::done(report));
    Ok(())
}
