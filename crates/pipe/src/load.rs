//! Loading notified objects into RAW, at most once per key and ETag: business events into
//! RAW.EVENTS_STREAM, row changes (files under `source=cdc/`) into RAW.CDC_CHANGES.
//!
//! Files are loaded in batches, as Snowpipe does: one history lookup for the batch, the objects
//! downloaded concurrently, every line checked to be a JSON object (fakesnow answers a malformed
//! file with an endless 500, and a named line is a better error anyway), then the good files'
//! lines, each wrapped with its file name, in one PUT to a stage folder of their own, and in one
//! transaction: COPY into a scratch table, INSERT into RAW with the file name and load time,
//! and one history row per file, loaded or failed. A small file then costs a share of one load
//! instead of a PUT, a COPY and an INSERT of its own. A bad file is recorded against itself and
//! the rest of the batch proceeds.

use std::collections::HashSet;

use futures::StreamExt as _;
use rawfiles::FileFormat;
use rawfiles::notice::ObjectNotice;
use rawfiles::partition::{LandingTable, PartitionKey, landing_table};
use snowflake::{Binding, PutOptions, Value};

use crate::PipeError;
use crate::metrics::Metrics;

const STAGE: &str = "@SLUICE.RAW.EVENTS_STAGE";
/// Objects downloaded at once.
const DOWNLOADS_IN_FLIGHT: usize = 32;

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

/// One loaded file, as the `--load-log` records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadRecord {
    pub key: String,
    pub rows: u64,
    /// The object's creation (the notice's `eventTime`), microseconds since the epoch.
    pub created_at_us: Option<u64>,
    /// When the pipe received the notice.
    #[serde(default)]
    pub received_at_us: Option<u64>,
    /// When the load's transaction committed: its rows are visible from here.
    pub visible_at_us: u64,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Per notice, in the order given.
    pub outcomes: Vec<LoadOutcome>,
    /// The files this batch loaded (not those skipped or failed).
    pub loaded: Vec<LoadRecord>,
}

pub struct Loader {
    client: snowflake::Client,
    s3: aws_sdk_s3::Client,
    scratch: String,
}

/// A file ready to load.
struct Prepared {
    key: String,
    etag: String,
    lines: Lines,
    created_at_us: Option<u64>,
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

    /// Loads one object (a batch of one).
    pub async fn load(
        &self,
        notice: &ObjectNotice,
        metrics: &Metrics,
    ) -> Result<LoadOutcome, PipeError> {
        let mut batch = self
            .load_batch(std::slice::from_ref(notice), metrics)
            .await?;
        Ok(batch.outcomes.remove(0))
    }

    /// Loads every object not loaded (or failed) before, in one transaction.
    ///
    /// `Err` means an infrastructure problem (S3 or Snowflake unreachable): nothing of the batch
    /// is recorded, and its notices stay on the queue to be retried. A bad file is
    /// `Ok(Failed)`.
    pub async fn load_batch(
        &self,
        notices: &[ObjectNotice],
        metrics: &Metrics,
    ) -> Result<BatchOutcome, PipeError> {
        let received_at_us = runtime::latency::unix_micros();
        let mut outcomes: Vec<Option<LoadOutcome>> = vec![None; notices.len()];
        let history = self.history_of(notices).await?;
        // (key, etag) claimed by an earlier notice of this batch or by the history.
        let mut claimed: HashSet<(String, String)> = history;
        let mut to_fetch = Vec::new();
        for (i, notice) in notices.iter().enumerate() {
            if !notice.etag.is_empty() && !claimed.insert((notice.key.clone(), notice.etag.clone()))
            {
                outcomes[i] = Some(LoadOutcome::AlreadyLoaded);
            } else {
                to_fetch.push(i);
            }
        }
        let downloads: Vec<(usize, Result<(Vec<u8>, String), PipeError>)> =
            futures::stream::iter(to_fetch)
                .map(|i| async move { (i, self.download(&notices[i]).await) })
                .buffer_unordered(DOWNLOADS_IN_FLIGHT)
                .collect()
                .await;
        let mut downloads: Vec<_> = downloads.into_iter().collect();
        downloads.sort_by_key(|(i, _)| *i);

        let mut prepared: Vec<(usize, Prepared)> = Vec::new();
        let mut failed: Vec<(usize, String, String, String)> = Vec::new();
        for (i, download) in downloads {
            let notice = &notices[i];
            let (bytes, etag) = download?;
            if notice.etag.is_empty() && !claimed.insert((notice.key.clone(), etag.clone())) {
                outcomes[i] = Some(LoadOutcome::AlreadyLoaded);
                continue;
            }
            match prepare(&notice.key, &bytes) {
                Ok(lines) => prepared.push((
                    i,
                    Prepared {
                        key: notice.key.clone(),
                        etag,
                        lines,
                        created_at_us: notice
                            .event_time
                            .map(|t| t.timestamp_micros().max(0) as u64),
                    },
                )),
                Err(error) => {
                    tracing::warn!(key = %notice.key, %error, "file not loaded");
                    failed.push((i, notice.key.clone(), etag, error));
                }
            }
        }

        let visible_at_us = self.commit(&prepared, &failed).await?;
        let mut loaded = Vec::new();
        for (i, p) in &prepared {
            outcomes[*i] = Some(LoadOutcome::Loaded {
                rows: p.lines.count,
            });
            Metrics::add(&metrics.files_loaded, 1);
            Metrics::add(&metrics.rows_loaded, p.lines.count);
            if let Some(created) = p.created_at_us {
                metrics
                    .object_to_visible
                    .record_n(visible_at_us.saturating_sub(created), p.lines.count);
                metrics
                    .object_to_notice
                    .record_n(received_at_us.saturating_sub(created), p.lines.count);
            }
            loaded.push(LoadRecord {
                key: p.key.clone(),
                rows: p.lines.count,
                created_at_us: p.created_at_us,
                received_at_us: Some(received_at_us),
                visible_at_us,
            });
        }
        for (i, _, _, error) in failed {
            Metrics::add(&metrics.files_failed, 1);
            outcomes[i] = Some(LoadOutcome::Failed { error });
        }
        let skipped = outcomes
            .iter()
            .filter(|o| matches!(o, Some(LoadOutcome::AlreadyLoaded)))
            .count();
        Metrics::add(&metrics.files_skipped, skipped as u64);
        if !prepared.is_empty() {
            Metrics::add(&metrics.loads, 1);
        }
        Ok(BatchOutcome {
            outcomes: outcomes
                .into_iter()
                .map(|o| o.expect("every notice has an outcome"))
                .collect(),
            loaded,
        })
    }

