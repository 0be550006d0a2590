//! `[pipeline]`: the knobs the components run with, and which components a scenario runs.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Span;

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Ndjson,
    Parquet,
}

/// How the pipeline under test is configured for this scenario.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// SQS messages per batcher invocation (the event-source mapping's batch size, 1..=10000).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// How long the batcher waits to fill a batch.
    #[serde(default = "default_batch_window")]
    pub batch_window: Span,
    #[serde(default)]
    pub file_format: FileFormat,
    /// Events packed into one SQS message by the relay (1 is what production does).
    #[serde(default = "default_pack")]
    pub pack: u32,
    /// AMQP consumer prefetch of the relay.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            batch_window: default_batch_window(),
            file_format: FileFormat::default(),
            pack: default_pack(),
            prefetch: default_prefetch(),
        }
    }
}

/// A pipeline component a gate can name.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Relay,
    Batcher,
    Pipe,
    /// Change data capture from PostgreSQL: runs when the scenario has an `[oltp]` workload.
    Cdc,
}

impl Component {
    pub const ALL: [Component; 4] = [
        Component::Relay,
        Component::Batcher,
        Component::Pipe,
        Component::Cdc,
    ];
    /// What every run starts: the stream's path from the broker to RAW.
    pub const PIPELINE: [Component; 3] = [Component::Relay, Component::Batcher, Component::Pipe];

    pub fn name(self) -> &'static str {
        match self {
            Component::Relay => "relay",
            Component::Batcher => "batcher",
            Component::Pipe => "pipe",
            Component::Cdc => "cdc",
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn default_batch_size() -> u32 {
    100
}

fn default_batch_window() -> Span {
    Span(Duration::from_secs(1))
}

fn default_pack() -> u32 {
    1
}

fn default_prefetch() -> u16 {
    1000
}
