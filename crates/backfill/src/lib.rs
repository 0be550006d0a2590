//! The backfill (the Openflow snapshot of production), in two steps:
//! - [`history::load`]: events into PostgreSQL `history.events` through `COPY FROM STDIN`,
//!   skipping ids already there;
//! - [`snapshot::copy`]: `history.events` into RAW.EVENTS_BACKFILL in chunks through PUT + COPY,
//!   skipping ids RAW already holds, so a re-run adds nothing.

mod error;
pub mod history;
pub mod snapshot;

pub use error::BackfillError;
