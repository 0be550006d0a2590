//! The scenario runner and its proof.
//!
//! - [`session`], [`publish`] and [`drain`] are the run pipeline `e2e` and `load-test` share:
//!   reset, backfill, components, the stream published on its schedule with confirms, drain.
//! - [`e2e`] drives one run through the real components and checks it: [`oracle`] computes the
//!   marts from the events the run produced, [`warehouse`] reads what dbt ([`dbt`]) built, and
//!   [`diff`] compares the two row by row.
//! - [`load`] drives one through the real components and measures it: throughput against
//!   same-run baselines, freshness end to end and per hop, backlog, resources, gates, reports.

pub mod changelog;
pub mod chaos;
pub mod components;
pub mod dbt;
pub mod diff;
pub mod drain;
pub mod e2e;
pub mod load;
pub mod mart;
pub mod oltp;
pub mod oracle;
pub mod procfs;
pub mod publish;
pub mod queues;
pub mod session;
pub mod warehouse;
