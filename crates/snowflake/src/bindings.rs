use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::json;

/// A positional parameter (`?` or `:1`) of a statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    Date(NaiveDate),
    TimestampNtz(NaiveDateTime),
    TimestampTz(DateTime<Utc>),
    Binary(Vec<u8>),
}

impl Binding {
    /// The wire form: `{"type": ..., "value": ...}` with every value as a string, as the
    /// connectors send it.
    pub(crate) fn to_wire(&self) -> serde_json::Value {
        let nanos = |t: &NaiveDateTime| {
            t.and_utc()
                .timestamp_nanos_opt()
                .unwrap_or(i64::MAX)
                .to_string()
        };
        match self {
            Binding::Null => json!({"type": "ANY", "value": null}),
            Binding::Int(v) => json!({"type": "FIXED", "value": v.to_string()}),
            Binding::Float(v) => json!({"type": "REAL", "value": v.to_string()}),
            Binding::Text(v) => json!({"type": "TEXT", "value": v}),
            Binding::Bool(v) => json!({"type": "BOOLEAN", "value": v.to_string()}),
            Binding::Date(d) => {
                let millis = d
                    .and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc()
                    .timestamp_millis();
                json!({"type": "DATE", "value": millis.to_string()})
            }
            Binding::TimestampNtz(t) => json!({"type": "TIMESTAMP_NTZ", "value": nanos(t)}),
            Binding::TimestampTz(t) => {
                json!({"type": "TIMESTAMP_TZ", "value": format!("{} 1440", nanos(&t.naive_utc()))})
            }
            Binding::Binary(b) => json!({"type": "BINARY", "value": hex::encode(b)}),
        }
    }
}

impl From<i64> for Binding {
    fn from(v: i64) -> Self {
        Binding::Int(v)
    }
}
impl From<i32> for Binding {
    fn from(v: i32) -> Self {
        Binding::Int(v.into())
    }
}
impl From<u32> for Binding {
    fn from(v: u32) -> Self {
        Binding::Int(v.into())
    }
}
impl From<f64> for Binding {
    fn from(v: f64) -> Self {
        Binding::Float(v)
    }
}
impl From<bool> for Binding {
    fn from(v: bool) -> Self {
        Binding::Bool(v)
    }
}
impl From<&str> for Binding {
    fn from(v: &str) -> Self {
        Binding::Text(v.to_owned())
    }
}
impl From<String> for Binding {
    fn from(v: String) -> Self {
        Binding::Text(v)
    }
}
impl From<NaiveDate> for Binding {
    fn from(v: NaiveDate) -> Self {
        Binding::Date(v)
    }
}
impl From<DateTime<Utc>> for Binding {
    fn from(v: DateTime<Utc>) -> Self {
        Binding::TimestampTz(v)
    }
}
impl<T: Into<Binding>> From<Option<T>> for Binding {
    fn from(v: Option<T>) -> Self {
        v.map_or(Binding::Null, Into::into)
    }
}

/// Base64 helper shared by the decoders.
pub(crate) fn base64_decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}
