//! The scenario runner and its proof.
//!
//! - [`publish`] sends a scenario's stream to RabbitMQ at the scenario's rate with publisher
//!   confirms, as production's producers do.
//! - [`e2e`] drives one run through the real components and checks it: [`oracle`] computes the
//!   marts from the events the run produced, [`warehouse`] reads what dbt ([`dbt`]) built, and
//!   [`diff`] compares the two row by row.

pub mod components;
pub mod dbt;
pub mod diff;
pub mod e2e;
pub mod mart;
pub mod oracle;
pub mod publish;
pub mod queues;
pub mod warehouse;
