//! Loading one notified object into RAW.EVENTS_STREAM, at most once per key and ETag.
//!
//! Each load: check the history, download, check every line is a JSON object (fakesnow answers
//! a malformed file with an endless 500, and a named line is a better error anyway), PUT the
//! lines to a stage folder of their own, then in one transaction COPY them into a scratch table,
//! insert them with the file name and load time, and record the load. A failure is recorded
//! against the file and the next file proceeds.

use batcher::FileFormat;
use batcher::notice::ObjectNotice;
use snowflake::{Binding, PutOptions, Value};

use crate::PipeError;
use crate::metrics::Metrics;

const STAGE: &str = "@SLUICE.RAW.EVENTS_STAGE";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded {
        rows: u64,
    },
    /// This key and ETag are already in the load history (a duplicate notice or redelivery).
    AlreadyLoaded,
    /// The file cannot be loaded; the error is in RAW.LOAD_HISTORY.
    Failed {
        error: String,
    },
}

pub struct Loader {
    client: snowflake::Client,
    s3: aws_sdk_s3::Client,
    scratch: String,
}

impl Loader {
    pub async fn new(client: snowflake::Client, s3: aws_sdk_s3::Client) -> Result<Self, PipeError> {
        // One scratch table per loader, so two pipes never share one.
        let scratch = format!("SLUICE.RAW.PIPE_SCRATCH_{}", std::process::id());
        client
            .execute(
                &format!("CREATE TABLE IF NOT EXISTS {scratch} (V VARIANT)"),
                &[],
            )
            .await?;
        Ok(Self {
            client,
            s3,
            scratch,
        })
    }

    pub async fn close(self) {
        let _ = self
            .client
            .execute(&format!("DROP TABLE IF EXISTS {}", self.scratch), &[])
            .await;
        let _ = self.client.close().await;
    }

    async fn already_loaded(&self, key: &str, etag: &str) -> Result<bool, PipeError> {
        let rows = self
            .client
            .query(
                "SELECT COUNT(*) FROM SLUICE.RAW.LOAD_HISTORY WHERE OBJECT_KEY = ? AND ETAG = ?",
                &[key.into(), etag.into()],
            )
            .await?
            .rows()
            .await?;
        Ok(!matches!(
            rows.first().and_then(|r| r.first()),
            Some(Value::Int(0)) | None
        ))
    }

    async fn record(
        &self,
        key: &str,
        etag: &str,
        rows: u64,
        status: &str,
        error: Option<&str>,
    ) -> Result<(), PipeError> {
        self.client
            .execute(
                "INSERT INTO SLUICE.RAW.LOAD_HISTORY (OBJECT_KEY, ETAG, ROWS_LOADED, STATUS, ERROR, LOADED_AT) \
                 VALUES (?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
                &[
                    key.into(),
                    etag.into(),
                    Binding::from(rows as i64),
                    status.into(),
                    error.map_or(Binding::Null, Binding::from),
                ],
            )
            .await?;
        Ok(())
    }

