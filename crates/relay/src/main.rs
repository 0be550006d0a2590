//! `relay`: forward events from RabbitMQ to SQS. See `relay --help`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use relay::{Metrics, RelayConfig};
use runtime::args::{AwsArgs, MetricsArgs, StackArgs};

/// Consumes the source queues of RabbitMQ and forwards every event to the SQS ingest queue,
/// acknowledging a message only after SQS accepted it. Bodies that are not events are rejected
/// to the dead-letter exchange and counted. Stops cleanly on SIGTERM or Ctrl-C.
///
/// With `--stack`, endpoints come from a stack started by `cargo xtask up`; flags override them.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    aws: AwsArgs,
    /// RabbitMQ URL, e.g. amqp://user:password@127.0.0.1:5672/%2f [default: the stack's].
    #[arg(long, env = "SLUICE_AMQP_URL", hide_env_values = true)]
    amqp_url: Option<String>,
    /// SQS queue URL to forward to [default: the stack's ingest queue].
    #[arg(long, env = "SLUICE_INGEST_QUEUE_URL")]
    sqs_queue_url: Option<String>,
    /// Queues to consume.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cards,orders,manufacturing,cdc"
    )]
    queues: Vec<String>,
    /// Unacknowledged deliveries RabbitMQ may push per queue [default: enough for
    /// --max-in-flight full requests: pack x 10 x max-in-flight, at least 1000].
    #[arg(long)]
    prefetch: Option<u16>,
    /// Events per SQS message (1 = one envelope per message, as production does).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pack: u16,
    /// SendMessageBatch calls in flight at once.
    #[arg(long, default_value_t = 8)]
    max_in_flight: usize,
    /// How long a partly filled SQS batch waits for more messages (longer: fuller
    /// SendMessageBatch calls, so fewer of them per event, for a few more milliseconds).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// On shutdown, how long to wait for in-flight sends before closing.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Every INTERVAL, write the source queues' depth to stdout as a CloudWatch embedded metric
    /// (`Sluice/Relay SourceBacklog`, dimension `Stack`): what the relay's ECS service scales
    /// on. Off by default.
    #[arg(long, value_name = "INTERVAL", value_parser = humantime::parse_duration)]
    backlog_metrics: Option<Duration>,
    /// The `Stack` dimension of the backlog metric [default: the --stack name, else `sluice`].
    #[arg(long, env = "SLUICE_STACK_NAME")]
    stack_name: Option<String>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let state = cli.stack.load().context("reading the stack state")?;
    let mut config = match &state {
        Some(state) => RelayConfig::from_stack(state)?,
        None => RelayConfig::defaults(),
    };
    if let Some(url) = cli.amqp_url {
        config.amqp_url = url;
    }
    if let Some(url) = cli.sqs_queue_url {
        config.sqs_queue_url = url;
    }
    anyhow::ensure!(
        !config.amqp_url.is_empty(),
        "no RabbitMQ URL: pass --stack NAME or --amqp-url"
    );
    anyhow::ensure!(
        !config.sqs_queue_url.is_empty(),
        "no SQS queue: pass --stack NAME or --sqs-queue-url"
    );
    config.queues = cli.queues;
    config.prefetch = cli
        .prefetch
        .unwrap_or_else(|| RelayConfig::auto_prefetch(cli.pack.into(), cli.max_in_flight));
    config.pack = cli.pack.into();
    config.max_in_flight = cli.max_in_flight;
    config.linger = cli.linger;
    config.shutdown_grace = cli.shutdown_grace;

    let aws = cli.aws.resolve(state.as_ref());
    let sqs = aws_sdk_sqs::Client::new(&runtime::aws::sdk_config(&aws).await);
    let metrics = Arc::new(Metrics::default());
    let metrics_file = runtime::MetricsFile::start(cli.metrics.metrics_file.clone(), {
        let m = metrics.clone();
        move || m.snapshot()
    });
    let backlog = cli.backlog_metrics.map(|interval| {
        let (url, queues) = (config.amqp_url.clone(), config.queues.clone());
        let stack = cli
            .stack_name
            .clone()
            .or_else(|| cli.stack.stack.as_ref().map(|s| s.as_str().to_owned()))
            .unwrap_or_else(|| "sluice".into());
        tokio::spawn(async move {
            relay::backlog::publish(
                &url,
                &queues,
                &stack,
                interval,
                &mut std::io::stdout(),
                std::future::pending::<()>(),
            )
            .await;
        })
    });
    let result = relay::run(config, sqs, metrics.clone(), runtime::shutdown_signal()).await;
    if let Some(task) = backlog {
        task.abort();
    }
    metrics_file.finish()?;
    let snapshot = result?;
    eprintln!(
        "relay: received {}, forwarded {} in {} SQS messages, dead-lettered {}, acked {}",
        snapshot.received,
        snapshot.forwarded,
        snapshot.sqs_messages,
        snapshot.dead_lettered,
        snapshot.acked
    );
    Ok(())
}
