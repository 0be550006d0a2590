//! The scenario file format (`scenarios/*.toml`).
//!
//! A scenario says what traffic to generate (seed, start, duration or event count, per-source
//! rates and a rate shape), which faults to inject, how much history to produce for the
//! backfill, the pipeline knobs to run it with and what to expect. Every value is checked when
//! the file is read; a bad file is rejected with the file, the key and the reason, before
//! anything starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::rate::Shape;

/// Why a scenario file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: `{key}`: {reason}{}", path.display(), location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        /// Dotted path of the offending key, e.g. `faults.duplicate_ratio`.
        key: String,
        reason: String,
        location: Option<(usize, usize)>,
    },
}

impl ScenarioError {
    pub fn key(&self) -> Option<&str> {
        match self {
            ScenarioError::Invalid { key, .. } => Some(key),
            ScenarioError::Read { .. } => None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Same seed, same events, byte for byte.
    pub seed: u64,
    /// Event time at which the stream starts; history lies before it.
    #[serde(default = "default_start", deserialize_with = "de_timestamp")]
    pub start: DateTime<Utc>,
    /// How long the stream lasts in event time. At least one of `duration` and `max_events`.
    #[serde(default)]
    pub duration: Option<Span>,
    /// Stop after this many original stream events (duplicates and poison not counted).
    #[serde(default)]
    pub max_events: Option<u64>,
    pub rates: Rates,
    #[serde(default)]
    pub shape: Shape,
    #[serde(default)]
    pub faults: Faults,
    /// Later events of keys announced earlier, so "latest wins" is exercised (`[revisions]`).
    #[serde(default)]
    pub revisions: Revisions,
    #[serde(default)]
    pub history: History,
    #[serde(default)]
    pub supply: Supply,
    /// The operational database the cdc component captures, and the workload run on it while
    /// the stream runs (`[oltp]`; none without it, and no cdc).
    #[serde(default)]
    pub oltp: Option<Oltp>,
    #[serde(default)]
    pub pipeline: Pipeline,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub load: Load,
    /// Faults to inject while the stream runs (`[[chaos]]`).
    #[serde(default)]
    pub chaos: Vec<crate::chaos::FaultSpec>,
}

/// Events per second of each source at shape factor 1.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub cards: Rate,
    pub orders: Rate,
    pub manufacturing: Rate,
}

impl Rates {
    pub fn total(&self) -> f64 {
        self.cards.get() + self.orders.get() + self.manufacturing.get()
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Share of stream events delivered a second time, identical (same id, same payload).
    #[serde(default)]
    pub duplicate_ratio: Ratio,
    /// Share of stream events whose event time lies before their emission (late arrivals).
    #[serde(default)]
    pub out_of_order_ratio: Ratio,
    /// Upper bound of the lateness of an out-of-order event.
    #[serde(default)]
    pub max_lateness: Span,
    /// Extra bodies, per stream event, that are not valid protobuf (they must dead-letter).
    #[serde(default)]
    pub poison_ratio: Ratio,
}

/// Shares of each source's slots (history and stream) that revise a recent key instead of
/// announcing a new one. With `faults.out_of_order_ratio`, a revision can be late too, and then
/// arrive after a revision that supersedes it.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Revisions {
    /// Card slots that re-announce a card with a new list price or name.
    #[serde(default)]
    pub card_updates: Ratio,
    /// Order slots that amend an open order: one line's quantity changes.
    #[serde(default)]
    pub order_amendments: Ratio,
    /// Order slots that cancel an open order.
    #[serde(default)]
    pub order_cancellations: Ratio,
    /// Manufacturing slots that correct a batch's produced and defective counts.
    #[serde(default)]
    pub batch_corrections: Ratio,
}

/// `[oltp]`: rows of `shop.customers` and `shop.order_status` before the cdc starts (its
/// snapshot reads them), then transactions at `transactions` per second for the stream's
/// duration, each changing 1 to `rows_per_transaction` rows, each row at most once.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Oltp {
    #[serde(default = "default_oltp_customers")]
    pub customers: u64,
    #[serde(default = "default_oltp_orders")]
    pub orders: u64,
    /// Transactions per second, shaped like the stream (`[shape]`).
    pub transactions: Rate,
    #[serde(default = "default_rows_per_transaction")]
    pub rows_per_transaction: u32,
    #[serde(default)]
    pub mix: OltpMix,
}

