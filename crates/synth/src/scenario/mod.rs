//! The scenario file format (`scenarios/*.toml`).
//!
//! A scenario says what traffic to generate (seed, start, duration or event count, per-source
//! rates and a rate shape), which faults to inject, how much history to produce for the
//! backfill, the pipeline knobs to run it with and what to expect. Every value is checked when
//! the file is read; a bad file is rejected with the file, the key and the reason, before
//! anything starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::rate::Shape;

mod events;
mod expect;
mod load;
mod oltp;
mod pipeline;

pub use crate::units::{Bytes, Rate, Ratio, Span};
pub use events::{Faults, History, Rates, Revisions, Supply};
pub use expect::Expect;
pub use load::Load;
pub use oltp::{Oltp, OltpMix, Weight};
pub use pipeline::{Component, FileFormat, Pipeline};

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

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Same seed, same events, byte for byte.
    pub seed: u64,
    /// Event time at which the stream starts; history lies before it.
    #[serde(
        default = "default_start",
        deserialize_with = "de_timestamp",
        serialize_with = "ser_timestamp"
    )]
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

fn ser_timestamp<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

fn default_start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("valid literal")
        .with_timezone(&Utc)
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

    /// The scenario as scenario-file text that [`Scenario::parse`] reads back equal: how a
    /// changed scenario (rates scaled, a later start) reaches another process.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("every scenario field has a TOML form")
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
