//! Cells of JSON and Arrow rowsets to [`Value`]s, by the column's Snowflake type.
//!
//! Arrow layouts follow what Snowflake sends (and fakesnow mimics): NUMBER as Int8..Int64 with
//! the scale in the column metadata, or Decimal128; TIMESTAMP_NTZ/LTZ as an Int64 count of
//! 10^-scale seconds or a struct {epoch seconds, fraction nanoseconds}; TIMESTAMP_TZ as a struct
//! {epoch (scaled), timezone} or {epoch seconds, fraction, timezone}, the zone being the UTC offset
//! in minutes plus 1440; DATE as days (Date32); TIME as an Int64 count of 10^-scale seconds.
//! JSON rowsets carry every value as a string in the same units.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, Time64NanosecondType, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_schema::{DataType, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Utc};

use crate::error::Error;
use crate::result::{Column, ColumnType};
use crate::value::{Decimal, Value, value_error};

const EPOCH_DAY: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");

fn pow10(scale: u32) -> i128 {
    10i128.pow(scale)
}

/// Seconds and nanoseconds from a count of 10^-scale seconds.
fn split_scaled(value: i128, scale: u32) -> (i64, u32) {
    let unit = pow10(scale);
    let secs = value.div_euclid(unit);
    let frac = value.rem_euclid(unit);
    let nanos = if scale <= 9 {
        frac * pow10(9 - scale)
    } else {
        frac / pow10(scale - 9)
    };
    (secs as i64, nanos as u32)
}

fn utc(column: &Column, secs: i64, nanos: u32) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| value_error(&column.name, format!("timestamp {secs}s out of range")))
}

fn with_zone(column: &Column, at: DateTime<Utc>, zone: i64) -> Result<Value, Error> {
    let offset = FixedOffset::east_opt(((zone - 1440) * 60) as i32)
        .ok_or_else(|| value_error(&column.name, format!("time zone index {zone} out of range")))?;
    Ok(Value::TimestampTz(at.with_timezone(&offset)))
}

fn timestamp(column: &Column, at: DateTime<Utc>) -> Value {
    match column.ty {
        ColumnType::TimestampLtz => Value::TimestampLtz(at),
        ColumnType::TimestampTz => Value::TimestampTz(at.fixed_offset()),
        _ => Value::TimestampNtz(at.naive_utc()),
    }
}

fn time_of_day(column: &Column, secs: i64, nanos: u32) -> Result<Value, Error> {
    NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, nanos)
        .map(Value::Time)
        .ok_or_else(|| {
            value_error(
                &column.name,
                format!("time {secs}.{nanos:09}s out of range"),
            )
        })
}

fn fixed(unscaled: i128, scale: u32) -> Value {
    if scale == 0
        && let Ok(v) = i64::try_from(unscaled)
    {
        return Value::Int(v);
    }
    Value::Decimal(Decimal { unscaled, scale })
}

fn variant(column: &Column, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text)
        .map(Value::Variant)
        .map_err(|e| value_error(&column.name, format!("VARIANT is not JSON: {e}")))
}

fn int_of(array: &ArrayRef, row: usize) -> Option<i128> {
    Some(match array.data_type() {
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).into(),
        DataType::Decimal128(_, _) => array.as_primitive::<Decimal128Type>().value(row),
        _ => return None,
    })
}

fn struct_int(s: &StructArray, name: &str, row: usize) -> Option<i128> {
    s.column_by_name(name).and_then(|a| int_of(a, row))
}

