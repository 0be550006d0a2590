//! The object formats: gzipped canonical NDJSON (one event per line, what Snowpipe loads) or
//! Parquet (typed envelope columns plus the payload as JSON). Both are deterministic, so the
//! same events always give the same bytes and the same content-addressed key.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use events::Event;
use sha2::{Digest, Sha256};

use crate::FormatError;

/// How a raw file is written: `ndjson` (gzipped canonical JSON lines) or `parquet`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    #[default]
    #[serde(rename = "ndjson")]
    NdjsonGz,
    Parquet,
}

impl FileFormat {
    /// The name used in flags and scenarios.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::NdjsonGz => "ndjson",
            FileFormat::Parquet => "parquet",
        }
    }
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ndjson" => Ok(FileFormat::NdjsonGz),
            "parquet" => Ok(FileFormat::Parquet),
            other => Err(format!(
                "unknown file format {other:?}: expected ndjson or parquet"
            )),
        }
    }
}

impl FileFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::NdjsonGz => "ndjson.gz",
            FileFormat::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::NdjsonGz => "application/x-ndjson",
            FileFormat::Parquet => "application/vnd.apache.parquet",
        }
    }

    /// The format of an object, from its key.
    pub fn of_key(key: &str) -> Option<Self> {
        if key.ends_with(".ndjson.gz") {
            Some(FileFormat::NdjsonGz)
        } else if key.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else {
            None
        }
    }
}

/// An id derived from the bytes: a rewrite of the same events gets the same key.
pub fn content_id(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..16])
}

pub fn encode<'a>(
    format: FileFormat,
    events: impl ExactSizeIterator<Item = &'a Event>,
) -> Result<Vec<u8>, FormatError> {
    match format {
        FileFormat::NdjsonGz => encode_ndjson_gz(events),
        FileFormat::Parquet => encode_parquet(events),
    }
}

fn encode_ndjson_gz<'a>(events: impl Iterator<Item = &'a Event>) -> Result<Vec<u8>, FormatError> {
    let mut lines = Vec::with_capacity(64 * 1024);
    for event in events {
        event.write_canonical_json(&mut lines);
        lines.push(b'\n');
    }
    // Level 1: the files are re-read once; speed beats the last few percent of size.
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(lines.len() / 4),
        flate2::Compression::fast(),
    );
    gz.write_all(&lines)
        .and_then(|()| gz.finish())
        .map_err(|e| FormatError::Encode(e.to_string()))
}

fn schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("occurred_at", ts.clone(), false),
        Field::new("produced_at", ts, false),
        Field::new("schema_version", DataType::UInt32, false),
        Field::new("payload", DataType::Utf8, false),
    ]))
}

fn encode_parquet<'a>(
    events: impl ExactSizeIterator<Item = &'a Event>,
) -> Result<Vec<u8>, FormatError> {
    let n = events.len();
    let (mut ids, mut sources, mut types) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut occurred, mut produced, mut versions, mut payloads) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut json = Vec::new();
    for event in events {
        ids.push(event.event_id().to_owned());
        sources.push(event.source().as_str());
        types.push(event.event_type().as_str());
        occurred.push(event.occurred_at().timestamp_micros());
        produced.push(event.produced_at().timestamp_micros());
        versions.push(event.schema_version());
        json.clear();
        event.write_payload_json(&mut json);
        payloads.push(String::from_utf8(json.clone()).expect("JSON is UTF-8"));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(sources)),
        Arc::new(StringArray::from(types)),
        Arc::new(TimestampMicrosecondArray::from(occurred).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(produced).with_timezone("UTC")),
        Arc::new(UInt32Array::from(versions)),
        Arc::new(StringArray::from(payloads)),
    ];
    let batch =
        RecordBatch::try_new(schema(), columns).map_err(|e| FormatError::Encode(e.to_string()))?;
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema(), Some(props))
        .map_err(|e| FormatError::Encode(e.to_string()))?;
    writer
        .write(&batch)
        .and_then(|()| writer.close().map(drop))
        .map_err(|e| FormatError::Encode(e.to_string()))?;
    Ok(out)
}

