//! A session: check the source, take the snapshot if the slot has none, then stream; and the
//! restarts around it. Every session starts from what the slot and the snapshot record say, so
//! a restart (after a broker outage, a lost connection or a SIGKILL of the process) is the same
//! as a first start: nothing is kept in memory that the slot does not also know.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use pg_walstream::{
    CancellationToken, EventType, LogicalReplicationStream, ReplicationError,
    ReplicationStreamConfig, RetryConfig, SnapshotOutcome,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Client;

use crate::catalog::Catalog;
use crate::change::{self, Captured, Op, Position};
use crate::confirm::{self, Confirmed, Outcome, Unit};
use crate::publisher::Publisher;
use crate::slot::{self, Start};
use crate::{CdcConfig, CdcError, Metrics, MetricsSnapshot};

/// Snapshot rows handed to the confirmer at a time.
const SNAPSHOT_CHUNK: usize = 500;

/// Runs until `shutdown` resolves (then stops cleanly: outstanding confirms settle and the
/// final position is reported) or a setup problem no restart can cure.
pub async fn run(
    config: CdcConfig,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<MetricsSnapshot, CdcError> {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        shutdown.await;
        stop.cancel();
    });
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = Instant::now();
        let result = session(&config, &metrics, &cancel).await;
        match result {
            Ok(()) => return Ok(metrics.snapshot()),
            Err(e) if e.is_permanent() => return Err(e),
            Err(_) if cancel.is_cancelled() => return Ok(metrics.snapshot()),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cdc session failed; resuming from the slot's confirmed LSN in {backoff:?}"
                );
                Metrics::add(&metrics.restarts, 1);
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = cancel.cancelled() => return Ok(metrics.snapshot()),
                }
                backoff = if started.elapsed() > Duration::from_secs(30) {
                    Duration::from_millis(200)
                } else {
                    (backoff * 2).min(Duration::from_secs(5))
                };
            }
        }
    }
}

