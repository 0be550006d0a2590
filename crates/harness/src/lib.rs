//! The scenario runner and its proof, in three rooms:
//!
//! - [`rig`]: the run sequence `e2e` and `load-test` share, written once ([`rig::Rig`]: prepare,
//!   then rounds of stream, drain and the checks every run must pass) and its machinery: the
//!   session on a running stack, the components, publishing, draining, queues, the warehouse's
//!   statements, the OLTP workload, the nemesis and its fault proxy, the sampler.
//! - [`prove`]: `e2e`, a rig run proved right: [`prove::dbt`] builds the marts,
//!   [`prove::oracle`] computes them from the events the run produced, [`prove::diff`] compares
//!   the two row by row, and [`prove::changelog`] checks the change log against its source.
//! - [`load`]: `load-test`, rig rounds measured: same-run baselines, repeats and `--find-max`,
//!   freshness end to end and per hop, backlog, resources, gates, reports.
//!
//! [`RunError`] is the one error type of a run: infrastructure that failed. What a run proves
//! or disproves is in its report.

pub mod consumers;
pub mod error;
pub mod load;
pub mod prove;
pub mod rig;

pub use error::RunError;
