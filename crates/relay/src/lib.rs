//! The relay: consumes the source queues of RabbitMQ and forwards every event to the SQS ingest
//! queue, acknowledging an AMQP message only after SQS accepted the entry that carries it.
//!
//! - [`assemble`] packs deliveries into SendMessageBatch calls (entries, events per entry, size
//!   limits);
//! - [`acks`] turns out-of-order completions into contiguous multiple-acks;
//! - [`forward`] sends a batch and retries its failed entries with backoff;
//! - [`run`] is the loop that ties them together and shuts down without losing anything;
//! - [`backlog`] publishes the source queues' depth as an embedded metric, for scaling.

pub mod acks;
pub mod assemble;
pub mod backlog;
mod config;
mod error;
pub mod forward;
pub mod metrics;
mod run;

pub use config::RelayConfig;
pub use error::RelayError;
pub use metrics::{Metrics, MetricsSnapshot};
pub use run::{PUBLISHED_AT_HEADER, run};