/// How often each kind of row change is picked (relative weights).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OltpMix {
    /// A customer signs up (INSERT).
    #[serde(default = "weight_1")]
    pub new_customers: Weight,
    /// A customer moves country, changes tier or email (UPDATE).
    #[serde(default = "weight_4")]
    pub customer_updates: Weight,
    /// A customer is erased (DELETE).
    #[serde(default = "weight_half")]
    pub erasures: Weight,
    /// An order is placed (INSERT of its status).
    #[serde(default = "weight_3")]
    pub new_orders: Weight,
    /// An order moves on: placed -> paid -> shipped -> delivered, or cancelled (UPDATE).
    #[serde(default = "weight_5")]
    pub status_changes: Weight,
}

impl Default for OltpMix {
    fn default() -> Self {
        Self {
            new_customers: weight_1(),
            customer_updates: weight_4(),
            erasures: weight_half(),
            new_orders: weight_3(),
            status_changes: weight_5(),
        }
    }
}

impl OltpMix {
    pub fn total(&self) -> f64 {
        [
            self.new_customers,
            self.customer_updates,
            self.erasures,
            self.new_orders,
            self.status_changes,
        ]
        .iter()
        .map(|w| w.get())
        .sum()
    }
}

/// A relative weight: finite and at least 0.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Weight(f64);

impl Weight {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Weight {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        if value.is_finite() && value >= 0.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "a weight must be a number of at least 0, got {value}"
            ))
        }
    }
}

fn default_oltp_customers() -> u64 {
    200
}
fn default_oltp_orders() -> u64 {
    100
}
fn default_rows_per_transaction() -> u32 {
    4
}
fn weight_1() -> Weight {
    Weight(1.0)
}
fn weight_3() -> Weight {
    Weight(3.0)
}
fn weight_4() -> Weight {
    Weight(4.0)
}
fn weight_5() -> Weight {
    Weight(5.0)
}
fn weight_half() -> Weight {
    Weight(0.5)
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// Events dated before the stream start, for the PostgreSQL backfill.
    #[serde(default)]
    pub events: u64,
    /// How far back the history reaches.
    #[serde(default = "default_history_span")]
    pub span: Span,
}

impl Default for History {
    fn default() -> Self {
        Self {
            events: 0,
            span: default_history_span(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Supply {
    /// Cumulative units ordered per card never exceed its cumulative good units produced.
    #[serde(default)]
    pub constrained: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    Ndjson,
    Parquet,
}

/// How the pipeline under test is configured for this scenario.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
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

/// What a run must show. `e2e` checks the marts; `load-test` checks the gates, each failing
/// with its name, the measured value and the limit.
#[derive(Clone, Debug, Deserialize, PartialEq)]
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

/// A pipeline component a gate can name.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// How `load-test` measures the scenario.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
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

/// A size in bytes, written like `256MiB`, `1.5GiB`, `500MB` or `4096`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
pub struct Bytes(pub u64);

impl TryFrom<String> for Bytes {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let text = s.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit_bytes: f64 = match unit.trim() {
            "" | "B" => 1.0,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => {
                return Err(format!(
                    "{s:?}: unknown unit {other:?}; use B, KB, MB, GB, KiB, MiB or GiB (e.g. \"256MiB\")"
                ));
            }
        };
        let n: f64 = number
            .parse()
            .map_err(|_| format!("{s:?} is not a size like \"256MiB\""))?;
        if !(n.is_finite() && n > 0.0) {
            return Err(format!("{s:?}: a size must be greater than 0"));
        }
        Ok(Bytes((n * unit_bytes).round() as u64))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} MiB", self.0 as f64 / (1024.0 * 1024.0))
    }
}

/// A rate in events per second: finite and greater than zero.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Rate(f64);

impl Rate {
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && value > 0.0 {
            Ok(Self(value))
        } else {
            Err(format!(
                "a rate must be a number of events per second greater than 0, got {value}"
            ))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Rate {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        Self::new(value)
    }
}

/// A share in [0, 1].
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Ratio(f64);

impl Ratio {
    pub fn new(value: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err(format!("a ratio must lie within [0, 1], got {value}"))
        }
    }
    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Ratio {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        Self::new(value)
    }
}

/// A duration written like `30s`, `5m`, `1h 30m` or `250ms`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
pub struct Span(Duration);

impl Span {
    pub const fn new(d: Duration) -> Self {
        Self(d)
    }
    pub fn get(self) -> Duration {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        humantime::parse_duration(&s)
            .map(Self)
            .map_err(|e| format!("{s:?} is not a duration like \"30s\", \"5m\" or \"1h 30m\": {e}"))
    }
}

impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

fn de_timestamp<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let s = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{s:?} is not an RFC 3339 timestamp like \"2026-01-01T00:00:00Z\": {e}"
            ))
        })
}

fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("valid literal")
        .with_timezone(&Utc)
}
fn default_history_span() -> Span {
    Span(Duration::from_secs(30 * 86_400))
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
fn default_true() -> bool {
    true
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates scenario text; `path` is only used in error messages.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let invalid = |key: String, reason: String, span: Option<std::ops::Range<usize>>| {
            ScenarioError::Invalid {
                path: path.to_owned(),
                key,
                reason,
                location: span.map(|s| line_column(text, s.start)),
            }
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| invalid("(file)".into(), e.message().trim().to_owned(), e.span()))?;
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = match e.path().to_string() {
                p if p == "." => "(top level)".to_owned(),
                p => p,
            };
            let inner = e.into_inner();
            invalid(key, inner.message().trim().to_owned(), inner.span())
        })?;
        scenario
            .validate()
            .map_err(|(key, reason)| invalid(key.to_owned(), reason, None))?;
        scenario
            .faults()
            .map_err(|(key, reason)| invalid(key, reason, None))?;
        Ok(scenario)
    }

    /// Checks that span several keys; single values are checked by their types while parsing.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.trim().is_empty() {
            return Err(("name", "must not be empty".into()));
        }
        match (self.duration, self.max_events) {
            (None, None) => {
                return Err((
                    "duration",
                    "set `duration` (e.g. \"30s\"), `max_events`, or both, so the stream ends"
                        .into(),
                ));
            }
            (Some(d), _) if d.get().is_zero() => {
                return Err(("duration", "must be greater than 0".into()));
            }
            (_, Some(0)) => return Err(("max_events", "must be greater than 0".into())),
            _ => {}
        }
        if self.faults.out_of_order_ratio.get() > 0.0 && self.faults.max_lateness.get().is_zero() {
            return Err((
                "faults.max_lateness",
                "must be greater than 0 when `out_of_order_ratio` is set (e.g. \"2m\")".into(),
            ));
        }
        let r = &self.revisions;
        if r.order_amendments.get() + r.order_cancellations.get() > 1.0 {
            return Err((
                "revisions.order_cancellations",
                format!(
                    "order_amendments ({}) and order_cancellations ({}) share the order slots; together they must not exceed 1",
                    r.order_amendments.get(),
                    r.order_cancellations.get()
                ),
            ));
        }
        if let Some(oltp) = &self.oltp {
            if self.duration.is_none() {
                return Err((
                    "oltp",
                    "the workload runs for the stream's `duration`; set one (e.g. \"30s\")".into(),
                ));
            }
            if !(1..=100).contains(&oltp.rows_per_transaction) {
                return Err((
                    "oltp.rows_per_transaction",
                    format!("must be within 1..=100, got {}", oltp.rows_per_transaction),
                ));
            }
            if oltp.mix.total() <= 0.0 {
                return Err((
                    "oltp.mix",
                    "every weight is 0: give at least one kind of change a weight above 0".into(),
                ));
            }
        }
        if self.history.events > 0 && self.history.span.get().is_zero() {
            return Err((
                "history.span",
                "must be greater than 0 when `history.events` is set".into(),
            ));
        }
        if !(1..=10_000).contains(&self.pipeline.batch_size) {
            return Err((
                "pipeline.batch_size",
                format!("must be within 1..=10000, got {}", self.pipeline.batch_size),
            ));
        }
        if self.pipeline.pack == 0 {
            return Err(("pipeline.pack", "must be at least 1".into()));
        }
        if self.pipeline.prefetch == 0 {
            return Err(("pipeline.prefetch", "must be at least 1".into()));
        }
        if let (Some(d), Some(w)) = (self.duration, self.load.warm_up)
            && w.get() >= d.get()
        {
            return Err((
                "load.warm_up",
                format!(
                    "{w} leaves nothing to measure of a {d} stream; make it shorter than `duration`"
                ),
            ));
        }
        if self.load.step.get().is_zero() {
            return Err(("load.step", "must be greater than 0".into()));
        }
        if self.load.broker_baseline_events == 0 || self.load.sqs_baseline_events == 0 {
            return Err((
                "load.broker_baseline_events",
                "baselines need at least 1 event each".into(),
            ));
        }
        self.shape.validate(self.duration.map(Span::get))
    }

    /// The components a run of this scenario starts: the pipeline, and the cdc when there is an
    /// `[oltp]` workload for it to capture.
    pub fn components(&self) -> Vec<Component> {
        let mut out = Component::PIPELINE.to_vec();
        if self.oltp.is_some() {
            out.push(Component::Cdc);
        }
        out
    }

    /// The rate profile of one source's stream events.
    pub fn profile(&self, rate: Rate) -> crate::rate::RateProfile {
        crate::rate::RateProfile::new(
            rate.get(),
            self.shape.resolved(self.duration.map(Span::get)),
        )
    }

    /// The `[[chaos]]` schedule laid out in time (empty without one); a bad entry is the
    /// entry's key and the reason.
    pub fn faults(&self) -> Result<Vec<crate::chaos::Fault>, (String, String)> {
        self.faults_of(&self.chaos)
    }

    /// Another schedule (from `--chaos`) checked against this scenario's stream.
    pub fn faults_of(
        &self,
        specs: &[crate::chaos::FaultSpec],
    ) -> Result<Vec<crate::chaos::Fault>, (String, String)> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        if self.oltp.is_none()
            && let Some(i) = specs
                .iter()
                .position(|s| s.target == Some(crate::chaos::Target::Cdc))
        {
            return Err((
                format!("chaos[{i}].target"),
                "the cdc runs only in scenarios with an `[oltp]` workload; add one or pick another target".into(),
            ));
        }
        let Some(duration) = self.duration else {
            return Err((
                "duration".into(),
                "a fault schedule needs the stream's `duration`, to place the faults in it".into(),
            ));
        };
        crate::chaos::resolve(specs, duration.get())
    }

    /// The warm-up `load-test` leaves out of its statistics.
    pub fn warm_up(&self) -> Duration {
        self.load.warm_up.map(Span::get).unwrap_or_else(|| {
            let five = Duration::from_secs(5);
            self.duration.map_or(five, |d| five.min(d.get() / 5))
        })
    }

    /// The same scenario with every source's rate, and the OLTP workload's transaction rate,
    /// multiplied by `factor` (> 0).
    pub fn with_rates_scaled(&self, factor: f64) -> Self {
        let scale = |r: Rate| Rate::new(r.get() * factor).unwrap_or(r);
        let mut scaled = self.clone();
        scaled.rates = Rates {
            cards: scale(self.rates.cards),
            orders: scale(self.rates.orders),
            manufacturing: scale(self.rates.manufacturing),
        };
        if let Some(oltp) = scaled.oltp.as_mut() {
            oltp.transactions = scale(oltp.transactions);
        }
        scaled
    }

    /// The rate profile of all stream events together.
    pub fn total_profile(&self) -> crate::rate::RateProfile {
        crate::rate::RateProfile::new(
            self.rates.total(),
            self.shape.resolved(self.duration.map(Span::get)),
        )
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}