/// The NDJSON text of an object: decompressed lines, or Parquet rows as canonical JSON lines.
pub fn to_ndjson(format: FileFormat, bytes: &[u8]) -> Result<Vec<u8>, FormatError> {
    match format {
        FileFormat::NdjsonGz => {
            let mut out = Vec::with_capacity(bytes.len() * 4);
            flate2::read::GzDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| FormatError::Decode(format!("not gzip: {e}")))?;
            Ok(out)
        }
        FileFormat::Parquet => {
            let mut out = Vec::new();
            for event in decode_parquet(bytes)? {
                event.write_canonical_json(&mut out);
                out.push(b'\n');
            }
            Ok(out)
        }
    }
}

/// Reads the events of an object back, each checked against the contract.
pub fn decode(format: FileFormat, bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
    match format {
        FileFormat::NdjsonGz => {
            let text = to_ndjson(format, bytes)?;
            let text = std::str::from_utf8(&text)
                .map_err(|e| FormatError::Decode(format!("not UTF-8: {e}")))?;
            text.lines()
                .enumerate()
                .map(|(i, line)| {
                    Event::from_canonical_json(line)
                        .map_err(|e| FormatError::Decode(format!("line {}: {e}", i + 1)))
                })
                .collect()
        }
        FileFormat::Parquet => decode_parquet(bytes),
    }
}

fn decode_parquet(bytes: &[u8]) -> Result<Vec<Event>, FormatError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{TimestampMicrosecondType, UInt32Type};
    let err = |e: &dyn std::fmt::Display| FormatError::Decode(format!("parquet: {e}"));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .and_then(|b| b.build())
    .map_err(|e| err(&e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| FormatError::Decode(format!("parquet: no column `{name}`")))
        };
        let ids = column("event_id")?.as_string::<i32>();
        let types = column("type")?.as_string::<i32>();
        let occurred = column("occurred_at")?.as_primitive::<TimestampMicrosecondType>();
        let produced = column("produced_at")?.as_primitive::<TimestampMicrosecondType>();
        let versions = column("schema_version")?.as_primitive::<UInt32Type>();
        let payloads = column("payload")?.as_string::<i32>();
        for row in 0..batch.num_rows() {
            let at = |micros: i64| {
                chrono::DateTime::from_timestamp_micros(micros)
                    .ok_or_else(|| FormatError::Decode(format!("row {row}: bad timestamp")))
            };
            let event = Event::from_parts(
                ids.value(row),
                types.value(row),
                at(occurred.value(row))?,
                at(produced.value(row))?,
                versions.value(row),
                payloads.value(row),
            )
            .map_err(|e| FormatError::Decode(format!("row {}: {e}", row + 1)))?;
            out.push(event);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn events(seed: u64, n: usize) -> Vec<Event> {
        let scenario = synth::Scenario::parse(
            "t.toml",
            r#"name = "t"
seed = 1
max_events = 400
[rates]
cards = 5.0
orders = 20.0
manufacturing = 5.0
"#,
        )
        .unwrap();
        synth::Generator::new(&scenario, Some(seed))
            .first_events()
            .take(n)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Both formats give the events back exactly, and the same events the same bytes.
        #[test]
        fn objects_round_trip_and_are_deterministic(seed in any::<u64>(), n in 1usize..200, parquet in any::<bool>()) {
            let format = if parquet { FileFormat::Parquet } else { FileFormat::NdjsonGz };
            let input = events(seed, n);
            let bytes = encode(format, input.iter()).unwrap();
            prop_assert_eq!(&bytes, &encode(format, input.iter()).unwrap());
            prop_assert_eq!(decode(format, &bytes).unwrap(), input.clone());
            let ndjson = String::from_utf8(to_ndjson(format, &bytes).unwrap()).unwrap();
            let lines: Vec<String> = input.iter().map(Event::to_canonical_json).collect();
            prop_assert_eq!(ndjson.lines().collect::<Vec<_>>(), lines);
        }
    }

    #[test]
    fn formats_are_named_as_in_flags_and_keys() {
        for format in [FileFormat::NdjsonGz, FileFormat::Parquet] {
            assert_eq!(format.name().parse::<FileFormat>().unwrap(), format);
            let key = format!("raw/x.{}", format.extension());
            assert_eq!(FileFormat::of_key(&key), Some(format));
        }
        let err = "csv".parse::<FileFormat>().unwrap_err();
        assert!(err.contains("expected ndjson or parquet"), "{err}");
    }
}
