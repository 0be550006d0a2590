//! `pipe`: emulated Snowpipe. See `pipe --help`.

use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use pipe::{Loader, Metrics, PipeConfig};
use stack::component::{self, AwsArgs, MetricsArgs, StackArgs};

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
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    component::init_tracing();
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
    let sdk = stack::aws_config(&cli.aws.resolve(Some(&state))).await;
    let s3 = stack::s3_client(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let client = snowflake::Client::connect(config.snowflake.clone())
        .await
        .context("connecting to Snowflake")?;
    let loader = Loader::new(client, s3).await?;
    let metrics = Arc::new(Metrics::default());
    let metrics_file = component::MetricsFile::start(cli.metrics.metrics_file.clone(), {
        let m = metrics.clone();
        move || m.snapshot()
    });
    let result = pipe::poller::run(
        &config.queue_url,
        &sqs,
        &loader,
        &metrics,
        component::shutdown_signal(),
    )
    .await;
    loader.close().await;
    metrics_file.finish()?;
    let s = result?;
    eprintln!(
        "pipe: {} files loaded ({} rows), {} skipped as already loaded, {} failed",
        s.files_loaded, s.rows_loaded, s.files_skipped, s.files_failed
    );
    Ok(())
}
