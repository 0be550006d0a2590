//! The raw files between the batcher and the warehouse:
//!
//! - [`format`]: gzipped canonical NDJSON or Parquet, deterministic, read back with every event
//!   checked against the contract;
//! - [`partition`]: `<prefix>/source=<s>/year=YYYY/month=MM/day=DD/<content id>.<ext>` by event
//!   date;
//! - [`notice`]: the S3 `ObjectCreated` event the batcher announces on SNS and the pipe reads
//!   (raw or SNS-wrapped);
//! - [`s3_client`]: the S3 client both use.

pub mod format;
pub mod notice;
pub mod partition;

pub use format::{FileFormat, content_id};
pub use notice::ObjectNotice;
pub use partition::PartitionKey;

/// A raw file that cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("encoding an object: {0}")]
    Encode(String),
    #[error("reading an object: {0}")]
    Decode(String),
}

/// An S3 client with path-style addressing, because LocalStack has no per-bucket DNS names
/// (real S3 accepts it too).
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}
