//! Copying `history.events` into RAW.EVENTS_BACKFILL: rows are read in event-id order, turned
//! back into canonical JSON (PostgreSQL's jsonb reorders keys), and loaded chunk by chunk with
//! PUT + COPY into a scratch table and an INSERT that skips event ids RAW already holds.

use futures::TryStreamExt as _;
use snowflake::{Binding, PutOptions};

use crate::BackfillError;

#[derive(Clone, Debug)]
pub struct SnapshotConfig {
    /// Rows per PUT + COPY.
    pub chunk_rows: usize,
    /// Recorded in RAW.EVENTS_BACKFILL.SNAPSHOT_ID.
    pub snapshot_id: String,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            chunk_rows: 50_000,
            snapshot_id: format!("pg-{}", unix_seconds()),
        }
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotReport {
    /// Rows read from `history.events`.
    pub read: u64,
    /// Rows new to RAW.EVENTS_BACKFILL.
    pub inserted: u64,
    pub chunks: u64,
}

pub async fn copy(
    pg: &tokio_postgres::Client,
    sf: &snowflake::Client,
    config: &SnapshotConfig,
) -> Result<SnapshotReport, BackfillError> {
    let scratch = format!("SLUICE.RAW.BACKFILL_SCRATCH_{}", std::process::id());
    sf.execute(
        &format!("CREATE TABLE IF NOT EXISTS {scratch} (V VARIANT)"),
        &[],
    )
    .await?;
    let result = copy_chunks(pg, sf, config, &scratch).await;
    let _ = sf
        .execute(&format!("DROP TABLE IF EXISTS {scratch}"), &[])
        .await;
    result
}

async fn copy_chunks(
    pg: &tokio_postgres::Client,
    sf: &snowflake::Client,
    config: &SnapshotConfig,
    scratch: &str,
) -> Result<SnapshotReport, BackfillError> {
    let rows = pg
        .query_raw(
            "SELECT event_id::text, event::text FROM history.events ORDER BY event_id",
            std::iter::empty::<i32>(),
        )
        .await?;
    futures::pin_mut!(rows);
    let mut report = SnapshotReport::default();
    let mut chunk = Vec::with_capacity(config.chunk_rows * 600);
    let mut in_chunk = 0usize;
    loop {
        let row = rows.try_next().await?;
        if let Some(row) = &row {
            let event_id: &str = row.get(0);
            let json: &str = row.get(1);
            let event =
                events::Event::from_canonical_json(json).map_err(|e| BackfillError::BadRow {
                    event_id: event_id.to_owned(),
                    reason: e.to_string(),
                })?;
            event.write_canonical_json(&mut chunk);
            chunk.push(b'\n');
            in_chunk += 1;
            report.read += 1;
        }
        if in_chunk > 0 && (in_chunk >= config.chunk_rows || row.is_none()) {
            report.chunks += 1;
            report.inserted += load_chunk(
                sf,
                config,
                scratch,
                report.chunks,
                std::mem::take(&mut chunk),
            )
            .await?;
            tracing::info!(
                read = report.read,
                inserted = report.inserted,
                "backfill chunk loaded"
            );
            in_chunk = 0;
        }
        if row.is_none() {
            return Ok(report);
        }
    }
}

async fn load_chunk(
    sf: &snowflake::Client,
    config: &SnapshotConfig,
    scratch: &str,
    number: u64,
    ndjson: Vec<u8>,
) -> Result<u64, BackfillError> {
    let folder = format!(
        "@SLUICE.RAW.EVENTS_STAGE/backfill/{}/{number}",
        config.snapshot_id
    );
    sf.put_bytes(&folder, "chunk.ndjson", ndjson, PutOptions::default())
        .await?;
    sf.execute(&format!("TRUNCATE TABLE {scratch}"), &[])
        .await?;
    sf.query(
        &format!("COPY INTO {scratch} FROM {folder} FILE_FORMAT = (TYPE = JSON)"),
        &[],
    )
    .await?;
    let inserted = sf
        .execute(
            &format!(
                "INSERT INTO SLUICE.RAW.EVENTS_BACKFILL (SNAPSHOT_ID, LOADED_AT, EVENT) \
                 SELECT ?, CURRENT_TIMESTAMP, s.V FROM {scratch} s \
                 WHERE NOT EXISTS (SELECT 1 FROM SLUICE.RAW.EVENTS_BACKFILL b \
                                   WHERE b.EVENT:event_id::string = s.V:event_id::string)"
            ),
            &[Binding::from(config.snapshot_id.as_str())],
        )
        .await?;
    Ok(inserted)
}
