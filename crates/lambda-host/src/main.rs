//! `lambda-host`: the batcher's Lambda `bootstrap` under a Lambda Runtime API, fed by an SQS
//! event-source mapping. See `lambda-host --help`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::types::QueueAttributeName;
use batcher::{BatcherConfig, FileFormat, Metrics, MetricsSnapshot};
use clap::Parser;
use lambda_host::event::Source;
use lambda_host::function::{Function, FunctionConfig, StatsSnapshot};
use lambda_host::mapping::Mapping;
use runtime::args::{AwsArgs, MetricsArgs, StackArgs};

/// Runs the batcher as production does: its Lambda `bootstrap` (`batcher-lambda`) in
/// `--concurrency` execution environments, each a process with a Lambda Runtime API of its own
/// on 127.0.0.1, fed by an SQS event-source mapping with `ReportBatchItemFailures`: batches of
/// up to `--batch-size` records or `--batch-window`, the records the function reports failed
/// left on the queue, a batch whose invocation errs, crashes or times out left whole. An
/// environment whose process exits or outlives `--timeout` is replaced.
///
/// The mapping's settings are the template's (`BatcherBatchSize`,
/// `BatcherMaximumBatchingWindowInSeconds`, `BatcherMaximumConcurrency`, `BatcherTimeout`
/// in infra/cloudformation/pipeline.yaml). Stops cleanly on SIGTERM or Ctrl-C.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    stack: StackArgs,
    #[command(flatten)]
    aws: AwsArgs,
    /// The function's executable [default: `batcher-lambda` beside this one].
    #[arg(long)]
    bootstrap: Option<PathBuf>,
    /// SQS queue the mapping polls [default: the stack's ingest queue].
    #[arg(long, env = "SLUICE_INGEST_QUEUE_URL")]
    queue_url: Option<String>,
    /// The function's bucket [default: the stack's].
    #[arg(long, env = "SLUICE_BUCKET")]
    bucket: Option<String>,
    /// The function's topic [default: the stack's raw-files topic].
    #[arg(long, env = "SLUICE_RAW_FILES_TOPIC_ARN")]
    topic_arn: Option<String>,
    /// Key prefix of the objects (the function's SLUICE_KEY_PREFIX).
    #[arg(long, default_value = "raw")]
    key_prefix: String,
    /// Object format (the function's SLUICE_FORMAT): `ndjson` or `parquet`.
    #[arg(long, default_value = "ndjson")]
    format: FileFormat,
    /// The mapping's BatchSize.
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// The mapping's MaximumBatchingWindowInSeconds (finer here).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    batch_window: Duration,
    /// The mapping's ScalingConfig.MaximumConcurrency: environments at once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    concurrency: u16,
    /// The function's timeout [default: a sixth of the queue's visibility timeout, the most
    /// AWS accepts for a mapping].
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// The function's memory size in MB (reported to it; not enforced).
    #[arg(long, default_value_t = 512)]
    memory_mb: u32,
    /// Inject a fault (tests): `crash-after-put` makes the first environment's first process
    /// exit after its first S3 put, mid-invocation; `fail-part` makes every environment report
    /// every second record failed, unwritten.
    #[arg(long, value_enum, default_value = "none", hide = true)]
    fault: batcher::Fault,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// The host's counters: the batcher's (the handler's, summed over every process, with the
/// mapping's receives and deletes) and the environments'.
#[derive(serde::Serialize)]
struct HostSnapshot {
    #[serde(flatten)]
    batcher: MetricsSnapshot,
    lambda: StatsSnapshot,
}