pub(crate) fn arrow_value(column: &Column, array: &ArrayRef, row: usize) -> Result<Value, Error> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let scale = column.scale;
    let unexpected = || {
        value_error(
            &column.name,
            format!(
                "unexpected Arrow type {} for {:?}",
                array.data_type(),
                column.ty
            ),
        )
    };
    match (column.ty, array.data_type()) {
        (ColumnType::Fixed, DataType::Decimal128(_, s)) => {
            let v = array.as_primitive::<Decimal128Type>().value(row);
            Ok(fixed(v, (*s).max(0) as u32))
        }
        (ColumnType::Fixed, _) => int_of(array, row)
            .map(|v| fixed(v, scale))
            .ok_or_else(unexpected),
        (ColumnType::Real, DataType::Float64) => {
            Ok(Value::Float(array.as_primitive::<Float64Type>().value(row)))
        }
        (ColumnType::Real, DataType::Float32) => Ok(Value::Float(
            array.as_primitive::<Float32Type>().value(row).into(),
        )),
        (_, DataType::Boolean) => Ok(Value::Bool(array.as_boolean().value(row))),
        (ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) => {
            let text = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(row),
                DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                _ => array.as_string_view().value(row),
            };
            match ty {
                ColumnType::Variant | ColumnType::Object | ColumnType::Array => {
                    variant(column, text)
                }
                _ => Ok(Value::Text(text.to_owned())),
            }
        }
        (_, DataType::Binary) => Ok(Value::Binary(array.as_binary::<i32>().value(row).to_vec())),
        (_, DataType::LargeBinary) => {
            Ok(Value::Binary(array.as_binary::<i64>().value(row).to_vec()))
        }
        (ColumnType::Date, DataType::Date32) => {
            let days = array.as_primitive::<Date32Type>().value(row);
            EPOCH_DAY
                .checked_add_signed(chrono::Duration::days(days.into()))
                .map(Value::Date)
                .ok_or_else(|| value_error(&column.name, format!("date {days} days out of range")))
        }
        (ColumnType::Time, DataType::Time64(TimeUnit::Nanosecond)) => {
            let (secs, nanos) = split_scaled(
                array
                    .as_primitive::<Time64NanosecondType>()
                    .value(row)
                    .into(),
                9,
            );
            time_of_day(column, secs, nanos)
        }
        (ColumnType::Time, _) => {
            let v = int_of(array, row).ok_or_else(unexpected)?;
            let (secs, nanos) = split_scaled(v, scale);
            time_of_day(column, secs, nanos)
        }
        (
            ColumnType::TimestampNtz | ColumnType::TimestampLtz | ColumnType::TimestampTz,
            DataType::Struct(fields),
        ) => {
            let s = array.as_struct();
            // pyarrow producers leave the struct row valid and null its children instead.
            if s.column_by_name("epoch")
                .is_some_and(|epoch| epoch.is_null(row))
            {
                return Ok(Value::Null);
            }
            let zone = struct_int(s, "timezone", row);
            let (secs, nanos) = match struct_int(s, "fraction", row) {
                Some(fraction) => (
                    struct_int(s, "epoch", row).ok_or_else(unexpected)? as i64,
                    fraction as u32,
                ),
                // {epoch, timezone}: the epoch is scaled like a plain Int64 timestamp.
                None => split_scaled(struct_int(s, "epoch", row).ok_or_else(unexpected)?, scale),
            };
            let at = utc(column, secs, nanos)?;
            match (column.ty, zone) {
                (ColumnType::TimestampTz, Some(zone)) => with_zone(column, at, zone as i64),
                _ if fields.is_empty() => Err(unexpected()),
                _ => Ok(timestamp(column, at)),
            }
        }
        (
            ColumnType::TimestampNtz | ColumnType::TimestampLtz | ColumnType::TimestampTz,
            DataType::Timestamp(unit, _),
        ) => {
            let (v, unit_scale) = match unit {
                TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row), 0),
                TimeUnit::Millisecond => (
                    array.as_primitive::<TimestampMillisecondType>().value(row),
                    3,
                ),
                TimeUnit::Microsecond => (
                    array.as_primitive::<TimestampMicrosecondType>().value(row),
                    6,
                ),
                TimeUnit::Nanosecond => (
                    array.as_primitive::<TimestampNanosecondType>().value(row),
                    9,
                ),
            };
            let (secs, nanos) = split_scaled(v.into(), unit_scale);
            Ok(timestamp(column, utc(column, secs, nanos)?))
        }
        (ColumnType::TimestampNtz | ColumnType::TimestampLtz | ColumnType::TimestampTz, _) => {
            let v = int_of(array, row).ok_or_else(unexpected)?;
            let (secs, nanos) = split_scaled(v, scale);
            Ok(timestamp(column, utc(column, secs, nanos)?))
        }
        _ => Err(unexpected()),
    }
}

pub(crate) fn json_value(column: &Column, cell: Option<&str>) -> Result<Value, Error> {
    let Some(text) = cell else {
        return Ok(Value::Null);
    };
    let bad = |what: &str| value_error(&column.name, format!("{text:?} is not {what}"));
    let scaled = |s: &str, scale: u32| Decimal::parse(s, scale).ok_or_else(|| bad("a number"));
    match column.ty {
        ColumnType::Fixed => {
            let d = scaled(text, column.scale)?;
            Ok(fixed(d.unscaled, d.scale))
        }
        ColumnType::Real => match text {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "inf" | "Infinity" => Ok(Value::Float(f64::INFINITY)),
            "-inf" | "-Infinity" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => text.parse().map(Value::Float).map_err(|_| bad("a float")),
        },
        ColumnType::Boolean => match text {
            "1" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(bad("a boolean")),
        },
        ColumnType::Date => {
            let days: i64 = text.parse().map_err(|_| bad("a day number"))?;
            EPOCH_DAY
                .checked_add_signed(chrono::Duration::days(days))
                .map(Value::Date)
                .ok_or_else(|| bad("a date"))
        }
        ColumnType::Time => {
            let (secs, nanos) = split_scaled(scaled(text, 9)?.unscaled, 9);
            time_of_day(column, secs, nanos)
        }
        ColumnType::TimestampNtz | ColumnType::TimestampLtz => {
            let (secs, nanos) = split_scaled(scaled(text, 9)?.unscaled, 9);
            Ok(timestamp(column, utc(column, secs, nanos)?))
        }
        ColumnType::TimestampTz => {
            let (instant, zone) = text.split_once(' ').unwrap_or((text, "1440"));
            let (secs, nanos) = split_scaled(scaled(instant, 9)?.unscaled, 9);
            let zone: i64 = zone.parse().map_err(|_| bad("a TIMESTAMP_TZ"))?;
            with_zone(column, utc(column, secs, nanos)?, zone)
        }
        ColumnType::Variant | ColumnType::Object | ColumnType::Array => variant(column, text),
        ColumnType::Binary => hex::decode(text).map(Value::Binary).map_err(|_| bad("hex")),
        ColumnType::Text | ColumnType::Other => Ok(Value::Text(text.to_owned())),
    }
}
