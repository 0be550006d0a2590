//! Writing events into `history.events`: COPY into a temporary table, then one INSERT that
//! skips ids already present, all in one transaction.

use bytes::Bytes;
use events::Event;
use futures::SinkExt as _;

use crate::BackfillError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryReport {
    /// Events offered.
    pub offered: u64,
    /// Rows new to `history.events`.
    pub inserted: u64,
}

/// Rows are sent to the server in blocks of this many bytes.
const BLOCK: usize = 1 << 20;

pub async fn load(
    pg: &mut tokio_postgres::Client,
    events: impl IntoIterator<Item = Event>,
) -> Result<HistoryReport, BackfillError> {
    try_load(pg, events.into_iter().map(Ok)).await
}

/// Like [`load`], from events read from somewhere that can fail (a file's lines): the first
/// error rolls the whole transaction back, so a bad line leaves `history.events` as it was.
pub async fn try_load(
    pg: &mut tokio_postgres::Client,
    events: impl IntoIterator<Item = Result<Event, BackfillError>>,
) -> Result<HistoryReport, BackfillError> {
    let tx = pg.transaction().await?;
    tx.batch_execute(
        "CREATE TEMPORARY TABLE history_incoming (LIKE history.events INCLUDING DEFAULTS) ON COMMIT DROP",
    )
    .await?;
    let sink = tx
        .copy_in(
            "COPY history_incoming (event_id, source, type, occurred_at, produced_at, event) \
             FROM STDIN (FORMAT csv)",
        )
        .await?;
    futures::pin_mut!(sink);
    let mut offered = 0u64;
    let mut block = Vec::with_capacity(BLOCK + 4096);
    let mut json = Vec::with_capacity(1024);
    for event in events {
        let event = event?;
        offered += 1;
        json.clear();
        event.write_canonical_json(&mut json);
        csv_row(&mut block, &event, &json);
        if block.len() >= BLOCK {
            sink.send(Bytes::from(std::mem::take(&mut block))).await?;
        }
    }
    if !block.is_empty() {
        sink.send(Bytes::from(block)).await?;
    }
    sink.finish().await?;
    let inserted = tx
        .execute(
            "INSERT INTO history.events SELECT * FROM history_incoming ON CONFLICT (event_id) DO NOTHING",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(HistoryReport { offered, inserted })
}

fn csv_row(out: &mut Vec<u8>, event: &Event, json: &[u8]) {
    out.extend_from_slice(event.event_id().as_bytes());
    out.push(b',');
    out.extend_from_slice(event.source().as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(event.event_type().as_str().as_bytes());
    out.push(b',');
    out.extend_from_slice(events::timestamp::format(event.occurred_at()).as_bytes());
    out.push(b',');
    out.extend_from_slice(events::timestamp::format(event.produced_at()).as_bytes());
    out.extend_from_slice(b",\"");
    for &b in json {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.extend_from_slice(b"\"\n");
}

/// Events as canonical NDJSON, one per line (what `cargo xtask gen --part history --format
/// ndjson` writes); blank lines are skipped, and a line that is not an event is an error naming
/// its number.
pub fn read_ndjson(
    reader: impl std::io::BufRead,
) -> impl Iterator<Item = Result<Event, BackfillError>> {
    reader.lines().enumerate().filter_map(|(i, line)| {
        let line_no = i as u64 + 1;
        match line {
            Err(e) => Some(Err(BackfillError::Read {
                line: line_no,
                source: e,
            })),
            Ok(text) if text.trim().is_empty() => None,
            Ok(text) => {
                Some(
                    Event::from_canonical_json(&text).map_err(|e| BackfillError::BadLine {
                        line: line_no,
                        reason: e.to_string(),
                    }),
                )
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_is_named_by_its_number() {
        let input = "\n{\"event_id\": 1}\n";
        let results: Vec<_> = read_ndjson(input.as_bytes()).collect();
        assert_eq!(results.len(), 1, "the blank line is skipped");
        let err = results.into_iter().next().unwrap().unwrap_err();
        assert!(err.to_string().starts_with("line 2: "), "{err}");
    }
}
