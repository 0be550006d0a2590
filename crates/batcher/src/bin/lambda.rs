//! `batcher-lambda`: the batcher handler as an AWS Lambda function, the `bootstrap` of its
//! `provided.al2023` package. Environment: SLUICE_BUCKET, SLUICE_RAW_FILES_TOPIC_ARN,
//! SLUICE_FORMAT (ndjson|parquet), SLUICE_KEY_PREFIX (default `raw`); for the harness's Lambda
//! host only: SLUICE_METRICS_FILE (the handler's counters as JSON, every second) and
//! SLUICE_FAULT (`crash-after-put`: the process exits after its first S3 put; `fail-part`:
//! every second record of a batch reported failed, unwritten).

use std::sync::Arc;

use batcher::handler::{Handler, HandlerConfig};
use batcher::sink::AwsSink;
use batcher::{Fault, FileFormat, Metrics};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    runtime::init_tracing();
    let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
    let format = match std::env::var("SLUICE_FORMAT").as_deref() {
        Ok("parquet") => FileFormat::Parquet,
        Ok("ndjson") | Err(_) => FileFormat::NdjsonGz,
        Ok(other) => {
            return Err(format!("SLUICE_FORMAT={other}: expected ndjson or parquet").into());
        }
    };
    let fault = match std::env::var("SLUICE_FAULT").as_deref() {
        Ok("crash-after-put") => Fault::CrashAfterPut,
        Ok("fail-part") => Fault::FailPart,
        Ok("none") | Err(_) => Fault::None,
        Ok(other) => {
            return Err(
                format!("SLUICE_FAULT={other}: expected crash-after-put or fail-part").into(),
            );
        }
    };
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let metrics = Arc::new(Metrics::default());
    let handler = Handler::new(
        AwsSink::new(
            &sdk,
            var("SLUICE_BUCKET")?,
            var("SLUICE_RAW_FILES_TOPIC_ARN")?,
        ),
        HandlerConfig {
            format,
            key_prefix: std::env::var("SLUICE_KEY_PREFIX").unwrap_or_else(|_| "raw".into()),
            fault,
        },
        metrics.clone(),
    );
    let _metrics_file = runtime::MetricsFile::start(
        std::env::var_os("SLUICE_METRICS_FILE").map(Into::into),
        move || metrics.snapshot(),
    );
    batcher::lambda::serve(handler).await
}