    async fn download(&self, notice: &ObjectNotice) -> Result<(Vec<u8>, String), PipeError> {
        let err = |reason: String| PipeError::Get {
            bucket: notice.bucket.clone(),
            key: notice.key.clone(),
            reason,
        };
        let output = self
            .s3
            .get_object()
            .bucket(&notice.bucket)
            .key(&notice.key)
            .send()
            .await
            .map_err(|e| err(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
        let etag = output
            .e_tag()
            .unwrap_or(&notice.etag)
            .trim_matches('"')
            .to_owned();
        let body = output
            .body
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?;
        Ok((body.into_bytes().to_vec(), etag))
    }

    /// Loads one object, unless its key and ETag were loaded (or failed) before.
    ///
    /// `Err` means an infrastructure problem (S3 or Snowflake unreachable): the notice stays on
    /// the queue and is retried. A bad file is `Ok(Failed)`.
    pub async fn load(
        &self,
        notice: &ObjectNotice,
        metrics: &Metrics,
    ) -> Result<LoadOutcome, PipeError> {
        if !notice.etag.is_empty() && self.already_loaded(&notice.key, &notice.etag).await? {
            Metrics::add(&metrics.files_skipped, 1);
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let (bytes, etag) = self.download(notice).await?;
        if notice.etag.is_empty() && self.already_loaded(&notice.key, &etag).await? {
            Metrics::add(&metrics.files_skipped, 1);
            return Ok(LoadOutcome::AlreadyLoaded);
        }
        let lines = match prepare(&notice.key, &bytes) {
            Ok(lines) => lines,
            Err(error) => {
                tracing::warn!(key = %notice.key, %error, "file not loaded");
                self.record(&notice.key, &etag, 0, "LOAD_FAILED", Some(&error))
                    .await?;
                Metrics::add(&metrics.files_failed, 1);
                return Ok(LoadOutcome::Failed { error });
            }
        };
        let rows = lines.count;
        if rows > 0 {
            let folder = format!(
                "{STAGE}/pipe/{}",
                batcher::object::content_id(format!("{}\n{etag}", notice.key).as_bytes())
            );
            self.client
                .put_bytes(&folder, "part.ndjson", lines.text, PutOptions::default())
                .await?;
            self.client.execute("BEGIN", &[]).await?;
            let loaded = self.copy_in(&folder, &notice.key, &etag, rows).await;
            if let Err(e) = loaded {
                let _ = self.client.execute("ROLLBACK", &[]).await;
                return Err(e);
            }
            self.client.execute("COMMIT", &[]).await?;
        } else {
            self.record(&notice.key, &etag, 0, "LOADED", None).await?;
        }
        Metrics::add(&metrics.files_loaded, 1);
        Metrics::add(&metrics.rows_loaded, rows);
        Ok(LoadOutcome::Loaded { rows })
    }

    async fn copy_in(
        &self,
        folder: &str,
        key: &str,
        etag: &str,
        rows: u64,
    ) -> Result<(), PipeError> {
        let scratch = &self.scratch;
        self.client
            .execute(&format!("TRUNCATE TABLE {scratch}"), &[])
            .await?;
        self.client
            .query(
                &format!("COPY INTO {scratch} FROM {folder} FILE_FORMAT = (TYPE = JSON)"),
                &[],
            )
            .await?;
        let inserted = self
            .client
            .execute(
                &format!(
                    "INSERT INTO SLUICE.RAW.EVENTS_STREAM (FILE_NAME, LOADED_AT, EVENT) \
                     SELECT ?, CURRENT_TIMESTAMP, V FROM {scratch}"
                ),
                &[key.into()],
            )
            .await?;
        if inserted != rows {
            return Err(PipeError::RowCount {
                key: key.to_owned(),
                inserted,
                rows,
            });
        }
        self.record(key, etag, rows, "LOADED", None).await
    }
}

#[derive(Debug)]
struct Lines {
    text: Vec<u8>,
    count: u64,
}

/// The object's NDJSON, every line checked to be a JSON object; the error names the line.
fn prepare(key: &str, bytes: &[u8]) -> Result<Lines, String> {
    let format = FileFormat::of_key(key)
        .ok_or_else(|| format!("{key}: unknown file type (expected .ndjson.gz or .parquet)"))?;
    let text = batcher::object::to_ndjson(format, bytes).map_err(|e| format!("{key}: {e}"))?;
    let mut count = 0;
    for (i, line) in text.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => count += 1,
            Ok(_) => return Err(format!("{key}: line {}: not a JSON object", i + 1)),
            Err(e) => return Err(format!("{key}: line {}: malformed JSON: {e}", i + 1)),
        }
    }
    Ok(Lines { text, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(text: &str) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn lines_are_counted_and_a_bad_line_is_named() {
        let ok = prepare("a.ndjson.gz", &gz("{\"a\":1}\n{\"a\":2}\n")).unwrap();
        assert_eq!(ok.count, 2);
        let err = prepare("raw/b.ndjson.gz", &gz("{\"a\":1}\n{bad\n")).unwrap_err();
        assert!(
            err.contains("raw/b.ndjson.gz: line 2: malformed JSON"),
            "{err}"
        );
        let err = prepare("c.ndjson.gz", &gz("[1]\n")).unwrap_err();
        assert!(err.contains("line 1: not a JSON object"), "{err}");
        let err = prepare("d.csv", b"x").unwrap_err();
        assert!(err.contains("unknown file type"), "{err}");
        let err = prepare("e.ndjson.gz", b"plain").unwrap_err();
        assert!(err.contains("not gzip"), "{err}");
    }
}