async fn connect(url: &str) -> Result<Client, CdcError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(CdcError::postgres("connecting"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// What the WAL reader shares with the confirmer.
struct Outbox {
    publisher: Publisher,
    units: mpsc::Sender<Unit<BoxFuture<'static, Outcome>>>,
    permits: Arc<Semaphore>,
    max_unconfirmed: usize,
}

impl Outbox {
    /// Publishes a unit's events and hands their confirms over, in order. Waits while
    /// `max_unconfirmed` messages are out.
    async fn send(
        &self,
        events: &[events::Event],
        ack_lsn: Option<u64>,
        commit_us: u64,
        done: Option<oneshot::Sender<()>>,
    ) -> Result<(), CdcError> {
        let wanted = events.len().clamp(1, self.max_unconfirmed) as u32;
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the semaphore is never closed");
        let mut confirms = Vec::with_capacity(events.len());
        for event in events {
            confirms.push(self.publisher.publish(event).await?);
        }
        let unit = Unit {
            ack_lsn,
            confirms,
            commit_us,
            done,
            permit: Some(permit),
        };
        // A closed channel means the confirmer stopped on a failed publish: the session ends
        // and the confirmer's outcome says why.
        self.units.send(unit).await.map_err(|_| CdcError::Nacked)
    }
}

async fn session(
    config: &CdcConfig,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
) -> Result<(), CdcError> {
    let pg = connect(&config.postgres_url).await?;
    let mut catalog = slot::check_source(&pg, config).await?;
    let start = slot::prepare(&pg, config).await?;
    let publisher = Publisher::connect(&config.amqp_url, &config.exchange).await?;
    let exchange = publisher.exchange().to_owned();
    let stream_config = ReplicationStreamConfig::builder(&config.slot, &config.publication)
        .with_feedback_interval(config.feedback_interval)
        // Logical messages: the heartbeats come back through the stream.
        .with_messages(config.heartbeat.is_some())
        // Restarts are this module's: one attempt, then a session from the slot's position.
        .with_retry_config(RetryConfig {
            max_attempts: 1,
            max_duration: Duration::from_secs(10),
            ..RetryConfig::default()
        });
    let stream = LogicalReplicationStream::new(&config.replication_url(), stream_config).await?;
    let feedback = stream.shared_lsn_feedback.clone();

    // The confirmer: confirms in order; each confirmed transaction raises the applied LSN the
    // stream reports to the slot. A failed publish ends the session.
    let session_cancel = cancel.child_token();
    let (units_tx, units_rx) = mpsc::channel(4_096);
    let confirmer = {
        let metrics = metrics.clone();
        let session_cancel = session_cancel.clone();
        tokio::spawn(async move {
            let result = confirm::confirm_in_order(units_rx, |c: Confirmed| {
                if let Some(lsn) = c.ack_lsn {
                    feedback.update_applied_lsn(lsn);
                    metrics.acked_lsn.fetch_max(lsn, Relaxed);
                    if c.commit_us == 0 {
                        Metrics::add(&metrics.heartbeats, 1);
                    } else {
                        Metrics::add(&metrics.confirmed_transactions, 1);
                    }
                    let now = runtime::latency::unix_micros();
                    metrics
                        .commit_to_confirm
                        .record_n(now.saturating_sub(c.commit_us), c.changes);
                }
                Metrics::add(&metrics.confirmed_changes, c.changes);
            })
            .await;
            if result.is_err() {
                session_cancel.cancel();
            }
            result
        })
    };
    let outbox = Outbox {
        publisher,
        units: units_tx,
        permits: Arc::new(Semaphore::new(config.max_unconfirmed)),
        max_unconfirmed: config.max_unconfirmed,
    };
    // Ends with the session, whichever way it ends.
    let _heartbeat = config.heartbeat.map(|every| {
        AbortOnDrop(tokio::spawn(beat(
            config.postgres_url.clone(),
            every,
            session_cancel.clone(),
        )))
    });

    let read = async {
        let mut stream = match start {
            Start::Snapshot => {
                take_snapshot(
                    stream,
                    &pg,
                    &catalog,
                    &outbox,
                    config,
                    metrics,
                    &session_cancel,
                )
                .await?
            }
            Start::Resume { confirmed_flush } => {
                tracing::info!(slot = %config.slot, %confirmed_flush, "resuming the stream");
                stream
            }
        };
        stream.start(None).await?;
        let streamed = stream_changes(
            &mut stream,
            &pg,
            &mut catalog,
            &outbox,
            config,
            metrics,
            &session_cancel,
        )
        .await;
        Ok::<_, CdcError>((stream, streamed))
    };
    let (mut stream, streamed) = match read.await {
        Ok(done) => done,
        Err(e) => {
            // A failed confirm cancels the reader; its outcome is the better reason.
            drop(outbox);
            let joined = tokio::time::timeout(config.shutdown_grace, confirmer).await;
            let reason = joined
                .ok()
                .and_then(|joined| confirmer_error(joined, &exchange));
            return Err(reason.unwrap_or(e));
        }
    };
    // Stop intake; what was published settles (within the grace) and its position is reported.
    let Outbox {
        publisher, units, ..
    } = outbox;
    drop(units);
    let settled = tokio::time::timeout(config.shutdown_grace, confirmer).await;
    let _ = stream.stop().await;
    publisher.close().await;
    if let Ok(joined) = settled
        && let Some(e) = confirmer_error(joined, &exchange)
    {
        return Err(e);
    }
    streamed
}

fn confirmer_error(
    joined: Result<Result<(), Outcome>, tokio::task::JoinError>,
    exchange: &str,
) -> Option<CdcError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(Outcome::Unroutable(routing_key))) => Some(CdcError::Unroutable {
            routing_key,
            exchange: exchange.to_owned(),
        }),
        Ok(Err(_)) | Err(_) => Some(CdcError::Nacked),
    }
}

