//! Where objects go and how they are announced: S3 and SNS in production and against the stack.

use std::future::Future;

use rawfiles::FileFormat;
use rawfiles::notice::{ObjectNotice, s3_event_json};

use crate::BatcherError;

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

#[derive(Clone)]
pub struct AwsSink {
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub bucket: String,
    pub topic_arn: String,
}

impl AwsSink {
    pub fn new(sdk: &aws_config::SdkConfig, bucket: String, topic_arn: String) -> Self {
        let s3 = rawfiles::s3_client(sdk);
        Self {
            s3,
            sns: aws_sdk_sns::Client::new(sdk),
            bucket,
            topic_arn,
        }
    }
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
        self.sns
            .publish()
            .topic_arn(&self.topic_arn)
            .subject("ObjectCreated")
            .message(s3_event_json(
                notice,
                notice.event_time.unwrap_or_else(chrono::Utc::now),
            ))
            .send()
            .await
            .map_err(|e| BatcherError::Announce {
                topic: self.topic_arn.clone(),
                key: notice.key.clone(),
                reason: aws_sdk_sns::error::DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }
}
