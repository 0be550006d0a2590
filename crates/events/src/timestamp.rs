//! Timestamps: protobuf `Timestamp` on the wire, RFC 3339 UTC with exactly six fractional digits
//! in canonical JSON (`2026-01-01T00:00:00.000000Z`). Microseconds are what Snowflake and DuckDB
//! keep, so the contract allows no finer precision and a round trip is exact.

use chrono::{DateTime, SecondsFormat, Utc};
use prost_types::Timestamp;

use crate::ContractError;

pub fn to_proto(t: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// Converts a wire timestamp, rejecting out-of-range values and sub-microsecond precision.
pub fn from_proto(field: &'static str, t: &Timestamp) -> Result<DateTime<Utc>, ContractError> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(ContractError::invalid(
            field,
            format!("nanos {} out of range", t.nanos),
        ));
    }
    if t.nanos % 1_000 != 0 {
        return Err(ContractError::invalid(
            field,
            "sub-microsecond precision (the contract keeps microseconds)",
        ));
    }
    DateTime::from_timestamp(t.seconds, t.nanos as u32)
        .ok_or_else(|| ContractError::invalid(field, format!("{}s is out of range", t.seconds)))
}

pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses any RFC 3339 timestamp (any offset) into UTC.
pub fn parse(field: &'static str, s: &str) -> Result<DateTime<Utc>, ContractError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            ContractError::invalid(field, format!("{s:?} is not an RFC 3339 timestamp: {e}"))
        })
}

/// Truncates to the contract's precision.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let micros = t.timestamp_micros();
    DateTime::from_timestamp_micros(micros).expect("truncation stays in range")
}

/// serde adapter for payload timestamps, which are required in canonical JSON.
pub mod required {
    use prost_types::Timestamp;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        let t = t
            .as_ref()
            .ok_or_else(|| S::Error::custom("timestamp is missing"))?;
        let t = super::from_proto("timestamp", t).map_err(S::Error::custom)?;
        s.serialize_str(&super::format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let t = super::parse("timestamp", &s).map_err(D::Error::custom)?;
        Ok(Some(super::to_proto(t)))
    }
}
