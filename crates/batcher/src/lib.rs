//! The batcher: the Lambda of production, fed by an SQS poller that plays the event-source
//! mapping.
//!
//! The file formats, object keys and S3 notices are in `rawfiles`, shared with the pipe.
//!
//! - [`handler`]: `handle(batch) -> batch item failures`, over a [`sink::Sink`] (S3 + SNS);
//! - [`poller`]: receive, batch by size and window, invoke, delete exactly what was written.

mod config;
mod error;
pub mod group;
pub mod handler;
pub mod lambda;
pub mod metrics;
pub mod poller;
pub mod sink;

pub use config::{BatcherConfig, Fault};
pub use error::BatcherError;
pub use handler::{BatchResponse, Handler, Record};
pub use metrics::{Metrics, MetricsSnapshot};
pub use rawfiles::FileFormat;
