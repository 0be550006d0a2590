//! The OLTP workload against the stack's PostgreSQL, in real transactions: the rows the cdc's
//! snapshot reads, then the scenario's transactions at their offsets. Each customer's history
//! (every version with the `updated_at` the database gave it, and when an erasure committed) is
//! kept for the SCD2 check: the oracle for the change log is the source itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use synth::oltp::{Customer, RowOp, Transaction, Workload, WorkloadStats};
use tokio_postgres::Client;

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("the OLTP workload ({what}): {source}")]
    Postgres {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("the OLTP workload: {0}")]
    Invariant(String),
    #[error(
        "commit timestamps are off in this PostgreSQL (track_commit_timestamp): the SCD2 check \
         needs them; `cargo xtask up` starts its server with them on"
    )]
    NoCommitTimestamps,
}

fn pg_err(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> WorkloadError {
    let what = what.into();
    move |source| WorkloadError::Postgres { what, source }
}

/// One version of a customer, as the workload wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerVersion {
    pub customer: Customer,
    /// The row's `updated_at` (the writing transaction's start, as `now()` gives it).
    pub updated_at: DateTime<Utc>,
}

/// What happened to one customer, in commit order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CustomerHistory {
    pub versions: Vec<CustomerVersion>,
    /// When the erasure committed, if the customer was erased.
    pub erased_at: Option<DateTime<Utc>>,
}

/// The workload as applied.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    pub stats: WorkloadStats,
    pub customers: BTreeMap<String, CustomerHistory>,
    /// Transactions that started after their scheduled offset had passed by more than 100 ms.
    pub behind: u64,
}

impl Applied {
    /// Distinct row changes the change log must hold: every snapshot read and every change.
    pub fn row_changes(&self) -> u64 {
        self.stats.initial_rows + self.stats.row_changes()
    }
}

/// Applies one workload to a database, over a connection of its own.
pub struct Driver {
    pg: Client,
    applied: Applied,
    /// Erasures waiting for their commit time: customer and transaction id.
    erasures: Vec<(String, String)>,
}

