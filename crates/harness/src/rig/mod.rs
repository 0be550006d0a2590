//! The rig: what `e2e` ([`crate::prove`]) and `load-test` ([`crate::load`]) both run, once.
//!
//! [`run`] is the sequence: [`Rig::prepare`] (backfill, the workload's first rows, the fault
//! proxies, the components, the cdc's snapshot), then one or more [`Rig::round`]s (the stream
//! published with the fault schedule and the workload, a drain, the checks every run must pass),
//! with [`Watch`] as the hook for what a caller samples meanwhile. Its machinery:
//! - [`session`]: the connections to a running stack, reset and backfill;
//! - [`components`]: relay, batcher, pipe and cdc as processes, and their metrics files;
//! - [`publish`]: the stream on its schedule, with confirms; [`drain`]: waiting for every hop;
//! - [`queues`], [`warehouse`] (every statement the harness sends to RAW and the marts),
//!   [`source`] (what it reads from and resets in PostgreSQL), [`oltp`] (the operational
//!   workload), [`chaos`] (the nemesis, its tracker and the fault
//!   proxy), [`sampler`] and [`procfs`] (rates, depths, CPU and memory once a second);
//! - [`progress`]: what a run shows while it goes on, and its phase clock.

pub mod chaos;
pub mod components;
pub mod drain;
pub mod oltp;
pub mod procfs;
pub mod progress;
pub mod publish;
pub mod queues;
pub mod run;
pub mod sampler;
pub mod session;
pub mod source;
pub mod warehouse;

pub use progress::{Clock, Phase, Progress};
pub use run::{Outcome, Rig, Round, Seen, Setup, Stage, StreamPart, Watch};
