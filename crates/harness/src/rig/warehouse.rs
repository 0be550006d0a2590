//! What the harness reads from and resets in the warehouse: the marts, the RAW counts that
//! quiescence waits on, and the partition check of loaded files.

use rawfiles::partition::PartitionKey;
use snowflake::{Client, Value};

use crate::prove::mart::{Cell, Kind, MartSpec, Marts, Table};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("{what}: {source}")]
    Query {
        what: String,
        #[source]
        source: snowflake::Error,
    },
    #[error("{table}.{column}: unexpected value {value} for a {kind:?} column")]
    Shape {
        table: &'static str,
        column: &'static str,
        kind: Kind,
        value: String,
    },
}

fn query_err(what: impl Into<String>) -> impl FnOnce(snowflake::Error) -> WarehouseError {
    let what = what.into();
    move |source| WarehouseError::Query { what, source }
}

/// The schema dbt builds the marts in (see infra/dbt/macros/generate_schema_name.sql).
pub const MARTS_SCHEMA: &str = "SLUICE.MARTS";

/// Reads the three marts.
pub async fn read_marts(sf: &Client) -> Result<Marts, WarehouseError> {
    let mut marts = Marts::empty();
    for spec in crate::prove::mart::ALL {
        *marts.table_mut(spec) = read_table(sf, spec).await?;
    }
    Ok(marts)
}

/// Reads one model of the marts schema, by its spec's columns.
pub async fn read_table(sf: &Client, spec: &'static MartSpec) -> Result<Table, WarehouseError> {
    let sql = format!(
        "SELECT {} FROM {MARTS_SCHEMA}.{}",
        spec.column_names().collect::<Vec<_>>().join(", "),
        spec.table
    );
    let what = format!("reading {MARTS_SCHEMA}.{}", spec.table);
    let mut table = Table::new(spec);
    for values in rows(sf, &sql, &what).await? {
        let cells = values
            .into_iter()
            .zip(spec.columns)
            .map(|(value, column)| cell(spec, column.name, column.kind, value))
            .collect::<Result<Vec<_>, _>>()?;
        table.insert(cells);
    }
    Ok(table)
}

fn cell(
    spec: &MartSpec,
    column: &'static str,
    kind: Kind,
    value: Value,
) -> Result<Cell, WarehouseError> {
    let shape = |value: &Value| WarehouseError::Shape {
        table: spec.table,
        column,
        kind,
        value: format!("{value:?}"),
    };
    Ok(match (kind, value) {
        (_, Value::Null) => Cell::Null,
        (Kind::Int, Value::Int(v)) => Cell::Int(v),
        (Kind::Int, Value::Float(v)) if v.fract() == 0.0 && v.abs() < 9e15 => Cell::Int(v as i64),
        (Kind::Int, Value::Decimal(d)) => {
            let text = d.to_string();
            let v = text.strip_suffix(".0").unwrap_or(&text);
            Cell::Int(v.parse().map_err(|_| shape(&Value::Decimal(d)))?)
        }
        (Kind::Bool, Value::Bool(v)) => Cell::Bool(v),
        (Kind::Text, Value::Text(v)) => Cell::Text(v),
        (Kind::Date, Value::Date(v)) => Cell::Date(v),
        (Kind::Timestamp, Value::TimestampNtz(v)) => Cell::Timestamp(v),
        (Kind::Timestamp, Value::TimestampLtz(v)) => Cell::Timestamp(v.naive_utc()),
        (Kind::Ratio, Value::Float(v)) => Cell::Ratio(v),
        (Kind::Ratio, Value::Int(v)) => Cell::Ratio(v as f64),
        (Kind::Ratio, Value::Decimal(d)) => Cell::Ratio(
            d.to_string()
                .parse()
                .map_err(|_| shape(&Value::Decimal(d)))?,
        ),
        (_, other) => return Err(shape(&other)),
    })
}

