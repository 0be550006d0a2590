//! `batcher`: SQS -> partitioned objects in S3 -> SNS. See `batcher --help`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use batcher::handler::{Handler, HandlerConfig};
use batcher::sink::AwsSink;
use batcher::{BatcherConfig, BatcherError, Fault, FileFormat, Metrics};
use clap::Parser;
use runtime::args::{AwsArgs, MetricsArgs, StackArgs};

/// Polls the SQS ingest queue as Lambda's event-source mapping would, and for each batch writes
/// one object per source and event date to
/// `<prefix>/source=<s>/year=YYYY/month=MM/day=DD/<id>.ndjson.gz` (or `.parquet`), announces
/// each on SNS, then deletes exactly the messages whose events were written and announced.
/// Stops cleanly on SIGTERM or Ctrl-C.
///
/// With `--stack`, queue, bucket and topic come from a stack started by `cargo xtask up`.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    aws: AwsArgs,
    /// SQS queue to poll [default: the stack's ingest queue].
    #[arg(long, env = "SLUICE_INGEST_QUEUE_URL")]
    queue_url: Option<String>,
    /// S3 bucket to write to [default: the stack's bucket].
    #[arg(long, env = "SLUICE_BUCKET")]
    bucket: Option<String>,
    /// SNS topic to announce new objects on [default: the stack's raw-files topic].
    #[arg(long, env = "SLUICE_RAW_FILES_TOPIC_ARN")]
    topic_arn: Option<String>,
    /// Key prefix of the objects.
    #[arg(long, default_value = "raw")]
    key_prefix: String,
    /// Object format: `ndjson` (gzipped canonical JSON lines) or `parquet`.
    #[arg(long, default_value = "ndjson")]
    format: FileFormat,
    /// Most messages per handler invocation.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Longest wait to fill a batch, from its first message.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    batch_window: Duration,
    /// Concurrent ReceiveMessage loops.
    #[arg(long, default_value_t = 8)]
    receivers: usize,
    /// Handler invocations in flight (an event-source mapping's maximum concurrency). Many at
    /// once matter for small files: their notices and deletes share batch calls.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Inject a fault (tests): `crash-after-put` exits after the first S3 put, before SNS and
    /// before any delete; `fail-part` reports every second record of a batch failed, unwritten.
    #[arg(long, value_enum, default_value = "none", hide = true)]
    fault: Fault,
    #[command(flatten)]
    metrics: MetricsArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let state = cli.stack.load().context("reading the stack state")?;
    let mut config =
        BatcherConfig::resolve(state.as_ref(), cli.queue_url, cli.bucket, cli.topic_arn)?;
    config.key_prefix = cli.key_prefix;
    config.format = cli.format;
    config.batch_size = cli.batch_size;
    config.batch_window = cli.batch_window;
    config.receivers = cli.receivers;
    config.concurrency = cli.concurrency;
    config.fault = cli.fault;

    let sdk = runtime::aws::sdk_config(&cli.aws.resolve(state.as_ref())).await;
    let metrics = Arc::new(Metrics::default());
    let handler = Arc::new(Handler::new(
        AwsSink::new(&sdk, config.bucket.clone(), config.topic_arn.clone()),
        HandlerConfig {
            format: config.format,
            key_prefix: config.key_prefix.clone(),
            fault: config.fault,
        },
        metrics.clone(),
    ));
    let metrics_file = runtime::MetricsFile::start(cli.metrics.metrics_file.clone(), {
        let m = metrics.clone();
        move || m.snapshot()
    });
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let result = batcher::poller::run(
        config,
        sqs,
        handler,
        metrics.clone(),
        runtime::shutdown_signal(),
    )
    .await;
    metrics_file.finish()?;
    if let Err(e @ BatcherError::InjectedCrash { .. }) = &result {
        // A crash, not a shutdown: no cleanup, no deletes.
        eprintln!("batcher: {e}");
        std::process::exit(101);
    }
    let s = result?;
    eprintln!(
        "batcher: {} messages, {} events written in {} objects ({} bytes), {} deleted, {} poison",
        s.records_in,
        s.events_written,
        s.objects_written,
        s.bytes_written,
        s.deleted_records,
        s.poison_records
    );
    Ok(())
}
