//! `batcher-lambda`: the batcher handler as an AWS Lambda function (feature `lambda`).
//! Environment: SLUICE_BUCKET, SLUICE_RAW_FILES_TOPIC_ARN, SLUICE_FORMAT (ndjson|parquet),
//! SLUICE_KEY_PREFIX (default `raw`).

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
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let handler = Handler::new(
        AwsSink::new(
            &sdk,
            var("SLUICE_BUCKET")?,
            var("SLUICE_RAW_FILES_TOPIC_ARN")?,
        ),
        HandlerConfig {
            format,
            key_prefix: std::env::var("SLUICE_KEY_PREFIX").unwrap_or_else(|_| "raw".into()),
            fault: Fault::None,
        },
        Arc::new(Metrics::default()),
    );
    batcher::lambda::serve(handler).await
}
