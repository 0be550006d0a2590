use std::collections::VecDeque;
use std::io::Read;
use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::client::Http;
use crate::decode;
use crate::error::{Error, Result};
use crate::value::{FromValue, Value, value_error};
use crate::wire::{Chunk, QueryData, RowType};

/// A column's Snowflake type (the `type` of the result's row type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Fixed,
    Real,
    Text,
    Boolean,
    Date,
    Time,
    TimestampNtz,
    TimestampLtz,
    TimestampTz,
    Variant,
    Object,
    Array,
    Binary,
    /// A type this client reads as text.
    Other,
}

impl ColumnType {
    fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "fixed" => Self::Fixed,
            "real" => Self::Real,
            "text" => Self::Text,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "time" => Self::Time,
            "timestamp_ntz" => Self::TimestampNtz,
            "timestamp_ltz" => Self::TimestampLtz,
            "timestamp_tz" => Self::TimestampTz,
            "variant" => Self::Variant,
            "object" => Self::Object,
            "array" => Self::Array,
            "binary" => Self::Binary,
            _ => Self::Other,
        }
    }
}

/// Column metadata from the result's row type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub ty: ColumnType,
    /// Digits after the point (NUMBER) or fractional-second digits (TIME, TIMESTAMP_*).
    pub scale: u32,
    pub precision: Option<u32>,
    pub nullable: bool,
}

impl From<&RowType> for Column {
    fn from(r: &RowType) -> Self {
        Self {
            name: r.name.clone(),
            ty: ColumnType::parse(&r.ty),
            scale: r.scale.unwrap_or(0).clamp(0, 38) as u32,
            precision: r.precision.map(|p| p.clamp(0, 38) as u32),
            nullable: r.nullable,
        }
    }
}

#[derive(Debug)]
enum Rows {
    Arrow(RecordBatch),
    Json(Vec<Vec<Option<String>>>),
}

/// Part of a result: rows kept as they arrived (Arrow arrays or JSON strings) and decoded only
/// when read.
#[derive(Debug)]
pub struct RowBatch {
    columns: Arc<[Column]>,
    rows: Rows,
}

