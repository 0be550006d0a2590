//! The checks before anything streams, and the slot's lifecycle.
//!
//! A slot is usable when its initial snapshot completed: that is recorded in
//! [`crate::SNAPSHOTS_TABLE`], in the source database itself, so it lives and dies with the
//! slot's database and needs no local state. From the slot and that record:
//!
//! | slot | snapshot record | what happens |
//! |---|---|---|
//! | absent | absent | a new slot, its snapshot, then the stream |
//! | present | present | the stream resumes at the slot's confirmed LSN |
//! | present | absent | an earlier snapshot never completed: the slot is dropped and the snapshot taken again |
//! | absent | present | the slot was dropped: an error that says how to start over |

use tokio_postgres::Client;

use crate::catalog::Catalog;
use crate::{CdcConfig, CdcError, SNAPSHOTS_TABLE};

/// What a session starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    /// No slot: create one, copy the tables in its snapshot, then stream.
    Snapshot,
    /// The slot exists and its snapshot completed: stream from its confirmed LSN.
    Resume { confirmed_flush: String },
}

/// The slot as `pg_replication_slots` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRow {
    pub plugin: Option<String>,
    pub active_pid: Option<i32>,
    pub wal_status: Option<String>,
    pub confirmed_flush: Option<String>,
}

/// A completed snapshot, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub consistent_point: String,
    pub rows_read: i64,
    pub completed_at: String,
}

/// Server settings, publication and tables: everything but the slot. A failure names what
/// to fix.
pub async fn check_source(pg: &Client, config: &CdcConfig) -> Result<Catalog, CdcError> {
    let wal_level: String = pg
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(CdcError::postgres("reading wal_level"))?
        .get(0);
    if wal_level != "logical" {
        return Err(CdcError::WalLevel { found: wal_level });
    }
    let exists = pg
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&config.publication],
        )
        .await
        .map_err(CdcError::postgres("looking up the publication"))?
        .is_some();
    if !exists {
        return Err(CdcError::NoPublication {
            publication: config.publication.clone(),
            tables: config
                .tables
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let catalog = Catalog::load(pg, &config.publication).await?;
    if let Some(missing) = config.tables.iter().find(|t| !catalog.contains(t)) {
        return Err(CdcError::PublicationMissingTable {
            publication: config.publication.clone(),
            table: missing.to_string(),
        });
    }
    Ok(catalog)
}

pub async fn slot_row(pg: &Client, slot: &str) -> Result<Option<SlotRow>, CdcError> {
    let row = pg
        .query_opt(
            "SELECT plugin::text, active_pid, wal_status, confirmed_flush_lsn::text \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(CdcError::postgres("looking up the replication slot"))?;
    Ok(row.map(|r| SlotRow {
        plugin: r.get(0),
        active_pid: r.get(1),
        wal_status: r.get(2),
        confirmed_flush: r.get(3),
    }))
}

pub async fn snapshot_record(pg: &Client, slot: &str) -> Result<Option<SnapshotRecord>, CdcError> {
    let row = pg
        .query_opt(
            &format!(
                "SELECT consistent_point::text, rows_read, completed_at::text \
                 FROM {SNAPSHOTS_TABLE} WHERE slot_name = $1"
            ),
            &[&slot],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                CdcError::NoSnapshotsTable {
                    table: SNAPSHOTS_TABLE.into(),
                }
            } else {
                CdcError::postgres("reading the snapshot record")(e)
            }
        })?;
    Ok(row.map(|r| SnapshotRecord {
        consistent_point: r.get(0),
        rows_read: r.get(1),
        completed_at: r.get(2),
    }))
}

/// Decides how a session starts, dropping a slot whose snapshot never completed.
pub async fn prepare(pg: &Client, config: &CdcConfig) -> Result<Start, CdcError> {
    let slot = slot_row(pg, &config.slot).await?;
    let record = snapshot_record(pg, &config.slot).await?;
    match (slot, record) {
        (None, None) => Ok(Start::Snapshot),
        (None, Some(record)) => Err(CdcError::SlotDropped {
            slot: config.slot.clone(),
            consistent_point: record.consistent_point,
            completed_at: record.completed_at,
        }),
        (Some(slot), record) => {
            if let Some(pid) = slot.active_pid {
                return Err(CdcError::SlotInUse {
                    slot: config.slot.clone(),
                    pid,
                });
            }
            if let Some(status) = slot.wal_status.as_deref().filter(|s| *s == "lost") {
                return Err(CdcError::SlotInvalidated {
                    slot: config.slot.clone(),
                    reason: format!("wal_status {status}"),
                });
            }
            if let Some(plugin) = slot.plugin.filter(|p| p != "pgoutput") {
                return Err(CdcError::WrongPlugin {
                    slot: config.slot.clone(),
                    plugin,
                });
            }
            match record {
                Some(_) => Ok(Start::Resume {
                    confirmed_flush: slot.confirmed_flush.unwrap_or_default(),
                }),
                None => {
                    tracing::warn!(
                        slot = %config.slot,
                        "the slot has no completed snapshot (a run stopped during it): dropping \
                         the slot to take the snapshot again"
                    );
                    drop_slot(pg, &config.slot).await?;
                    Ok(Start::Snapshot)
                }
            }
        }
    }
}

/// Records the slot's completed snapshot.
pub async fn record_snapshot(
    pg: &Client,
    slot: &str,
    consistent_point: &str,
    rows_read: i64,
) -> Result<(), CdcError> {
    pg.execute(
        &format!(
            "INSERT INTO {SNAPSHOTS_TABLE} (slot_name, consistent_point, rows_read, completed_at) \
             VALUES ($1, $2::text::pg_lsn, $3, now()) \
             ON CONFLICT (slot_name) DO UPDATE SET consistent_point = EXCLUDED.consistent_point, \
             rows_read = EXCLUDED.rows_read, completed_at = EXCLUDED.completed_at"
        ),
        &[&slot, &consistent_point, &rows_read],
    )
    .await
    .map_err(CdcError::postgres("recording the snapshot"))?;
    Ok(())
}

async fn drop_slot(pg: &Client, slot: &str) -> Result<(), CdcError> {
    pg.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
         WHERE slot_name = $1",
        &[&slot],
    )
    .await
    .map_err(CdcError::postgres(format!(
        "dropping replication slot {slot}"
    )))?;
    Ok(())
}

