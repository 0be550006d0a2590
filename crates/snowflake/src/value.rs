use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

use crate::error::Error;

/// An exact decimal: `unscaled / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub unscaled: i128,
    pub scale: u32,
}

impl Decimal {
    pub fn to_f64(self) -> f64 {
        self.unscaled as f64 / 10f64.powi(self.scale as i32)
    }

    /// Parses `-123.4500` into scale `scale` (more digits than the scale are an error).
    pub fn parse(s: &str, scale: u32) -> Option<Self> {
        let (negative, digits) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if frac.len() > scale as usize || (int.is_empty() && frac.is_empty()) {
            return None;
        }
        let mut unscaled: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        for _ in 0..scale {
            unscaled = unscaled.checked_mul(10)?;
        }
        if !frac.is_empty() {
            let f: i128 = frac.parse().ok()?;
            unscaled += f * 10i128.pow(scale - frac.len() as u32);
        }
        Some(Self {
            unscaled: if negative { -unscaled } else { unscaled },
            scale,
        })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.unscaled);
        }
        let sign = if self.unscaled < 0 { "-" } else { "" };
        let abs = self.unscaled.unsigned_abs();
        let div = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / div,
            abs % div,
            width = self.scale as usize
        )
    }
}

/// One cell of a result, typed by its column.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    /// NUMBER with scale 0 that fits in 64 bits.
    Int(i64),
    /// NUMBER with a scale, or too large for 64 bits.
    Decimal(Decimal),
    Float(f64),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    Time(NaiveTime),
    TimestampNtz(NaiveDateTime),
    TimestampLtz(DateTime<Utc>),
    TimestampTz(DateTime<FixedOffset>),
    /// VARIANT, OBJECT and ARRAY.
    Variant(serde_json::Value),
    Binary(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Text(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{d}"),
            Value::Time(t) => write!(f, "{t}"),
            Value::TimestampNtz(t) => write!(f, "{}", t.format("%Y-%m-%d %H:%M:%S%.f")),
            Value::TimestampLtz(t) => write!(f, "{}", t.to_rfc3339()),
            Value::TimestampTz(t) => write!(f, "{}", t.to_rfc3339()),
            Value::Variant(v) => write!(f, "{v}"),
            Value::Binary(b) => f.write_str(&hex::encode(b)),
        }
    }
}

impl Value {
    /// A JSON rendering for machine-readable output (`xtask sql --json`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Int(v) => (*v).into(),
            Value::Float(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Value::Bool(b) => (*b).into(),
            Value::Variant(v) => v.clone(),
            other => J::String(other.to_string()),
        }
    }
}

/// Conversion of a cell to a Rust type; `Option<T>` accepts NULL.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

fn mismatch<T>(wanted: &str, got: &Value) -> Result<T, String> {
    Err(format!("cannot read {got:?} as {wanted}"))
}

impl FromValue for Value {
    fn from_value(value: Value) -> Result<Self, String> {
        Ok(value)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Int(v) => Ok(v),
            Value::Decimal(d) if d.scale == 0 => {
                i64::try_from(d.unscaled).map_err(|e| e.to_string())
            }
            other => mismatch("an integer", &other),
        }
    }
}

impl FromValue for u64 {
    fn from_value(value: Value) -> Result<Self, String> {
        let v = i64::from_value(value)?;
        u64::try_from(v).map_err(|_| format!("{v} is negative"))
    }
}

impl FromValue for i32 {
    fn from_value(value: Value) -> Result<Self, String> {
        let v = i64::from_value(value)?;
        i32::try_from(v).map_err(|_| format!("{v} does not fit in 32 bits"))
    }
}

impl FromValue for Decimal {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Decimal(d) => Ok(d),
            Value::Int(v) => Ok(Decimal {
                unscaled: v.into(),
                scale: 0,
            }),
            other => mismatch("a decimal", &other),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Float(v) => Ok(v),
            Value::Int(v) => Ok(v as f64),
            Value::Decimal(d) => Ok(d.to_f64()),
            other => mismatch("a float", &other),
        }
    }
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            Value::Variant(serde_json::Value::String(s)) => Ok(s),
            other => mismatch("text", &other),
        }
    }
}

impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(b),
            other => mismatch("a boolean", &other),
        }
    }
}

impl FromValue for NaiveDate {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Date(d) => Ok(d),
            other => mismatch("a date", &other),
        }
    }
}

impl FromValue for NaiveDateTime {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::TimestampNtz(t) => Ok(t),
            other => mismatch("a TIMESTAMP_NTZ", &other),
        }
    }
}

impl FromValue for DateTime<Utc> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::TimestampLtz(t) => Ok(t),
            Value::TimestampTz(t) => Ok(t.with_timezone(&Utc)),
            // fakesnow's DuckDB keeps TIMESTAMP_TZ without the offset; NTZ values are UTC by convention here.
            Value::TimestampNtz(t) => Ok(t.and_utc()),
            other => mismatch("a timestamp", &other),
        }
    }
}

impl FromValue for DateTime<FixedOffset> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::TimestampTz(t) => Ok(t),
            Value::TimestampLtz(t) => Ok(t.fixed_offset()),
            other => mismatch("a TIMESTAMP_TZ", &other),
        }
    }
}

impl FromValue for serde_json::Value {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Variant(v) => Ok(v),
            Value::Null => Ok(serde_json::Value::Null),
            Value::Text(s) => {
                serde_json::from_str(&s).map_err(|e| format!("text is not JSON: {e}"))
            }
            other => mismatch("a VARIANT", &other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Binary(b) => Ok(b),
            other => mismatch("binary", &other),
        }
    }
}

pub(crate) fn value_error(column: &str, reason: impl Into<String>) -> Error {
    Error::Value {
        column: column.to_owned(),
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_and_print_exactly() {
        for (text, scale, unscaled, shown) in [
            ("123.45", 2, 12345, "123.45"),
            ("-0.5", 3, -500, "-0.500"),
            ("7", 2, 700, "7.00"),
            ("-12", 0, -12, "-12"),
            (
                "99999999999999999999999999999999999.999",
                3,
                99999999999999999999999999999999999999,
                "99999999999999999999999999999999999.999",
            ),
        ] {
            let d = Decimal::parse(text, scale).unwrap();
            assert_eq!(d.unscaled, unscaled, "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert!(
            Decimal::parse("1.234", 2).is_none(),
            "more digits than the scale"
        );
        assert!(Decimal::parse("abc", 2).is_none());
    }
}