#[tokio::main]
async fn main() -> Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let state = cli.stack.load().context("reading the stack state")?;
    let mut config =
        BatcherConfig::resolve(state.as_ref(), cli.queue_url, cli.bucket, cli.topic_arn)?;
    let bootstrap = match cli.bootstrap {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating lambda-host")?
            .with_file_name("batcher-lambda"),
    };
    anyhow::ensure!(
        bootstrap.is_file(),
        "the bootstrap {} does not exist: build it with `cargo build -p batcher --bins`, or \
         pass --bootstrap",
        bootstrap.display()
    );
    config.batch_size = cli.batch_size;
    config.batch_window = cli.batch_window;
    config.concurrency = usize::from(cli.concurrency);
    // The mapping's own pollers; it scales them with the backlog, a few suffice here.
    config.receivers = 4;

    let aws = cli.aws.resolve(state.as_ref());
    let sdk = runtime::aws::sdk_config(&aws).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&config.queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(&e)))
        .with_context(|| format!("reading {}'s attributes", config.queue_url))?
        .attributes
        .unwrap_or_default();
    let visibility = attributes
        .get(&QueueAttributeName::VisibilityTimeout)
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_secs)
        .context("the queue has no visibility timeout")?;
    let queue_arn = attributes
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .context("the queue has no ARN")?;
    let timeout = function_timeout(cli.timeout, visibility)?;

    // A folder per host process: a host killed and started again (a fault) does not sum its
    // predecessor's environments, whose counters the harness already carries.
    let metrics_dir = cli.metrics.metrics_file.as_ref().map(|f| {
        f.with_extension("environments")
            .join(std::process::id().to_string())
    });
    let mut env = vec![
        ("SLUICE_BUCKET".to_owned(), config.bucket.clone()),
        (
            "SLUICE_RAW_FILES_TOPIC_ARN".to_owned(),
            config.topic_arn.clone(),
        ),
        ("SLUICE_KEY_PREFIX".to_owned(), cli.key_prefix.clone()),
        (
            "SLUICE_FORMAT".to_owned(),
            match cli.format {
                FileFormat::Parquet => "parquet",
                _ => "ndjson",
            }
            .to_owned(),
        ),
        ("AWS_REGION".to_owned(), aws.region.clone()),
    ];
    if let Some(endpoint) = &aws.endpoint_url {
        // Lambda hands its function the role's credentials; LocalStack takes any.
        env.extend([
            ("AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ]);
    }
    // One environment crashes (as one execution environment dies); a faulty handler fails in
    // every environment.
    let first_env = match cli.fault {
        batcher::Fault::CrashAfterPut => {
            vec![("SLUICE_FAULT".to_owned(), "crash-after-put".to_owned())]
        }
        batcher::Fault::FailPart => {
            env.push(("SLUICE_FAULT".to_owned(), "fail-part".to_owned()));
            Vec::new()
        }
        batcher::Fault::None => Vec::new(),
    };
    let function = Arc::new(
        Function::start(FunctionConfig {
            name: "sluice-batcher".into(),
            bootstrap,
            env,
            concurrency: config.concurrency,
            timeout,
            memory_mb: cli.memory_mb,
            first_env,
            metrics_dir: metrics_dir.clone(),
        })
        .await?,
    );
    tracing::info!(queue = %config.queue_url, batch_size = config.batch_size, batch_window = ?config.batch_window, concurrency = config.concurrency, ?timeout, "event-source mapping polling");

    let mapping_metrics = Arc::new(Metrics::default());
    let snapshot = {
        let (function, mapping_metrics, dir) = (
            function.clone(),
            mapping_metrics.clone(),
            metrics_dir.clone(),
        );
        move || HostSnapshot {
            batcher: environments_total(dir.as_deref()).plus(&mapping_metrics.snapshot()),
            lambda: function.stats().snapshot(),
        }
    };
    let metrics_file = runtime::MetricsFile::start(cli.metrics.metrics_file.clone(), snapshot);
    let mapping = Arc::new(Mapping {
        function: function.clone(),
        source: Source {
            queue_arn,
            region: aws.region.clone(),
        },
    });
    let result = batcher::poller::run(
        config,
        sqs,
        mapping.clone(),
        mapping_metrics.clone(),
        runtime::shutdown_signal(),
    )
    .await;
    drop(mapping);
    if let Ok(function) = Arc::try_unwrap(function) {
        let stats = function.stats().snapshot();
        function.shutdown().await;
        eprintln!(
            "lambda-host: {} invocations ({} answered, {} errors, {} crashed, {} timed out) in {} processes",
            stats.invocations,
            stats.responses,
            stats.errors,
            stats.crashes,
            stats.timeouts,
            stats.processes_started
        );
    }
    metrics_file.finish()?;
    result?;
    Ok(())
}

/// The function's timeout: AWS refuses a mapping whose queue's visibility timeout is under six
/// times the function's.
fn function_timeout(asked: Option<Duration>, visibility: Duration) -> Result<Duration> {
    let most = visibility / 6;
    match asked {
        None => Ok(most),
        Some(t) if t <= most => Ok(t),
        Some(t) => bail!(
            "--timeout {} is more than a sixth of the queue's visibility timeout ({} s): AWS \
             refuses such an event-source mapping; shorten it, or create the stack with a longer \
             timeout (`cargo xtask up --ingest-visibility-timeout`)",
            humantime::format_duration(t),
            visibility.as_secs()
        ),
    }
}

/// The handler's counters, summed over every process the environments ran (each wrote its own
/// file; a crashed one's last write stands).
fn environments_total(dir: Option<&std::path::Path>) -> MetricsSnapshot {
    let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
        return MetricsSnapshot::default();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<MetricsSnapshot>(&b).ok())
        .fold(MetricsSnapshot::default(), |total, m| m.plus(&total))
}

#[cfg(test)]
mod tests {
    use super::function_timeout;
    use std::time::Duration;

    #[test]
    fn the_timeout_is_at_most_a_sixth_of_the_visibility_timeout() {
        let s = Duration::from_secs;
        assert_eq!(function_timeout(None, s(60)).unwrap(), s(10));
        assert_eq!(function_timeout(Some(s(5)), s(60)).unwrap(), s(5));
        let refused = function_timeout(Some(s(11)), s(60))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("--timeout 11s") && refused.contains("(60 s)"),
            "{refused}"
        );
    }
}
