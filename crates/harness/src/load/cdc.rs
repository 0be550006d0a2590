//! The change-data-capture part of a load test, for scenarios with an `[oltp]` workload: the
//! workload's transactions beside the stream, and what a pipeline owner asks of a CDC:
//! - throughput: row changes per second from commit to broker confirm;
//! - the commit-to-confirm latency per change (the cdc measures it) and the lag from commit to
//!   the change visible in RAW (the pipe's commit, from its load log);
//! - the slot's retained WAL (what PostgreSQL keeps for it) and its unconfirmed WAL (how far
//!   its confirmed position trails the server) each second, which stay bounded while the
//!   pipeline keeps up.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use pipe::load::LoadRecord;
use runtime::latency::new_histogram;
use tokio_postgres::Client;

use super::latency::Distribution;
use crate::rig::warehouse::WarehouseError;

/// The slot's WAL at one second of the run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WalPoint {
    /// Seconds on the sampler's clock.
    pub t: f64,
    /// Bytes between the server's WAL position and the slot's restart LSN: what it keeps.
    pub retained_bytes: u64,
    /// Bytes between the server's WAL position and the slot's confirmed LSN.
    pub unconfirmed_bytes: u64,
}

/// The report's section.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CdcSection {
    pub transactions: u64,
    pub row_changes: u64,
    /// Transactions per second offered, and row changes per second confirmed by the broker
    /// over the workload's span.
    pub offered_transactions_per_s: f64,
    pub confirmed_changes_per_s: f64,
    pub snapshot_rows: i64,
    pub snapshot_s: f64,
    /// Commit to broker confirm, per streamed change (the cdc's own histogram).
    pub commit_to_confirm: Distribution,
    /// Commit to visible in RAW.CDC_CHANGES, per streamed change.
    pub commit_to_raw: Distribution,
    pub retained_wal_max_bytes: u64,
    pub retained_wal_last_bytes: u64,
    pub unconfirmed_wal_max_bytes: u64,
    pub wal: Vec<WalPoint>,
    /// Changes in RAW whose file the pipe's load log does not name.
    pub unmatched: u64,
}

/// Samples the slot once a second until `done`.
pub async fn sample_wal(
    pg: &Client,
    slot: &str,
    clock: Instant,
    done: &tokio::sync::Notify,
    out: &mut Vec<WalPoint>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            () = done.notified() => return,
            _ = tick.tick() => {}
        }
        if let Ok(Some((retained_bytes, unconfirmed_bytes))) =
            crate::rig::source::slot_wal(pg, slot).await
        {
            out.push(WalPoint {
                t: clock.elapsed().as_secs_f64(),
                retained_bytes,
                unconfirmed_bytes,
            });
        }
    }
}

/// Commit to visible in RAW for every streamed change (its first load), and the changes whose
/// file the load log does not name.
pub async fn commit_to_raw(
    sf: &snowflake::Client,
    loads: &HashMap<String, LoadRecord>,
) -> Result<(Histogram<u64>, u64), WarehouseError> {
    let rows = crate::rig::warehouse::first_loads_of_changes(sf).await?;
    let mut h = new_histogram();
    let mut unmatched = 0;
    for (committed, file) in rows {
        let Ok(committed) = DateTime::parse_from_rfc3339(&committed) else {
            continue;
        };
        match loads.get(file.as_str()) {
            Some(load) => {
                let committed_us = committed.with_timezone(&Utc).timestamp_micros().max(0) as u64;
                h.saturating_record(load.visible_at_us.saturating_sub(committed_us).max(1));
            }
            None => unmatched += 1,
        }
    }
    Ok((h, unmatched))
}

/// The WAL figures of a series: (retained max, retained last, unconfirmed max).
pub fn wal_figures(points: &[WalPoint]) -> (u64, u64, u64) {
    let retained_max = points.iter().map(|p| p.retained_bytes).max().unwrap_or(0);
    let retained_last = points.last().map_or(0, |p| p.retained_bytes);
    let unconfirmed_max = points
        .iter()
        .map(|p| p.unconfirmed_bytes)
        .max()
        .unwrap_or(0);
    (retained_max, retained_last, unconfirmed_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_figures_take_the_peak_and_the_end() {
        let p = |t, r, u| WalPoint {
            t,
            retained_bytes: r,
            unconfirmed_bytes: u,
        };
        assert_eq!(
            wal_figures(&[p(1.0, 100, 10), p(2.0, 900, 50), p(3.0, 200, 0)]),
            (900, 200, 50)
        );
        assert_eq!(wal_figures(&[]), (0, 0, 0));
    }
}
