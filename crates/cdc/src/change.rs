//! Row changes as events: pgoutput's text values typed by their column's type (a number is a
//! JSON number, a timestamp RFC 3339 UTC), in Debezium's envelope ([`events::RowChange`]).
//!
//! A change's event id is derived from where it is in the WAL (slot, commit LSN, change LSN,
//! table, key), so the same change read again after a restart is the same event: staging drops
//! the copy, and the fingerprint check proves the copy identical.

use chrono::{DateTime, NaiveDateTime, Utc};
use events::{ChangeSource, Event, Payload, RowChange};
use pg_walstream::{ColumnValue, RowData};
use serde_json::{Map, Value};

use crate::{CdcError, TableInfo};

/// What a change did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// A row read by the initial snapshot.
    Read,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Insert => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
        }
    }
}

/// Where a change sits: its transaction (or, for a snapshot read, the snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The commit record's LSN; for a read, the snapshot's consistent point.
    pub commit_lsn: u64,
    /// The change's own WAL record (0 for a read).
    pub change_lsn: u64,
    pub tx_id: u32,
    pub commit_time: DateTime<Utc>,
    /// 1-based position in the transaction and the transaction's changes (0 and 0 for a read).
    pub tx_order: u32,
    pub tx_size: u32,
}

/// Ids of change events: UUID v5 in this namespace.
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x5c1f_0cdc_0000_4000_8000_7e1a_7ab1_e5d0);

/// PostgreSQL type OIDs that have a JSON form other than a string.
mod oid {
    pub const BOOL: u32 = 16;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const JSONB: u32 = 3802;
}

/// One column's text value (pgoutput's and COPY's text output) as JSON.
pub fn typed_value(type_oid: u32, text: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("{text:?} is not a {what}");
    Ok(match type_oid {
        oid::BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            _ => return Err(bad("boolean")),
        },
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => {
            Value::from(text.parse::<i64>().map_err(|_| bad("whole number"))?)
        }
        oid::FLOAT4 | oid::FLOAT8 => match text.parse::<f64>() {
            // NaN and the infinities have no JSON number: kept as text.
            Ok(f) if f.is_finite() => Value::from(f),
            _ => Value::from(text),
        },
        oid::JSON | oid::JSONB => serde_json::from_str(text).map_err(|_| bad("JSON document"))?,
        oid::TIMESTAMPTZ => Value::from(events::timestamp::format(parse_timestamptz(text)?)),
        oid::TIMESTAMP => {
            let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .map_err(|_| bad("timestamp"))?;
            Value::from(t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        }
        // numeric (exact), text, dates, uuids and the rest: their text is their value.
        _ => Value::from(text),
    })
}

/// PostgreSQL's `timestamptz` output in any session time zone (`2026-03-01 12:00:00.5+01`,
/// `... +05:30`, `... -03:30:15`).
fn parse_timestamptz(text: &str) -> Result<DateTime<Utc>, String> {
    let split = text
        .rfind(['+', '-'])
        .filter(|i| *i > 10)
        .ok_or_else(|| format!("{text:?} is not a timestamp with a time zone"))?;
    let (local, offset) = text.split_at(split);
    let mut parts = offset[1..].split(':').map(|p| p.parse::<i64>());
    let hours = parts.next().and_then(Result::ok);
    let minutes = parts.next().unwrap_or(Ok(0)).ok();
    let seconds = parts.next().unwrap_or(Ok(0)).ok();
    let (Some(h), Some(m), Some(s)) = (hours, minutes, seconds) else {
        return Err(format!("{text:?} has no readable UTC offset"));
    };
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let local = NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|e| format!("{text:?} is not a timestamp: {e}"))?;
    let utc = local - chrono::Duration::seconds(sign * (h * 3600 + m * 60 + s));
    Ok(events::timestamp::truncate_to_micros(utc.and_utc()))
}