/// Waits up to `limit` for the slot to have no reader: a walsender lets go of it a moment
/// after its client stopped. Fails naming the reader that still holds it.
pub async fn wait_until_released(
    pg: &Client,
    slot: &str,
    limit: std::time::Duration,
) -> Result<(), CdcError> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match slot_row(pg, slot).await? {
            Some(SlotRow {
                active_pid: Some(pid),
                ..
            }) => {
                if std::time::Instant::now() >= deadline {
                    return Err(CdcError::SlotInUse {
                        slot: slot.to_owned(),
                        pid,
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => return Ok(()),
        }
    }
}

/// Forgets the slot and its snapshot: the next run takes a new snapshot (`cdc reset`).
pub async fn reset(pg: &Client, slot: &str) -> Result<(), CdcError> {
    wait_until_released(pg, slot, std::time::Duration::from_secs(10)).await?;
    drop_slot(pg, slot).await?;
    pg.execute(
        &format!("DELETE FROM {SNAPSHOTS_TABLE} WHERE slot_name = $1"),
        &[&slot],
    )
    .await
    .map_err(CdcError::postgres("removing the snapshot record"))?;
    Ok(())
}

/// `cdc setup` (and `cargo xtask up`): connects to the source and runs [`create_while_empty`].
pub async fn setup(config: &CdcConfig) -> Result<bool, CdcError> {
    let (pg, connection) = tokio_postgres::connect(&config.postgres_url, tokio_postgres::NoTls)
        .await
        .map_err(CdcError::postgres(format!(
            "connecting to {}",
            runtime::redact_url(&config.postgres_url)
        )))?;
    let connection = tokio::spawn(connection);
    let made = create_while_empty(&pg, config).await;
    drop(pg);
    let _ = connection.await;
    made
}

/// When there is no slot yet and every published table is empty, creates
/// the slot and records its (empty) snapshot as complete, so no change made before the first
/// cdc run is missed. With rows already there, nothing is made: the cdc's first run takes a
/// snapshot consistent with a slot of its own. Returns whether the slot was made.
pub async fn create_while_empty(pg: &Client, config: &CdcConfig) -> Result<bool, CdcError> {
    let catalog = check_source(pg, config).await?;
    if slot_row(pg, &config.slot).await?.is_some()
        || snapshot_record(pg, &config.slot).await?.is_some()
    {
        return Ok(false);
    }
    for table in catalog.tables() {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {}.{})",
            crate::catalog::quote_ident(&table.name.schema),
            crate::catalog::quote_ident(&table.name.name)
        );
        let has_rows: bool = pg
            .query_one(&sql, &[])
            .await
            .map_err(CdcError::postgres(format!("looking into {}", table.name)))?
            .get(0);
        if has_rows {
            return Ok(false);
        }
    }
    let lsn: String = pg
        .query_one(
            "SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&config.slot],
        )
        .await
        .map_err(CdcError::postgres(format!(
            "creating replication slot {}",
            config.slot
        )))?
        .get(0);
    record_snapshot(pg, &config.slot, &lsn, 0).await?;
    Ok(true)
}
