//! The checked value types scenario files (and fault schedules) are written in: sizes, rates,
//! ratios and time spans.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A size in bytes, written like `256MiB`, `1.5GiB`, `500MB` or `4096`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(try_from = "String")]
pub struct Bytes(pub u64);

impl serde::Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

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
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Rate(pub(crate) f64);

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
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, PartialOrd)]
#[serde(try_from = "f64")]
pub struct Ratio(pub(crate) f64);

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
pub struct Span(pub(crate) Duration);

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
