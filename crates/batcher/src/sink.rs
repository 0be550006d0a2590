//! Where objects go and how they are announced: S3 and SNS in production and against the stack.

use std::future::Future;

use aws_sdk_sns::types::PublishBatchRequestEntry;
use rawfiles::FileFormat;
use rawfiles::notice::{ObjectNotice, s3_event_json};

use crate::BatcherError;
use crate::group::GroupCommit;

/// SNS takes at most ten messages per PublishBatch.
const NOTICES_PER_CALL: usize = 10;
/// PublishBatch calls at once.
const NOTICE_CALLS_IN_FLIGHT: usize = 4;

pub trait Sink: Send + Sync {
    /// Stores an object; returns its notice (bucket, key, size, ETag).
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        format: FileFormat,
    ) -> impl Future<Output = Result<ObjectNotice, BatcherError>> + Send;

    /// Tells downstream (SNS `raw-files`) that the object exists.
    fn announce(
        &self,
        notice: &ObjectNotice,
    ) -> impl Future<Output = Result<(), BatcherError>> + Send;
}

/// S3 puts, and notices published in batches: the notices of the invocations in flight share
/// PublishBatch calls (one call and, on the topic's SQS subscription, one delivery per ten
/// small files instead of ten).
#[derive(Clone)]
pub struct AwsSink {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub topic_arn: String,
    notices: GroupCommit<ObjectNotice>,
}

impl AwsSink {
    /// Starts the notices' batching task: call it inside a Tokio runtime.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: String, topic_arn: String) -> Self {
        let s3 = rawfiles::s3_client(sdk);
        let sns = aws_sdk_sns::Client::new(sdk);
        let notices = GroupCommit::spawn(NOTICES_PER_CALL, NOTICE_CALLS_IN_FLIGHT, {
            let topic_arn = topic_arn.clone();
            move |notices| publish_batch(sns.clone(), topic_arn.clone(), notices)
        });
        Self {
            s3,
            bucket,
            topic_arn,
            notices,
        }
    }
}

/// One PublishBatch; each notice's outcome, in order.
async fn publish_batch(
    sns: aws_sdk_sns::Client,
    topic_arn: String,
    notices: Vec<ObjectNotice>,
) -> Vec<Result<(), String>> {
    let entries: Vec<PublishBatchRequestEntry> = notices
        .iter()
        .enumerate()
        .map(|(i, notice)| {
            PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .subject("ObjectCreated")
                .message(s3_event_json(
                    notice,
                    notice.event_time.unwrap_or_else(chrono::Utc::now),
                ))
                .build()
                .expect("id and message are set")
        })
        .collect();
    let answer = sns
        .publish_batch()
        .topic_arn(&topic_arn)
        .set_publish_batch_request_entries(Some(entries))
        .send()
        .await
        .map(|out| {
            out.failed()
                .iter()
                .map(|f| crate::group::refused(f.id(), f.code(), f.message()))
                .collect()
        })
        .map_err(|e| aws_sdk_sns::error::DisplayErrorContext(&e).to_string());
    crate::group::outcomes(notices.len(), answer)
}

impl Sink for AwsSink {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        format: FileFormat,
    ) -> Result<ObjectNotice, BatcherError> {
        let size = body.len() as u64;
        let output = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(format.content_type())
            .body(body.into())
            .send()
            .await
            .map_err(|e| BatcherError::Put {
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                reason: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(ObjectNotice {
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            size,
            etag: output
                .e_tag()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned(),
            event_time: Some(chrono::Utc::now()),
        })
    }

    async fn announce(&self, notice: &ObjectNotice) -> Result<(), BatcherError> {
        self.notices
            .submit(notice.clone())
            .await
            .map_err(|reason| BatcherError::Announce {
                topic: self.topic_arn.clone(),
                key: notice.key.clone(),
                reason,
            })
    }
}