/// Creates the slot with an exported snapshot, publishes every row of the published tables as a
/// read (op r), and records the snapshot once the broker confirmed all of it. Killed before the
/// record, the next session drops the slot and takes the snapshot again.
async fn take_snapshot(
    stream: LogicalReplicationStream,
    pg: &Client,
    catalog: &Catalog,
    outbox: &Outbox,
    config: &CdcConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<LogicalReplicationStream, CdcError> {
    let snapshot = match stream.snapshot().await? {
        SnapshotOutcome::Available(snapshot) => snapshot,
        SnapshotOutcome::Unavailable(_) => {
            // The slot was not there when the session started: something else made it since.
            return Err(CdcError::SlotInUse {
                slot: config.slot.clone(),
                pid: 0,
            });
        }
    };
    let consistent_point = snapshot.consistent_point();
    let position = Position {
        commit_lsn: consistent_point.value(),
        change_lsn: 0,
        tx_id: 0,
        commit_time: Utc::now(),
        tx_order: 0,
        tx_size: 0,
    };
    tracing::info!(
        slot = %config.slot,
        consistent_point = %pg_walstream::format_lsn(consistent_point.value()),
        tables = snapshot.tables().len(),
        "taking the initial snapshot"
    );
    let mut rows = snapshot.with_cancellation(cancel.clone()).rows();
    let mut chunk = Vec::with_capacity(SNAPSHOT_CHUNK);
    let mut read = 0i64;
    while let Some(row) = rows.next_row().await? {
        let table = catalog
            .get(&row.relation.namespace, &row.relation.relation_name)
            .ok_or_else(|| CdcError::Convert {
                table: format!("{}.{}", row.relation.namespace, row.relation.relation_name),
                reason: "snapshot row of a table not in the publication".into(),
            })?;
        let captured = Captured {
            op: Op::Read,
            before: None,
            after: Some(row.data),
            change_lsn: 0,
        };
        chunk.push(change::to_event(
            &config.slot,
            table,
            &captured,
            &position,
            Utc::now(),
        )?);
        read += 1;
        if chunk.len() == SNAPSHOT_CHUNK {
            outbox.send(&chunk, None, 0, None).await?;
            Metrics::add(&metrics.snapshot_rows, chunk.len() as u64);
            chunk.clear();
        }
    }
    let stream = rows.finish().await?;
    let (done, confirmed) = oneshot::channel();
    outbox.send(&chunk, None, 0, Some(done)).await?;
    Metrics::add(&metrics.snapshot_rows, chunk.len() as u64);
    confirmed.await.map_err(|_| CdcError::Nacked)?;
    let lsn = pg_walstream::format_lsn(consistent_point.value());
    slot::record_snapshot(pg, &config.slot, &lsn, read).await?;
    tracing::info!(slot = %config.slot, rows = read, consistent_point = %lsn, "snapshot complete");
    Ok(stream)
}

/// A task that stops when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes a heartbeat into the WAL every `every` until `cancel`: a non-transactional logical
/// message, which the stream delivers at once. It passes through the confirmer like an empty
/// transaction, so its LSN is acknowledged only after every change before it is confirmed:
/// the slot's position then moves past WAL other tables wrote while the published ones were
/// quiet, and the WAL it holds stays bounded.
async fn beat(url: String, every: Duration, cancel: CancellationToken) {
    let Ok(pg) = connect(&url).await else {
        tracing::warn!("heartbeats off: no connection for them");
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = pg
            .execute(
                "SELECT pg_logical_emit_message(false, $1, '')",
                &[&crate::HEARTBEAT_PREFIX],
            )
            .await
        {
            tracing::debug!(error = %e, "writing a heartbeat");
        }
    }
}

/// A transaction being read: its changes are published at its commit, all together.
struct Transaction {
    tx_id: u32,
    changes: Vec<(crate::TableName, Captured)>,
}

async fn stream_changes(
    stream: &mut LogicalReplicationStream,
    pg: &Client,
    catalog: &mut Catalog,
    outbox: &Outbox,
    config: &CdcConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> Result<(), CdcError> {
    let mut open: Option<Transaction> = None;
    loop {
        let event = match stream.next_event(cancel).await {
            Ok(event) => event,
            Err(ReplicationError::Cancelled(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let lsn = event.lsn.value();
        let mut push = |schema: &str, table: &str, captured: Captured| {
            if let Some(tx) = open.as_mut() {
                tx.changes
                    .push((crate::TableName::new(schema, table), captured));
            }
        };
        match event.event_type {
            EventType::Begin { transaction_id, .. } => {
                open = Some(Transaction {
                    tx_id: transaction_id,
                    changes: Vec::new(),
                });
            }
            EventType::Insert {
                schema,
                table,
                data,
                ..
            } => push(
                &schema,
                &table,
                Captured {
                    op: Op::Insert,
                    before: None,
                    after: Some(data),
                    change_lsn: lsn,
                },
            ),
            EventType::Update {
                schema,
                table,
                old_data,
                new_data,
                ..
            } => push(
                &schema,
                &table,
                Captured {
                    op: Op::Update,
                    before: old_data,
                    after: Some(new_data),
                    change_lsn: lsn,
                },
            ),
            EventType::Delete {
                schema,
                table,
                old_data,
                ..
            } => push(
                &schema,
                &table,
                Captured {
                    op: Op::Delete,
                    before: Some(old_data),
                    after: None,
                    change_lsn: lsn,
                },
            ),
            EventType::Message {
                flags: 0,
                message_lsn,
                prefix,
                ..
            } if &*prefix == crate::HEARTBEAT_PREFIX && open.is_none() => {
                // Nothing to publish; acknowledged in order, after everything before it.
                outbox.send(&[], Some(message_lsn.value()), 0, None).await?;
            }
            EventType::Truncate { tables, .. } => {
                tracing::warn!(?tables, "TRUNCATE of published tables is not propagated");
                Metrics::add(&metrics.truncates_skipped, 1);
            }
            EventType::Relation {
                namespace,
                relation_name,
                ..
            } => {
                // The table may be new to the publication, or its columns may have changed.
                let name = crate::TableName::new(&*namespace, &*relation_name);
                catalog.refresh(pg, &config.publication, &name).await?;
            }
            EventType::Commit {
                commit_timestamp,
                commit_lsn,
                end_lsn,
            } => {
                let tx = open.take().unwrap_or(Transaction {
                    tx_id: 0,
                    changes: Vec::new(),
                });
                let size = tx.changes.len() as u32;
                let now = Utc::now();
                let mut events = Vec::with_capacity(tx.changes.len());
                for (i, (name, captured)) in tx.changes.iter().enumerate() {
                    let table =
                        catalog
                            .get(&name.schema, &name.name)
                            .ok_or_else(|| CdcError::Convert {
                                table: name.to_string(),
                                reason: "a change of a table not in the publication".into(),
                            })?;
                    let position = Position {
                        commit_lsn: commit_lsn.value(),
                        change_lsn: captured.change_lsn,
                        tx_id: tx.tx_id,
                        commit_time: commit_timestamp,
                        tx_order: i as u32 + 1,
                        tx_size: size,
                    };
                    events.push(change::to_event(
                        &config.slot,
                        table,
                        captured,
                        &position,
                        now,
                    )?);
                }
                let commit_us = commit_timestamp.timestamp_micros().max(0) as u64;
                outbox
                    .send(&events, Some(end_lsn.value()), commit_us, None)
                    .await?;
                Metrics::add(&metrics.transactions, 1);
                Metrics::add(&metrics.changes, u64::from(size));
            }
            _ => {}
        }
        stream.maybe_send_feedback().await;
    }
}
