//! `pipe`: emulated Snowpipe. See `pipe --help`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use pipe::poller::PollerConfig;
use pipe::{Loader, Metrics, PipeConfig};
use runtime::args::{AwsArgs, MetricsArgs, StackArgs};

/// Emulated Snowpipe for the emulator profile: polls the notification queue (SNS-enveloped or
/// raw S3 events; `s3:TestEvent` is skipped), and loads each new object once into
/// RAW.EVENTS_STREAM with its file name and load time, recording key and ETag in
/// RAW.LOAD_HISTORY. A file that cannot be loaded is recorded there with its error.
/// Stops cleanly on SIGTERM or Ctrl-C.
///
/// Needs `--stack` (a stack started by `cargo xtask up`): the Snowflake side comes from it. For
/// a real Snowflake account, the PIPE in infra/snowflake does this instead.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    aws: AwsArgs,
    /// Notification queue to poll [default: the stack's snowpipe-notify queue].
    #[arg(long, env = "SLUICE_NOTIFY_QUEUE_URL")]
    queue_url: Option<String>,
    /// The emulator's URL to load through instead of the stack's (e.g. a proxy in front of it).
    #[arg(long)]
    snowflake_url: Option<String>,
    /// Most files loaded in one transaction (many small files share one PUT, COPY and INSERT).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    max_files_per_load: u32,
    /// How long a load waits for more notifications once it has one.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// Append one JSON line per loaded file (key, rows, when the object was created and when its
    /// rows became visible) to this file; the load test reads it for freshness.
    #[arg(long)]
    load_log: Option<PathBuf>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let state = cli
        .stack
        .load()
        .context("reading the stack state")?
        .context("no stack: pass --stack NAME (see `cargo xtask up`)")?;
    let mut config = PipeConfig::from_stack(&state)?;
    if let Some(url) = cli.queue_url {
        config.queue_url = url;
    }
    if let Some(url) = &cli.snowflake_url {
        config.snowflake.base_url = Some(
            url.parse()
                .with_context(|| format!("--snowflake-url {url:?} is not a URL"))?,
        );
    }
    let sdk = runtime::aws::sdk_config(&cli.aws.resolve(Some(&state))).await;
    let s3 = rawfiles::s3_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let client = snowflake::Client::connect(config.snowflake.clone())
        .await
        .context("connecting to Snowflake")?;
    let loader = Loader::new(client, s3).await?;
    let metrics = Arc::new(Metrics::default());
    let metrics_file = runtime::MetricsFile::start(cli.metrics.metrics_file.clone(), {
        let m = metrics.clone();
        move || m.snapshot()
    });
    let mut poller = PollerConfig::new(config.queue_url.clone());
    poller.max_files = cli.max_files_per_load as usize;
    poller.linger = cli.linger;
    poller.load_log = cli.load_log;
    let result =
        pipe::poller::run(&poller, &sqs, &loader, &metrics, runtime::shutdown_signal()).await;
    loader.close().await;
    metrics_file.finish()?;
    let s = result?;
    eprintln!(
        "pipe: {} files loaded ({} rows) in {} loads, {} skipped as already loaded, {} failed",
        s.files_loaded, s.rows_loaded, s.loads, s.files_skipped, s.files_failed
    );
    Ok(())
}