/// Rows and distinct event ids in one RAW table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RawCount {
    pub rows: u64,
    pub distinct_events: u64,
}

async fn rows(sf: &Client, sql: &str, what: &str) -> Result<Vec<Vec<Value>>, WarehouseError> {
    let result = sf.query(sql, &[]).await.map_err(query_err(what))?;
    result.rows().await.map_err(query_err(what))
}

async fn count(sf: &Client, sql: &str, what: &str) -> Result<Vec<u64>, WarehouseError> {
    let row = rows(sf, sql, what)
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(row
        .into_iter()
        .map(|v| match v {
            Value::Int(n) => n.max(0) as u64,
            Value::Decimal(d) => d.to_string().parse().unwrap_or(0),
            Value::Float(f) => f as u64,
            _ => 0,
        })
        .collect())
}

pub async fn raw_count(sf: &Client, table: &str) -> Result<RawCount, WarehouseError> {
    let counts = count(
        sf,
        &format!("SELECT COUNT(*), COUNT(DISTINCT EVENT:event_id::string) FROM SLUICE.RAW.{table}"),
        &format!("counting SLUICE.RAW.{table}"),
    )
    .await?;
    Ok(RawCount {
        rows: counts[0],
        distinct_events: counts[1],
    })
}

/// Transactions of the change log that arrived in part: `(commit LSN, changes, tx_size)` of
/// each streamed transaction whose distinct changes in RAW.CDC_CHANGES are not its size.
pub async fn partial_transactions(sf: &Client) -> Result<Vec<(String, u64, u64)>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT c, COUNT(DISTINCT id), MAX(n) FROM ( \
           SELECT EVENT:payload:source:commit_lsn::string AS c, EVENT:event_id::string AS id, \
                  EVENT:payload:source:tx_size::int AS n \
           FROM SLUICE.RAW.CDC_CHANGES WHERE EVENT:payload:op::string <> 'r') \
         GROUP BY c HAVING COUNT(DISTINCT id) <> MAX(n) ORDER BY c",
        "reading RAW.CDC_CHANGES for partial transactions",
    )
    .await?;
    let n = |v: &Value| match v {
        Value::Int(n) => (*n).max(0) as u64,
        Value::Decimal(d) => d.to_string().parse().unwrap_or(0),
        Value::Float(f) => *f as u64,
        _ => 0,
    };
    Ok(rows
        .into_iter()
        .map(|r| (r[0].to_string(), n(&r[1]), n(&r[2])))
        .collect())
}

/// Distinct event ids over both RAW tables, and how many rows staging will drop as copies.
pub async fn raw_union(sf: &Client) -> Result<RawCount, WarehouseError> {
    let counts = count(
        sf,
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM ( \
           SELECT EVENT:event_id::string AS id FROM SLUICE.RAW.EVENTS_STREAM \
           UNION ALL SELECT EVENT:event_id::string AS id FROM SLUICE.RAW.EVENTS_BACKFILL)",
        "counting RAW",
    )
    .await?;
    Ok(RawCount {
        rows: counts[0],
        distinct_events: counts[1],
    })
}

/// Files the pipe recorded, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadHistory {
    pub loaded: u64,
    pub failed: u64,
}

pub async fn load_history(sf: &Client) -> Result<LoadHistory, WarehouseError> {
    let counts = count(
        sf,
        "SELECT COUNT_IF(STATUS = 'LOADED'), COUNT_IF(STATUS <> 'LOADED') FROM SLUICE.RAW.LOAD_HISTORY",
        "counting SLUICE.RAW.LOAD_HISTORY",
    )
    .await?;
    Ok(LoadHistory {
        loaded: counts[0],
        failed: counts[1],
    })
}

