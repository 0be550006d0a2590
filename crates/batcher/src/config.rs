use std::time::Duration;

use crate::{BatcherError, FileFormat};

/// A deliberate failure, for tests that prove no event is lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    #[default]
    None,
    /// Stop dead after the first S3 put, before its SNS notice and before any SQS delete.
    CrashAfterPut,
    /// Report every second record of each batch as failed without writing it (a transient error
    /// on part of a batch): those records must stay on the queue and come back.
    FailPart,
}

#[derive(Clone, Debug)]
pub struct BatcherConfig {
    pub queue_url: String,
    pub bucket: String,
    pub topic_arn: String,
    /// Objects are written under `<key_prefix>/source=.../`.
    pub key_prefix: String,
    pub format: FileFormat,
    /// Most records per handler invocation (the event-source mapping's batch size).
    pub batch_size: usize,
    /// Longest wait to fill a batch, counted from its first record.
    pub batch_window: Duration,
    /// Concurrent ReceiveMessage loops.
    pub receivers: usize,
    /// Handler invocations in flight at once.
    pub concurrency: usize,
    pub fault: Fault,
}

impl BatcherConfig {
    pub fn defaults() -> Self {
        Self {
            queue_url: String::new(),
            bucket: String::new(),
            topic_arn: String::new(),
            key_prefix: "raw".into(),
            format: FileFormat::NdjsonGz,
            batch_size: 500,
            batch_window: Duration::from_secs(1),
            receivers: 4,
            concurrency: 16,
            fault: Fault::None,
        }
    }

    /// The stack's queue, bucket and topic (without a stack, none), each replaced by its flag
    /// when given; one still missing is an error naming its flag.
    pub fn resolve(
        state: Option<&runtime::State>,
        queue_url: Option<String>,
        bucket: Option<String>,
        topic_arn: Option<String>,
    ) -> Result<Self, BatcherError> {
        let mut config = match state {
            Some(state) => Self::from_stack(state)?,
            None => Self::defaults(),
        };
        for (value, flag, field) in [
            (queue_url, "--queue-url", &mut config.queue_url),
            (bucket, "--bucket", &mut config.bucket),
            (topic_arn, "--topic-arn", &mut config.topic_arn),
        ] {
            if let Some(v) = value {
                *field = v;
            }
            if field.is_empty() {
                return Err(BatcherError::Config(format!(
                    "no {flag}: pass --stack NAME or {flag}"
                )));
            }
        }
        Ok(config)
    }

    pub fn from_stack(state: &runtime::State) -> Result<Self, BatcherError> {
        let output = |key: &'static str| {
            state
                .aws
                .outputs
                .get(key)
                .cloned()
                .ok_or(BatcherError::MissingOutput(key))
        };
        Ok(Self {
            queue_url: output("IngestQueueUrl")?,
            bucket: output("BucketName")?,
            topic_arn: output("RawFilesTopicArn")?,
            ..Self::defaults()
        })
    }
}
