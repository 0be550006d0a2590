//! `[load]`: the load test's baselines, drain and steps.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::Span;

/// How `load-test` measures the scenario.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// The start of the stream left out of every statistic (connections and caches still
    /// cold): its events are delivered and counted, not measured. Default: 5 s, or a fifth of a
    /// shorter stream.
    #[serde(default)]
    pub warm_up: Option<Span>,
    /// How long the pipeline may take after the last publish to deliver everything; past it the
    /// run fails and says which hop is behind.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout: Span,
    /// Events the broker-only baseline publishes and consumes.
    #[serde(default = "default_broker_baseline_events")]
    pub broker_baseline_events: u64,
    /// Messages the SQS-only baseline sends, receives and deletes.
    #[serde(default = "default_sqs_baseline_events")]
    pub sqs_baseline_events: u64,
    /// How long each step of `--find-max` offers its rate.
    #[serde(default = "default_step")]
    pub step: Span,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            warm_up: None,
            drain_timeout: default_drain_timeout(),
            broker_baseline_events: default_broker_baseline_events(),
            sqs_baseline_events: default_sqs_baseline_events(),
            step: default_step(),
        }
    }
}

fn default_drain_timeout() -> Span {
    Span(Duration::from_secs(120))
}

fn default_broker_baseline_events() -> u64 {
    50_000
}

fn default_sqs_baseline_events() -> u64 {
    10_000
}

fn default_step() -> Span {
    Span(Duration::from_secs(20))
}
