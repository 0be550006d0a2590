//! The batcher: the Lambda of production, fed by an SQS poller that plays the event-source
//! mapping.
//!
//! - [`partition`]: which object an event belongs in (source and UTC event date);
//! - [`object`]: the file formats (gzipped canonical NDJSON, Parquet) and reading them back;
//! - [`handler`]: `handle(batch) -> batch item failures`, over a [`sink::Sink`] (S3 + SNS);
//! - [`poller`]: receive, batch by size and window, invoke, delete exactly what was written.

mod config;
mod error;
pub mod handler;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod metrics;
pub mod notice;
pub mod object;
pub mod partition;
pub mod poller;
pub mod sink;

pub use config::{BatcherConfig, Fault};
pub use error::BatcherError;
pub use handler::{BatchResponse, Handler, Record};
pub use metrics::{Metrics, MetricsSnapshot};
pub use object::FileFormat;