impl RowBatch {
    pub fn num_rows(&self) -> usize {
        match &self.rows {
            Rows::Arrow(b) => b.num_rows(),
            Rows::Json(r) => r.len(),
        }
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    pub fn value(&self, row: usize, column: usize) -> Result<Value> {
        let meta = self
            .columns
            .get(column)
            .ok_or_else(|| Error::protocol(format!("column index {column} out of range")))?;
        if row >= self.num_rows() {
            return Err(Error::protocol(format!("row index {row} out of range")));
        }
        match &self.rows {
            Rows::Arrow(b) => decode::arrow_value(meta, b.column(column), row),
            Rows::Json(r) => {
                decode::json_value(meta, r[row].get(column).and_then(|c| c.as_deref()))
            }
        }
    }

    /// The cell converted to `T`; `Option<T>` accepts NULL.
    pub fn get<T: FromValue>(&self, row: usize, column: usize) -> Result<T> {
        let value = self.value(row, column)?;
        T::from_value(value).map_err(|reason| value_error(&self.columns[column].name, reason))
    }

    pub fn row(&self, row: usize) -> Result<Vec<Value>> {
        (0..self.columns.len())
            .map(|c| self.value(row, c))
            .collect()
    }

    /// The Arrow batch, when the result came as Arrow.
    pub fn arrow(&self) -> Option<&RecordBatch> {
        match &self.rows {
            Rows::Arrow(b) => Some(b),
            Rows::Json(_) => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Arrow,
    Json,
}

/// The result of one statement. Batches are handed over one at a time; remaining chunks are
/// downloaded only when asked for, so a large result is never held whole unless collected.
#[derive(Debug)]
pub struct QueryResult {
    query_id: Option<String>,
    columns: Arc<[Column]>,
    statement_type_id: Option<i64>,
    total: Option<u64>,
    format: Format,
    ready: VecDeque<RowBatch>,
    chunks: VecDeque<Chunk>,
    chunk_headers: Vec<(String, String)>,
    http: Http,
}

impl QueryResult {
    pub(crate) fn from_data(data: QueryData, http: Http) -> Result<Self> {
        let columns: Arc<[Column]> = data.rowtype.iter().map(Column::from).collect();
        let format = match data.query_result_format.as_deref() {
            Some("arrow") | Some("arrow_force") => Format::Arrow,
            _ => Format::Json,
        };
        let mut chunk_headers: Vec<(String, String)> =
            data.chunk_headers.unwrap_or_default().into_iter().collect();
        if chunk_headers.is_empty()
            && let Some(qrmk) = data.qrmk
        {
            chunk_headers.push((
                "x-amz-server-side-encryption-customer-algorithm".into(),
                "AES256".into(),
            ));
            chunk_headers.push(("x-amz-server-side-encryption-customer-key".into(), qrmk));
        }
        let mut result = Self {
            query_id: data.query_id,
            columns,
            statement_type_id: data.statement_type_id,
            total: data.total,
            format,
            ready: VecDeque::new(),
            chunks: data.chunks.into(),
            chunk_headers,
            http,
        };
        match format {
            Format::Arrow => {
                if let Some(b64) = data.rowset_base64.filter(|s| !s.is_empty()) {
                    let bytes = crate::bindings::base64_decode(&b64)
                        .map_err(|e| Error::protocol(format!("rowsetBase64 is not base64: {e}")))?;
                    result.push_arrow(&bytes)?;
                }
            }
            Format::Json => {
                if let Some(rows) = data.rowset.filter(|r| !r.is_empty()) {
                    result.ready.push_back(RowBatch {
                        columns: result.columns.clone(),
                        rows: Rows::Json(rows),
                    });
                }
            }
        }
        Ok(result)
    }

    fn push_arrow(&mut self, bytes: &[u8]) -> Result<()> {
        for batch in crate::arrow_stream::read(bytes)? {
            if batch.num_columns() != self.columns.len() {
                return Err(Error::protocol(format!(
                    "Arrow batch has {} columns, row type {}",
                    batch.num_columns(),
                    self.columns.len()
                )));
            }
            self.ready.push_back(RowBatch {
                columns: self.columns.clone(),
                rows: Rows::Arrow(batch),
            });
        }
        Ok(())
    }

    fn push_chunk(&mut self, body: Vec<u8>) -> Result<()> {
        // Chunks are often stored gzip-compressed without a Content-Encoding header.
        let body = if body.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::with_capacity(body.len() * 4);
            flate2::read::GzDecoder::new(body.as_slice())
                .read_to_end(&mut out)
                .map_err(|e| Error::protocol(format!("gzip chunk: {e}")))?;
            out
        } else {
            body
        };
        match self.format {
            Format::Arrow => self.push_arrow(&body),
            Format::Json => {
                // A JSON chunk is the rows without the enclosing brackets: `[..],[..]`.
                let mut text = Vec::with_capacity(body.len() + 2);
                text.push(b'[');
                text.extend_from_slice(&body);
                text.push(b']');
                let rows: Vec<Vec<Option<String>>> = serde_json::from_slice(&text)
                    .map_err(|e| Error::protocol(format!("JSON chunk: {e}")))?;
                self.ready.push_back(RowBatch {
                    columns: self.columns.clone(),
                    rows: Rows::Json(rows),
                });
                Ok(())
            }
        }
    }

    pub fn query_id(&self) -> Option<&str> {
        self.query_id.as_deref()
    }

    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Rows in the whole result, as the server counts them.
    pub fn total_rows(&self) -> Option<u64> {
        self.total
    }

    /// The next batch, downloading the next chunk if needed; `None` at the end.
    pub async fn next_batch(&mut self) -> Result<Option<RowBatch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            let Some(chunk) = self.chunks.pop_front() else {
                return Ok(None);
            };
            tracing::debug!(rows = chunk.row_count, "downloading result chunk");
            let body = self.http.get_bytes(&chunk.url, &self.chunk_headers).await?;
            self.push_chunk(body)?;
        }
    }

    /// Every row, decoded. For large results prefer [`QueryResult::next_batch`].
    pub async fn rows(mut self) -> Result<Vec<Vec<Value>>> {
        let mut rows = Vec::with_capacity(self.total.unwrap_or(0) as usize);
        while let Some(batch) = self.next_batch().await? {
            for r in 0..batch.num_rows() {
                rows.push(batch.row(r)?);
            }
        }
        Ok(rows)
    }