/// Files recorded as loaded more than once (the same key and ETag): Snowpipe's
/// at-most-once-per-file broken. Each as `key (etag) xN`.
pub async fn files_loaded_twice(sf: &Client) -> Result<Vec<String>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT OBJECT_KEY, ETAG, COUNT(*) FROM SLUICE.RAW.LOAD_HISTORY \
         WHERE STATUS = 'LOADED' GROUP BY OBJECT_KEY, ETAG HAVING COUNT(*) > 1 \
         ORDER BY OBJECT_KEY",
        "reading SLUICE.RAW.LOAD_HISTORY for files loaded twice",
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let text = |i: usize| r.get(i).map(ToString::to_string).unwrap_or_default();
            format!("{} ({}) x{}", text(0), text(1), text(2))
        })
        .collect())
}

/// The run's problem line for files loaded more than once (the first five named), if any.
pub fn loaded_twice_problem(files: &[String]) -> Option<String> {
    (!files.is_empty()).then(|| {
        format!(
            "{} files loaded more than once: {}",
            files.len(),
            files.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Every distinct event id in both RAW tables.
pub async fn raw_event_ids(
    sf: &Client,
) -> Result<std::collections::HashSet<String>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT DISTINCT id FROM ( \
           SELECT EVENT:event_id::string AS id FROM SLUICE.RAW.EVENTS_STREAM \
           UNION ALL SELECT EVENT:event_id::string AS id FROM SLUICE.RAW.EVENTS_BACKFILL)",
        "reading RAW event ids",
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Value::Text(id)) => Some(id),
            _ => None,
        })
        .collect())
}

/// Empties what a run writes to, so the warehouse holds exactly one run's events, and drops
/// the marts, so none left from an earlier run can pass for this one's.
pub async fn reset(sf: &Client) -> Result<(), WarehouseError> {
    for table in [
        "EVENTS_STREAM",
        "EVENTS_BACKFILL",
        "CDC_CHANGES",
        "LOAD_HISTORY",
    ] {
        sf.execute(&format!("DELETE FROM SLUICE.RAW.{table}"), &[])
            .await
            .map_err(query_err(format!("emptying SLUICE.RAW.{table}")))?;
    }
    sf.execute(&format!("CREATE SCHEMA IF NOT EXISTS {MARTS_SCHEMA}"), &[])
        .await
        .map_err(query_err(format!("creating {MARTS_SCHEMA}")))?;
    for spec in crate::prove::mart::ALL
        .into_iter()
        .chain(crate::prove::mart::CDC)
    {
        let table = format!("{MARTS_SCHEMA}.{}", spec.table);
        sf.execute(&format!("DROP TABLE IF EXISTS {table}"), &[])
            .await
            .map_err(query_err(format!("dropping {table}")))?;
    }
    Ok(())
}

/// Whether all three marts exist.
pub async fn marts_exist(sf: &Client) -> Result<bool, WarehouseError> {
    let counts = count(
        sf,
        "SELECT COUNT(*) FROM SLUICE.INFORMATION_SCHEMA.TABLES \
         WHERE TABLE_SCHEMA = 'MARTS' \
         AND TABLE_NAME IN ('DIM_CARD', 'FCT_ORDERS', 'FCT_BATCH_PERFORMANCE')",
        "looking up the marts",
    )
    .await?;
    Ok(counts.first() == Some(&3))
}

/// A streamed event loaded from a file whose partition is not the event's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misplaced {
    pub file: String,
    pub event_id: String,
    pub source: String,
    pub occurred_at: String,
}

/// Checks every streamed row against its file's partition: `source=` must be the event's source
/// and `year=/month=/day=` the UTC date of its `occurred_at` (late events included).
/// Returns the rows checked and the misplaced ones.
pub async fn check_partitions(sf: &Client) -> Result<(u64, Vec<Misplaced>), WarehouseError> {
    let what = "reading RAW.EVENTS_STREAM partitions";
    let rows = rows(
        sf,
        "SELECT FILE_NAME, EVENT:event_id::string, EVENT:source::string, \
         EVENT:occurred_at::string FROM SLUICE.RAW.EVENTS_STREAM",
        what,
    )
    .await?;
    let checked = rows.len() as u64;
    let mut misplaced = Vec::new();
    for values in rows {
        let text = |i: usize| match &values[i] {
            Value::Text(s) => s.clone(),
            other => other.to_string(),
        };
        let (file, event_id, source, occurred_at) = (text(0), text(1), text(2), text(3));
        let in_place = PartitionKey::parse(&file).is_some_and(|key| {
            key.source.as_str() == source
                && occurred_at.get(..10) == Some(&key.date.format("%Y-%m-%d").to_string())
        });
        if !in_place {
            misplaced.push(Misplaced {
                file,
                event_id,
                source,
                occurred_at,
            });
        }
    }
    Ok((checked, misplaced))
}

