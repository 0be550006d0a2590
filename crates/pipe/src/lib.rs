//! The pipe: Snowpipe for the emulator profile. It polls the `snowpipe-notify` queue, and for
//! each S3 notification loads the object into RAW.EVENTS_STREAM once (load history keyed by
//! object key and ETag), with the file name and load time beside each event. A file that cannot
//! be loaded is recorded in RAW.LOAD_HISTORY with its error and does not block the next one.
//!
//! For a real account, the PIPE in `infra/snowflake/pipe.real-account.sql` does this.

mod config;
mod error;
pub mod load;
pub mod metrics;
pub mod poller;

pub use config::PipeConfig;
pub use error::PipeError;
pub use load::{LoadOutcome, Loader};
pub use metrics::{Metrics, MetricsSnapshot};