    /// Rows inserted, updated, deleted or merged, for DML statements.
    pub fn rows_affected(&self) -> Option<u64> {
        // DML statement type ids are 0x3000..0x4000; their one row holds the counts.
        let dml = self
            .statement_type_id
            .is_some_and(|t| (0x3000..0x4000).contains(&t));
        if !dml {
            return None;
        }
        let batch = self.ready.front()?;
        let mut total = 0u64;
        for c in 0..batch.columns().len() {
            total += batch.get::<Option<u64>>(0, c).ok().flatten()?;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Http;
    use crate::value::Decimal;
    use chrono::{NaiveDate, TimeZone, Utc};

    fn data(json: serde_json::Value) -> QueryData {
        serde_json::from_value(json).unwrap()
    }

    /// A JSON rowset as a real account sends it for every type: numbers with scale, timestamps
    /// with and without a zone, dates, booleans, VARIANT, NULLs.
    #[tokio::test]
    async fn json_rowset_fixture_decodes_every_type() {
        let fixture = include_str!("../tests/fixtures/json_rowset.json");
        let envelope: crate::wire::Envelope<QueryData> = serde_json::from_str(fixture).unwrap();
        let mut result = QueryResult::from_data(envelope.data.unwrap(), Http::for_tests()).unwrap();
        let batch = result.next_batch().await.unwrap().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.get::<i64>(0, 0).unwrap(), 42);
        assert_eq!(
            batch.get::<Decimal>(0, 1).unwrap(),
            Decimal {
                unscaled: 12345,
                scale: 2
            }
        );
        assert_eq!(batch.get::<Decimal>(0, 1).unwrap().to_string(), "123.45");
        assert_eq!(batch.get::<f64>(0, 2).unwrap(), 1.5);
        assert_eq!(batch.get::<String>(0, 3).unwrap(), "héllo");
        assert!(batch.get::<bool>(0, 4).unwrap());
        assert_eq!(
            batch.get::<NaiveDate>(0, 5).unwrap(),
            NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
        );
        assert_eq!(
            batch.value(0, 6).unwrap(),
            Value::TimestampNtz(
                NaiveDate::from_ymd_opt(2026, 3, 1)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 55, 250_000)
                    .unwrap()
            )
        );
        let tz = batch
            .get::<chrono::DateTime<chrono::FixedOffset>>(0, 7)
            .unwrap();
        assert_eq!(tz.offset().local_minus_utc(), 2 * 3600);
        assert_eq!(
            tz.with_timezone(&Utc),
            Utc.with_ymd_and_hms(2026, 3, 1, 21, 59, 55).unwrap()
        );
        assert_eq!(
            batch.get::<chrono::DateTime<Utc>>(0, 8).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 1, 23, 59, 55).unwrap()
        );
        assert_eq!(
            batch.get::<serde_json::Value>(0, 9).unwrap()["lines"][0]["quantity"],
            2
        );
        assert_eq!(batch.get::<Decimal>(0, 10).unwrap().to_string(), "-0.005");
        for c in 0..11 {
            assert_eq!(
                batch.value(1, c).unwrap(),
                Value::Null,
                "column {c} of the NULL row"
            );
        }
        assert!(
            batch
                .get::<i64>(1, 0)
                .unwrap_err()
                .to_string()
                .contains("\"ID\"")
        );
        assert_eq!(batch.get::<Option<i64>>(1, 0).unwrap(), None);
        assert!(result.next_batch().await.unwrap().is_none());
    }

    /// fakesnow's Arrow encoding (recorded from a real server): int64, decimal128, double, utf8,
    /// bool, date32, timestamp structs with and without a timezone, VARIANT as text, NULLs.
    #[tokio::test]
    async fn arrow_rowset_fixture_decodes_every_type() {
        let fixture = include_str!("../tests/fixtures/arrow_rowset.json");
        let envelope: crate::wire::Envelope<QueryData> = serde_json::from_str(fixture).unwrap();
        let mut result = QueryResult::from_data(envelope.data.unwrap(), Http::for_tests()).unwrap();
        let batch = result.next_batch().await.unwrap().unwrap();
        assert!(batch.arrow().is_some());
        let row: Vec<String> = batch.row(0).unwrap().iter().map(Value::to_string).collect();
        insta_like(&row);
        for c in 0..batch.columns().len() {
            assert_eq!(batch.value(1, c).unwrap(), Value::Null, "column {c}");
        }
    }

    fn insta_like(row: &[String]) {
        assert_eq!(
            row,
            &[
                "42",
                "123.45",
                "1.5",
                "héllo",
                "true",
                "2026-03-01",
                "2026-03-01 23:59:55.250",
                "2026-03-01T23:59:55+00:00",
                r#"{"lines":[{"quantity":2}]}"#,
            ]
        );
    }

    #[tokio::test]
    async fn json_chunks_are_bracketed_and_may_be_gzipped() {
        let mut result = QueryResult::from_data(
            data(serde_json::json!({"rowtype": [{"name": "N", "type": "fixed", "scale": 0}], "rowset": [["1"]], "queryResultFormat": "json"})),
            Http::for_tests(),
        )
        .unwrap();
        result.push_chunk(br#"["2"],["3"]"#.to_vec()).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, br#"["4"],[null]"#).unwrap();
        result.push_chunk(gz.finish().unwrap()).unwrap();
        let rows = result.rows().await.unwrap();
        let flat: Vec<Value> = rows.into_iter().flatten().collect();
        assert_eq!(
            flat,
            vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3),
                Value::Int(4),
                Value::Null
            ]
        );
    }
}