/// The first `count` files the pipe loaded, as `(key, etag)`: what a duplicate-notice fault
/// notifies again.
pub async fn first_loaded_files(
    sf: &Client,
    count: u32,
) -> Result<Vec<(String, String)>, WarehouseError> {
    let rows = rows(
        sf,
        &format!(
            "SELECT OBJECT_KEY, ETAG FROM SLUICE.RAW.LOAD_HISTORY WHERE STATUS = 'LOADED' \
             ORDER BY LOADED_AT LIMIT {count}"
        ),
        "reading SLUICE.RAW.LOAD_HISTORY for loaded files",
    )
    .await?;
    Ok(text_pairs(rows))
}

/// Rows and distinct events in RAW.EVENTS_STREAM per source.
pub async fn stream_counts_by_source(
    sf: &Client,
) -> Result<std::collections::BTreeMap<String, (u64, u64)>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT EVENT:source::string, COUNT(*), COUNT(DISTINCT EVENT:event_id::string) \
         FROM SLUICE.RAW.EVENTS_STREAM GROUP BY 1",
        "counting RAW.EVENTS_STREAM per source",
    )
    .await?;
    let count = |v: &Value| match v {
        Value::Int(n) => (*n).max(0) as u64,
        Value::Decimal(d) => d.to_string().parse().unwrap_or(0),
        Value::Float(f) => *f as u64,
        _ => 0,
    };
    Ok(rows
        .iter()
        .filter_map(|row| match row.as_slice() {
            [Value::Text(source), n, distinct] => {
                Some((source.clone(), (count(n), count(distinct))))
            }
            _ => None,
        })
        .collect())
}

/// Every distinct streamed event's first load: `(produced_at, file)`, for freshness.
pub async fn first_loads_of_stream(sf: &Client) -> Result<Vec<(String, String)>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT EVENT:produced_at::string, FILE_NAME FROM SLUICE.RAW.EVENTS_STREAM \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY EVENT:event_id::string ORDER BY LOADED_AT) = 1",
        "reading RAW.EVENTS_STREAM for freshness",
    )
    .await?;
    Ok(text_pairs(rows))
}

/// Every streamed row change's first load (snapshot reads left out): `(committed_at, file)`,
/// for the change log's lag.
pub async fn first_loads_of_changes(sf: &Client) -> Result<Vec<(String, String)>, WarehouseError> {
    let rows = rows(
        sf,
        "SELECT EVENT:occurred_at::string, FILE_NAME FROM SLUICE.RAW.CDC_CHANGES \
         WHERE EVENT:payload:op::string <> 'r' \
         QUALIFY ROW_NUMBER() OVER (PARTITION BY EVENT:event_id::string ORDER BY LOADED_AT) = 1",
        "reading RAW.CDC_CHANGES for the lag",
    )
    .await?;
    Ok(text_pairs(rows))
}

/// Rows of two text columns as pairs (rows of any other shape left out).
fn text_pairs(rows: Vec<Vec<Value>>) -> Vec<(String, String)> {
    rows.into_iter()
        .filter_map(|row| {
            let mut row = row.into_iter();
            match (row.next(), row.next()) {
                (Some(Value::Text(a)), Some(Value::Text(b))) => Some((a, b)),
                _ => None,
            }
        })
        .collect()
}