/// A row image as a JSON object of column to typed value. `fallback` supplies columns the row
/// lacks (pgoutput leaves out unchanged TOASTed values of an update).
fn image(
    table: &TableInfo,
    row: &RowData,
    fallback: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, CdcError> {
    let convert_err = |reason: String| CdcError::Convert {
        table: table.name.to_string(),
        reason,
    };
    let mut out = Map::new();
    for (name, value) in row.iter() {
        let json = match value {
            ColumnValue::Null => Value::Null,
            ColumnValue::Text(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| convert_err(format!("column {name} is not UTF-8 text")))?;
                let type_oid = table.type_of(name).unwrap_or(0);
                typed_value(type_oid, text)
                    .map_err(|e| convert_err(format!("column {name}: {e}")))?
            }
            ColumnValue::Binary(bytes) => {
                use base64::Engine as _;
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        };
        out.insert(name.to_string(), json);
    }
    if let Some(fallback) = fallback {
        for (column, _) in &table.columns {
            if !out.contains_key(column)
                && let Some(v) = fallback.get(column)
            {
                out.insert(column.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

/// A captured change, before it becomes an event.
#[derive(Clone, Debug)]
pub struct Captured {
    pub op: Op,
    pub before: Option<RowData>,
    pub after: Option<RowData>,
    /// The change's WAL record (0 for a snapshot read).
    pub change_lsn: u64,
}

/// The change as an event. `produced_at` is when the component emits it (never before the
/// commit: the event contract wants `occurred_at <= produced_at`, and the server's clock may
/// run ahead of this one).
pub fn to_event(
    slot: &str,
    table: &TableInfo,
    change: &Captured,
    position: &Position,
    produced_at: DateTime<Utc>,
) -> Result<Event, CdcError> {
    let before = change
        .before
        .as_ref()
        .map(|row| image(table, row, None))
        .transpose()?;
    let after = change
        .after
        .as_ref()
        .map(|row| image(table, row, before.as_ref()))
        .transpose()?;
    if let Some(after) = &after {
        // An update without the row before cannot restore what pgoutput left out.
        if let Some((column, _)) = table.columns.iter().find(|(c, _)| !after.contains_key(c)) {
            return Err(CdcError::UnchangedToast {
                table: table.name.to_string(),
                column: column.clone(),
            });
        }
    }
    let identifying = after
        .as_ref()
        .or(before.as_ref())
        .ok_or_else(|| CdcError::Convert {
            table: table.name.to_string(),
            reason: "a change with neither a row before nor after".into(),
        })?;
    let mut key = Map::new();
    for column in &table.key {
        let value = identifying.get(column).ok_or_else(|| CdcError::Convert {
            table: table.name.to_string(),
            reason: format!("key column {column} is not in the change"),
        })?;
        key.insert(column.clone(), value.clone());
    }
    let text = |m: Option<Map<String, Value>>| m.map(|m| Value::Object(m).to_string());
    let key = Value::Object(key).to_string();
    let id_name = format!(
        "{slot}/{}/{}/{}/{key}",
        position.commit_lsn, change.change_lsn, table.name
    );
    let id = uuid::Uuid::new_v5(&ID_NAMESPACE, id_name.as_bytes());
    // The contract keeps microseconds (a server's commit time has them; our clock has more).
    let commit_time = events::timestamp::truncate_to_micros(position.commit_time);
    let payload = Payload::RowChange(RowChange {
        op: change.op.code().into(),
        table: table.name.to_string(),
        key,
        before: text(before).unwrap_or_default(),
        after: text(after).unwrap_or_default(),
        source: Some(ChangeSource {
            slot: slot.to_owned(),
            commit_lsn: position.commit_lsn,
            change_lsn: change.change_lsn,
            tx_id: position.tx_id,
            commit_time: Some(events::timestamp::to_proto(commit_time)),
            tx_order: position.tx_order,
            tx_size: position.tx_size,
        }),
    });
    Event::new(id, commit_time, produced_at.max(commit_time), payload).map_err(|e| {
        CdcError::Convert {
            table: table.name.to_string(),
            reason: format!("the change breaks the event contract: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::TableName;

    fn customers() -> TableInfo {
        TableInfo {
            name: TableName::new("shop", "customers"),
            columns: vec![
                ("customer_id".into(), 25),
                ("visits".into(), oid::INT4),
                ("vip".into(), oid::BOOL),
                ("updated_at".into(), oid::TIMESTAMPTZ),
            ],
            key: vec!["customer_id".into()],
        }
    }

    fn row(values: &[(&str, Option<&str>)]) -> RowData {
        let mut row = RowData::new();
        for (name, value) in values {
            row.push(
                Arc::from(*name),
                value.map_or(ColumnValue::Null, ColumnValue::text),
            );
        }
        row
    }

    fn position(commit_lsn: u64, order: u32) -> Position {
        Position {
            commit_lsn,
            change_lsn: commit_lsn - 10,
            tx_id: 7,
            // Nanoseconds, as our clock gives them: the event keeps microseconds.
            commit_time: DateTime::from_timestamp(1_772_000_000, 123_456_789).unwrap(),
            tx_order: order,
            tx_size: 2,
        }
    }

    #[test]
    fn text_values_become_typed_json() {
        assert_eq!(typed_value(oid::INT8, "-42").unwrap(), Value::from(-42));
        assert_eq!(typed_value(oid::BOOL, "t").unwrap(), Value::Bool(true));
        assert_eq!(typed_value(oid::FLOAT8, "NaN").unwrap(), Value::from("NaN"));
        assert_eq!(typed_value(1700, "12.50").unwrap(), Value::from("12.50"));
        assert_eq!(
            typed_value(oid::TIMESTAMPTZ, "2026-03-01 12:00:00.5+01").unwrap(),
            Value::from("2026-03-01T11:00:00.500000Z")
        );
        assert_eq!(
            typed_value(oid::TIMESTAMPTZ, "2026-03-01 00:10:00-05:30").unwrap(),
            Value::from("2026-03-01T05:40:00.000000Z")
        );
        assert_eq!(
            typed_value(oid::TIMESTAMP, "2026-03-01 12:00:00").unwrap(),
            Value::from("2026-03-01T12:00:00.000000")
        );
        assert_eq!(
            typed_value(oid::JSONB, r#"{"a": [1]}"#).unwrap(),
            serde_json::json!({"a": [1]})
        );
        assert!(
            typed_value(oid::INT4, "x")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(typed_value(oid::TIMESTAMPTZ, "yesterday").is_err());
    }

    #[test]
    fn an_update_is_keyed_typed_and_ided_by_its_position() {
        let before = row(&[
            ("customer_id", Some("c-1")),
            ("visits", Some("1")),
            ("vip", Some("f")),
            ("updated_at", Some("2026-03-01 10:00:00+00")),
        ]);
        let after = row(&[
            ("customer_id", Some("c-1")),
            ("visits", Some("2")),
            ("vip", None),
            ("updated_at", Some("2026-03-01 11:00:00+00")),
        ]);
        let change = Captured {
            op: Op::Update,
            before: Some(before),
            after: Some(after),
            change_lsn: 990,
        };
        let now = Utc::now();
        let e = to_event("s", &customers(), &change, &position(1000, 1), now).unwrap();
        assert_eq!(e.routing_key(), "cdc.shop.customers");
        let json: Value = serde_json::from_str(&e.to_canonical_json()).unwrap();
        let p = &json["payload"];
        assert_eq!(p["op"], "u");
        assert_eq!(p["key"], serde_json::json!({"customer_id": "c-1"}));
        assert_eq!(p["after"]["visits"], 2);
        assert_eq!(p["after"]["vip"], Value::Null);
        assert_eq!(p["before"]["updated_at"], "2026-03-01T10:00:00.000000Z");
        assert_eq!(p["source"]["commit_lsn"], 1000);
        assert_eq!(
            e.occurred_at(),
            events::timestamp::truncate_to_micros(position(1000, 1).commit_time)
        );
        // The same change read again is the same event; another position is another.
        let again = to_event("s", &customers(), &change, &position(1000, 1), Utc::now()).unwrap();
        assert_eq!(again.event_id(), e.event_id());
        assert_eq!(again.fingerprint(), e.fingerprint());
        let other = to_event("s", &customers(), &change, &position(2000, 1), now).unwrap();
        assert_ne!(other.event_id(), e.event_id());
    }

    #[test]
    fn a_server_clock_ahead_of_ours_does_not_break_the_contract() {
        let change = Captured {
            op: Op::Insert,
            before: None,
            after: Some(row(&[
                ("customer_id", Some("c-1")),
                ("visits", Some("0")),
                ("vip", Some("t")),
                ("updated_at", Some("2026-03-01 10:00:00+00")),
            ])),
            change_lsn: 5,
        };
        let position = position(100, 1);
        let earlier = position.commit_time - chrono::Duration::seconds(2);
        let e = to_event("s", &customers(), &change, &position, earlier).unwrap();
        assert_eq!(e.produced_at(), e.occurred_at());
    }

    #[test]
    fn a_missing_unchanged_value_without_the_row_before_is_an_error_naming_the_fix() {
        let change = Captured {
            op: Op::Update,
            before: None,
            after: Some(row(&[("customer_id", Some("c-1")), ("visits", Some("3"))])),
            change_lsn: 5,
        };
        let err = to_event("s", &customers(), &change, &position(100, 1), Utc::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("REPLICA IDENTITY FULL"), "{err}");
        // With the row before (REPLICA IDENTITY FULL), the value is taken from it.
        let full = Captured {
            before: Some(row(&[
                ("customer_id", Some("c-1")),
                ("visits", Some("1")),
                ("vip", Some("t")),
                ("updated_at", Some("2026-03-01 10:00:00+00")),
            ])),
            ..change
        };
        let e = to_event("s", &customers(), &full, &position(100, 1), Utc::now()).unwrap();
        let json: Value = serde_json::from_str(&e.to_canonical_json()).unwrap();
        assert_eq!(json["payload"]["after"]["vip"], true);
    }
}
