//! Synthetic card, order and manufacturing event streams.
//!
//! [`Scenario`] is the file format (`scenarios/*.toml`); [`Generator`] turns a scenario and a
//! seed into the same history and stream every time; [`TokenBucket`] paces a live run at the
//! scenario's rate without drift.

pub mod chaos;
mod generator;
pub mod oltp;
pub mod output;
mod pacing;
pub mod rate;
pub mod scenario;
pub mod units;
mod world;

pub use generator::{Body, Emission, Generator, Poison, Stats};
pub use pacing::TokenBucket;
pub use rate::{RateProfile, Shape};
pub use scenario::{Bytes, Component, FileFormat, Scenario, ScenarioError};
