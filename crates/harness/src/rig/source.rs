//! What the harness reads from and resets in PostgreSQL, the pipeline's sources: the history
//! the backfill reads, the `shop` tables the cdc captures, and the cdc slot's WAL. (The OLTP
//! workload's own statements are the workload: they live with its driver in [`super::oltp`].)

use tokio_postgres::{Client, Error};

/// Empties `history.events`, so the backfill reads exactly one run's history.
pub async fn empty_history(pg: &Client) -> Result<(), Error> {
    pg.batch_execute("DELETE FROM history.events").await
}

/// A customer as `shop.customers` holds it: id, name, email, country, tier, and `updated_at` in
/// microseconds since the epoch.
pub type CustomerRow = (String, String, String, String, String, i64);

/// Every row of `shop.customers`.
pub async fn customers(pg: &Client) -> Result<Vec<CustomerRow>, Error> {
    Ok(pg
        .query(
            "SELECT customer_id, name, email, country, tier, \
             (extract(epoch FROM updated_at) * 1000000)::int8 FROM shop.customers",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect())
}

/// Every row of `shop.order_status`: order id, status, `updated_at` in microseconds.
pub async fn order_statuses(pg: &Client) -> Result<Vec<(String, String, i64)>, Error> {
    Ok(pg
        .query(
            "SELECT order_id, status, (extract(epoch FROM updated_at) * 1000000)::int8 \
             FROM shop.order_status",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The WAL `slot` holds back (from its restart LSN) and has not confirmed, in bytes; None when
/// there is no such slot.
pub async fn slot_wal(pg: &Client, slot: &str) -> Result<Option<(u64, u64)>, Error> {
    let row = pg
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    let bytes = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok(row.map(|r| (bytes(r.get(0)), bytes(r.get(1)))))
}
