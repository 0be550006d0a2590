//! The cdc component: PostgreSQL row changes into the event pipeline, without loss.
//!
//! - [`slot`]: the checks before anything streams (wal_level, publication, primary keys, the
//!   slot and its snapshot record), and the slot's lifecycle;
//! - [`change`]: a pgoutput row (or a snapshot row) as a Debezium-shaped [`events::RowChange`]
//!   event, with its id derived from its position so a change sent again keeps its id;
//! - [`confirm`]: broker confirms, awaited in transaction order; a transaction's commit LSN is
//!   acknowledged to the slot only once it and every transaction before it are confirmed;
//! - [`run`]: a session (snapshot, then stream) and the restarts around it.
//!
//! Delivery is at least once: killed at any point, the component resumes from the slot's
//! confirmed LSN and sends again what was not confirmed, with the same event ids.

mod catalog;
pub mod change;
mod config;
pub mod confirm;
mod error;
mod metrics;
mod publisher;
pub mod run;
pub mod slot;

pub use catalog::{Catalog, TableInfo, TableName};
pub use config::{
    CdcConfig, DEFAULT_PUBLICATION, DEFAULT_SLOT, DEFAULT_TABLES, HEARTBEAT_PREFIX, SNAPSHOTS_TABLE,
};
pub use error::CdcError;
pub use metrics::{Metrics, MetricsSnapshot};
pub use run::run;