impl Driver {
    pub async fn connect(url: &str) -> Result<Self, WorkloadError> {
        let (pg, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(pg_err("connecting"))?;
        tokio::spawn(connection);
        Ok(Self {
            pg,
            applied: Applied::default(),
            erasures: Vec::new(),
        })
    }

    /// Empties the workload's tables (before the cdc slot of the run exists).
    pub async fn reset(pg: &Client) -> Result<(), WorkloadError> {
        pg.batch_execute("TRUNCATE shop.customers, shop.order_status")
            .await
            .map_err(pg_err("emptying shop.customers and shop.order_status"))
    }

    /// The rows before the cdc starts, in one transaction.
    pub async fn initial(&mut self, workload: &mut Workload) -> Result<(), WorkloadError> {
        let ops = workload.initial();
        self.apply(&ops).await
    }

    /// The transactions at their offsets from `start` (the stream's start); `progress` sees the
    /// count applied so far every few seconds.
    pub async fn run(
        &mut self,
        workload: &mut Workload,
        start: Instant,
        mut progress: impl FnMut(u64),
    ) -> Result<(), WorkloadError> {
        let mut last = Instant::now();
        let transactions: Vec<Transaction> = workload.transactions().collect();
        for (n, tx) in transactions.iter().enumerate() {
            let due = start + tx.offset;
            if Instant::now() > due + Duration::from_millis(100) {
                self.applied.behind += 1;
            }
            tokio::time::sleep_until(due.into()).await;
            self.apply(&tx.ops).await?;
            if last.elapsed() >= Duration::from_secs(3) {
                last = Instant::now();
                progress(n as u64 + 1);
            }
        }
        self.applied.stats = workload.stats().clone();
        Ok(())
    }

    async fn apply(&mut self, ops: &[RowOp]) -> Result<(), WorkloadError> {
        let tx = self
            .pg
            .transaction()
            .await
            .map_err(pg_err("starting a transaction"))?;
        let mut versions = Vec::new();
        let mut erased = Vec::new();
        for op in ops {
            let (table, key) = op.key();
            let what = format!("changing {table} {key}");
            let changed_at = |rows: Vec<tokio_postgres::Row>| {
                let row = rows.first().ok_or_else(|| {
                    WorkloadError::Invariant(format!("{table} has no row {key} to change"))
                })?;
                micros(row.get::<_, i64>(0))
            };
            match op {
                RowOp::InsertCustomer(c) | RowOp::UpdateCustomer(c) => {
                    let sql = if matches!(op, RowOp::InsertCustomer(_)) {
                        "INSERT INTO shop.customers (customer_id, name, email, country, tier, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, now()) RETURNING (extract(epoch FROM updated_at) * 1000000)::int8"
                    } else {
                        "UPDATE shop.customers SET name = $2, email = $3, country = $4, tier = $5, \
                         updated_at = now() WHERE customer_id = $1 \
                         RETURNING (extract(epoch FROM updated_at) * 1000000)::int8"
                    };
                    let rows = tx
                        .query(
                            sql,
                            &[
                                &c.customer_id,
                                &c.name,
                                &c.email,
                                &c.country,
                                &c.tier.as_str(),
                            ],
                        )
                        .await
                        .map_err(pg_err(what))?;
                    versions.push(CustomerVersion {
                        customer: c.clone(),
                        updated_at: changed_at(rows)?,
                    });
                }
                RowOp::DeleteCustomer { customer_id } => {
                    let n = tx
                        .execute(
                            "DELETE FROM shop.customers WHERE customer_id = $1",
                            &[customer_id],
                        )
                        .await
                        .map_err(pg_err(what))?;
                    if n != 1 {
                        return Err(WorkloadError::Invariant(format!(
                            "no customer {customer_id} to erase"
                        )));
                    }
                    erased.push(customer_id.clone());
                }
                RowOp::InsertOrderStatus { order_id, status } => {
                    tx.execute(
                        "INSERT INTO shop.order_status (order_id, status, updated_at) \
                         VALUES ($1, $2, now())",
                        &[order_id, &status.as_str()],
                    )
                    .await
                    .map_err(pg_err(what))?;
                }
                RowOp::UpdateOrderStatus { order_id, status } => {
                    let n = tx
                        .execute(
                            "UPDATE shop.order_status SET status = $2, updated_at = now() \
                             WHERE order_id = $1",
                            &[order_id, &status.as_str()],
                        )
                        .await
                        .map_err(pg_err(what))?;
                    if n != 1 {
                        return Err(WorkloadError::Invariant(format!(
                            "no order {order_id} to move on"
                        )));
                    }
                }
            }
        }
        let xid: String = if erased.is_empty() {
            String::new()
        } else {
            tx.query_one("SELECT pg_current_xact_id()::text", &[])
                .await
                .map_err(pg_err("reading the transaction id"))?
                .get(0)
        };
        tx.commit().await.map_err(pg_err("committing"))?;
        for version in versions {
            self.applied
                .customers
                .entry(version.customer.customer_id.clone())
                .or_default()
                .versions
                .push(version);
        }
        for customer in erased {
            self.erasures.push((customer, xid.clone()));
        }
        Ok(())
    }

    /// The workload as applied, erasures with their commit times.
    pub async fn finish(&mut self) -> Result<Applied, WorkloadError> {
        let xids: Vec<String> = self.erasures.iter().map(|(_, x)| x.clone()).collect();
        if !xids.is_empty() {
            let rows = self
                .pg
                .query(
                    "SELECT x, (extract(epoch FROM pg_xact_commit_timestamp(xid(x::xid8))) * 1000000)::int8 \
                     FROM unnest($1::text[]) AS x",
                    &[&xids],
                )
                .await
                .map_err(|e| {
                    if e.to_string().contains("track_commit_timestamp")
                        || e.as_db_error()
                            .is_some_and(|d| d.message().contains("track_commit_timestamp"))
                    {
                        WorkloadError::NoCommitTimestamps
                    } else {
                        pg_err("reading commit timestamps")(e)
                    }
                })?;
            let committed: BTreeMap<String, Option<i64>> =
                rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for (customer, xid) in &self.erasures {
                let at = committed
                    .get(xid)
                    .copied()
                    .flatten()
                    .ok_or(WorkloadError::NoCommitTimestamps)?;
                self.applied
                    .customers
                    .entry(customer.clone())
                    .or_default()
                    .erased_at = Some(micros(at)?);
            }
        }
        self.erasures.clear();
        Ok(std::mem::take(&mut self.applied))
    }
}

/// Waits for the cdc to record its initial snapshot (the workload starts after it, so the
/// snapshot and the stream split the rows cleanly); a cdc that exits is an error with its log.
/// Returns the rows it read and how long it took.
pub async fn wait_for_snapshot(
    pg: &Client,
    components: &mut crate::rig::components::Components,
    log: &std::path::Path,
    progress: &mut dyn crate::rig::Progress,
) -> Result<(i64, Duration), SnapshotWaitError> {
    let started = Instant::now();
    let limit = Duration::from_secs(120);
    loop {
        components.check_running()?;
        if let Some(record) = cdc::slot::snapshot_record(pg, cdc::DEFAULT_SLOT).await? {
            let took = started.elapsed();
            progress.step(&format!(
                "cdc: initial snapshot of {} rows confirmed by the broker in {:.1}s (consistent point {})",
                record.rows_read,
                took.as_secs_f64(),
                record.consistent_point
            ));
            return Ok((record.rows_read, took));
        }
        if started.elapsed() > limit {
            return Err(SnapshotWaitError::TimedOut {
                limit,
                log: log.to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotWaitError {
    #[error(transparent)]
    Component(#[from] crate::rig::components::ComponentError),
    #[error(transparent)]
    Cdc(#[from] cdc::CdcError),
    #[error("the cdc recorded no snapshot within {limit:?} (see its log, {})", log.display())]
    TimedOut {
        limit: Duration,
        log: std::path::PathBuf,
    },
}

fn micros(us: i64) -> Result<DateTime<Utc>, WorkloadError> {
    DateTime::from_timestamp_micros(us)
        .ok_or_else(|| WorkloadError::Invariant(format!("{us} µs is not a time")))
}
