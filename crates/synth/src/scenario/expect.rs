//! `[expect]`: what a run must show.

use serde::{Deserialize, Serialize};

use super::Component;
use crate::units::{Bytes, Ratio, Span};

/// What a run must show. `e2e` checks the marts; `load-test` checks the gates, each failing
/// with its name, the measured value and the limit.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The marts must equal the oracle row for row.
    #[serde(default = "default_true")]
    pub exact_marts: bool,
    /// Upper bound of the 99th percentile of freshness (intended publish to visible in RAW).
    #[serde(default)]
    pub freshness_p99: Option<Span>,
    /// Upper bound of the worst freshness.
    #[serde(default)]
    pub freshness_max: Option<Span>,
    /// Lower bound of the end-to-end rate as a share of the broker-only baseline of the same run.
    #[serde(default)]
    pub min_rate_ratio: Option<Ratio>,
    /// Events published that may be missing from RAW after the drain (default 0).
    #[serde(default)]
    pub max_lost: u64,
    /// Upper bound of each component's peak resident memory, e.g. `relay = "256MiB"`.
    #[serde(default)]
    pub max_rss: std::collections::BTreeMap<Component, Bytes>,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            exact_marts: true,
            freshness_p99: None,
            freshness_max: None,
            min_rate_ratio: None,
            max_lost: 0,
            max_rss: Default::default(),
        }
    }
}

fn default_true() -> bool {
    true
}