    /// The (key, ETag) pairs of these notices' objects already in the load history.
    async fn history_of(
        &self,
        notices: &[ObjectNotice],
    ) -> Result<HashSet<(String, String)>, PipeError> {
        let keys: Vec<&str> = {
            let mut seen = HashSet::new();
            notices
                .iter()
                .map(|n| n.key.as_str())
                .filter(|k| seen.insert(*k))
                .collect()
        };
        let mut found = HashSet::new();
        for chunk in keys.chunks(500) {
            let placeholders = vec!["?"; chunk.len()].join(", ");
            let bindings: Vec<Binding> = chunk.iter().map(|k| Binding::from(*k)).collect();
            let rows = self
                .client
                .query(
                    &format!(
                        "SELECT OBJECT_KEY, ETAG FROM SLUICE.RAW.LOAD_HISTORY \
                         WHERE OBJECT_KEY IN ({placeholders})"
                    ),
                    &bindings,
                )
                .await?
                .rows()
                .await?;
            for row in rows {
                if let [Value::Text(key), Value::Text(etag)] = row.as_slice() {
                    found.insert((key.clone(), etag.clone()));
                }
            }
        }
        Ok(found)
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

    /// Loads the prepared files and records every file's outcome in one transaction; returns
    /// when the rows became visible (after COMMIT), in microseconds since the epoch.
    async fn commit(
        &self,
        prepared: &[(usize, Prepared)],
        failed: &[(usize, String, String, String)],
    ) -> Result<u64, PipeError> {
        if prepared.is_empty() && failed.is_empty() {
            return Ok(runtime::latency::unix_micros());
        }
        let rows: u64 = prepared.iter().map(|(_, p)| p.lines.count).sum();
        let folder = (rows > 0)
            .then(|| {
                let names: Vec<String> = prepared
                    .iter()
                    .map(|(_, p)| format!("{}\n{}", p.key, p.etag))
                    .collect();
                format!(
                    "{STAGE}/pipe/{}",
                    rawfiles::content_id(names.join("\n").as_bytes())
                )
            })
            .map(|folder| (folder, wrap(prepared)));
        if let Some((folder, text)) = &folder {
            self.client
                .put_bytes(folder, "part.ndjson", text.clone(), PutOptions::default())
                .await?;
        }
        // The session may still hold a transaction a failed load left open: its ROLLBACK was
        // lost with the connection (an outage mid-load). BEGIN inside it fails on fakesnow and
        // would join it on Snowflake, committing the half-done load with this one; ROLLBACK
        // outside a transaction is a no-op on both, so every load ends whatever is open first.
        self.client.execute("ROLLBACK", &[]).await?;
        self.client.execute("BEGIN", &[]).await?;
        let result = self
            .copy_in(
                folder.as_ref().map(|(f, _)| f.as_str()),
                rows,
                prepared,
                failed,
            )
            .await;
        if let Err(e) = result {
            let _ = self.client.execute("ROLLBACK", &[]).await;
            return Err(e);
        }
        self.client.execute("COMMIT", &[]).await?;
        Ok(runtime::latency::unix_micros())
    }

    async fn copy_in(
        &self,
        folder: Option<&str>,
        rows: u64,
        prepared: &[(usize, Prepared)],
        failed: &[(usize, String, String, String)],
    ) -> Result<(), PipeError> {
        let scratch = &self.scratch;
        if let Some(folder) = folder {
            self.client
                .execute(&format!("TRUNCATE TABLE {scratch}"), &[])
                .await?;
            self.client
                .query(
                    &format!("COPY INTO {scratch} FROM {folder} FILE_FORMAT = (TYPE = JSON)"),
                    &[],
                )
                .await?;
            let mut inserted = 0;
            for table in LandingTable::ALL {
                let routed = prepared.iter().filter(|(_, p)| landing_of(&p.key) == table);
                if routed.count() == 0 {
                    continue;
                }
                inserted += self
                    .client
                    .execute(
                        &format!(
                            "INSERT INTO {} (FILE_NAME, LOADED_AT, EVENT) \
                             SELECT V:f::string, CURRENT_TIMESTAMP, V:e FROM {scratch} \
                             WHERE {}",
                            table.table(),
                            table.file_filter("V:f::string")
                        ),
                        &[],
                    )
                    .await?;
            }
            if inserted != rows {
                return Err(PipeError::RowCount {
                    keys: prepared.iter().map(|(_, p)| p.key.clone()).collect(),
                    inserted,
                    rows,
                });
            }
        }
        // One multi-row INSERT for the whole batch's history.
        let mut values = Vec::new();
        let mut bindings: Vec<Binding> = Vec::new();
        for (_, p) in prepared {
            values.push("(?, ?, ?, 'LOADED', NULL, CURRENT_TIMESTAMP)");
            bindings.extend([
                Binding::from(p.key.as_str()),
                Binding::from(p.etag.as_str()),
                Binding::from(p.lines.count as i64),
            ]);
        }
        for (_, key, etag, error) in failed {
            values.push("(?, ?, 0, 'LOAD_FAILED', ?, CURRENT_TIMESTAMP)");
            bindings.extend([
                Binding::from(key.as_str()),
                Binding::from(etag.as_str()),
                Binding::from(error.as_str()),
            ]);
        }
        self.client
            .execute(
                &format!(
                    "INSERT INTO SLUICE.RAW.LOAD_HISTORY \
                     (OBJECT_KEY, ETAG, ROWS_LOADED, STATUS, ERROR, LOADED_AT) VALUES {}",
                    values.join(", ")
                ),
                &bindings,
            )
            .await?;
        Ok(())
    }
}

/// Where a file's rows land, by its source partition (business events when it has none).
fn landing_of(key: &str) -> LandingTable {
    PartitionKey::parse(key).map_or(LandingTable::EventsStream, |k| landing_table(k.source))
}

/// Every line of every prepared file as `{"f": <key>, "e": <line>}`: one stage file carries
/// many objects, and each row keeps the name of the object it came from. The event itself is
/// the line's JSON unchanged.
fn wrap(prepared: &[(usize, Prepared)]) -> Vec<u8> {
    let size: usize = prepared
        .iter()
        .map(|(_, p)| p.lines.text.len() + p.lines.count as usize * (p.key.len() + 16))
        .sum();
    let mut out = Vec::with_capacity(size);
    for (_, p) in prepared {
        let name = serde_json::to_string(&p.key).expect("a string serializes");
        for line in p.lines.text.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            out.extend_from_slice(b"{\"f\":");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b",\"e\":");
            out.extend_from_slice(line);
            out.extend_from_slice(b"}\n");
        }
    }
    out
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
    let text = rawfiles::format::to_ndjson(format, bytes).map_err(|e| format!("{key}: {e}"))?;
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

    #[test]
    fn wrapped_lines_keep_the_event_and_name_its_file() {
        let file = |key: &str, text: &str| {
            (
                0,
                Prepared {
                    key: key.into(),
                    etag: "e".into(),
                    lines: prepare(key, &gz(text)).unwrap(),
                    created_at_us: None,
                },
            )
        };
        let prepared = [
            file("raw/a \"q\".ndjson.gz", "{\"x\":1}\n{\"x\":2}\n"),
            file("raw/b.ndjson.gz", "{\"y\":[1,2]}\n"),
        ];
        let text = String::from_utf8(wrap(&prepared)).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0]["f"], "raw/a \"q\".ndjson.gz");
        assert_eq!(rows[1]["e"], serde_json::json!({"x": 2}));
        assert_eq!(rows[2]["f"], "raw/b.ndjson.gz");
        assert_eq!(rows[2]["e"], serde_json::json!({"y": [1, 2]}));
    }
}
