//! The oracle for the change log is the source itself: at the end of a run the current-state
//! models must equal the PostgreSQL tables row by row, `DIM_CUSTOMER` must equal the history the
//! workload wrote (each version from its `updated_at`, an erased customer's last version closed
//! at the erasure's commit), and `FCT_ORDER_STATUS` must equal the status table joined with the
//! order facts the event oracle expects.

use std::collections::HashMap;

use chrono::DateTime;
use tokio_postgres::Client;

use crate::prove::diff::{MartsDiff, diff_table};
use crate::prove::mart::{
    CUSTOMERS_CURRENT, Cell, DIM_CUSTOMER, FCT_ORDER_STATUS, ORDER_STATUS_CURRENT, Table,
};
use crate::rig::oltp::Applied;
use crate::rig::source;
use crate::rig::warehouse::{self, RawCount, WarehouseError};

#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("reading the source tables ({what}): {source}")]
    Postgres {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Warehouse(#[from] WarehouseError),
}

/// The check of one run's change log.
pub struct ChangelogCheck {
    pub diff: MartsDiff,
    /// What the warehouse holds, as read for the diff.
    pub actual: Vec<Table>,
    /// Streamed transactions that are in RAW only in part: (commit LSN, changes, size).
    pub partial: Vec<(String, u64, u64)>,
    pub raw: RawCount,
}

fn ts(us: i64) -> Cell {
    DateTime::from_timestamp_micros(us)
        .map(|t| Cell::Timestamp(t.naive_utc()))
        .unwrap_or(Cell::Null)
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

/// `shop.customers` and `shop.order_status` as they are now.
pub async fn source_tables(pg: &Client) -> Result<(Table, Table), ChangelogError> {
    let err = |what| move |source| ChangelogError::Postgres { what, source };
    let mut customers = Table::new(&CUSTOMERS_CURRENT);
    let rows = source::customers(pg).await.map_err(err("shop.customers"))?;
    for (id, name, email, country, tier, updated_us) in rows {
        customers.insert(vec![
            text(&id),
            text(&name),
            text(&email),
            text(&country),
            text(&tier),
            ts(updated_us),
        ]);
    }
    let mut statuses = Table::new(&ORDER_STATUS_CURRENT);
    let rows = source::order_statuses(pg)
        .await
        .map_err(err("shop.order_status"))?;
    for (order, status, updated_us) in rows {
        statuses.insert(vec![text(&order), text(&status), ts(updated_us)]);
    }
    Ok((customers, statuses))
}

/// The SCD2 dimension the workload's history gives.
pub fn dim_customer(applied: &Applied) -> Table {
    let mut table = Table::new(&DIM_CUSTOMER);
    let at = |t: chrono::DateTime<chrono::Utc>| Cell::Timestamp(t.naive_utc());
    for (id, history) in &applied.customers {
        for (i, version) in history.versions.iter().enumerate() {
            let next = history.versions.get(i + 1);
            let last = next.is_none();
            let valid_to = match next {
                Some(n) => at(n.updated_at),
                None => history.erased_at.map_or(Cell::Null, at),
            };
            let c = &version.customer;
            table.insert(vec![
                text(id),
                at(version.updated_at),
                text(&c.name),
                text(&c.email),
                text(&c.country),
                text(c.tier.as_str()),
                valid_to,
                Cell::Bool(last && history.erased_at.is_none()),
                Cell::Bool(last && history.erased_at.is_some()),
            ]);
        }
    }
    table
}

/// The status table joined with the order facts (`FCT_ORDERS` as the event oracle expects it):
/// per order its lines, units, amount and whether an event cancelled it; null without events.
pub fn fct_order_status(statuses: &Table, fct_orders: &Table) -> Table {
    #[derive(Default)]
    struct Order {
        customer: Option<Cell>,
        lines: i64,
        units: i64,
        amount: i64,
        cancelled: Option<Cell>,
    }
    let mut orders: HashMap<String, Order> = HashMap::new();
    for row in fct_orders.rows.values() {
        let (Cell::Text(id), Cell::Int(units), Cell::Int(amount)) = (&row[0], &row[6], &row[8])
        else {
            continue;
        };
        let o = orders.entry(id.clone()).or_default();
        o.customer = Some(row[3].clone());
        o.cancelled = Some(row[11].clone());
        o.lines += 1;
        o.units += units;
        o.amount += amount;
    }
    let mut table = Table::new(&FCT_ORDER_STATUS);
    for row in statuses.rows.values() {
        let id = match &row[0] {
            Cell::Text(id) => id.clone(),
            _ => continue,
        };
        let facts = orders.get(&id);
        table.insert(vec![
            row[0].clone(),
            row[1].clone(),
            row[2].clone(),
            facts.and_then(|o| o.customer.clone()).unwrap_or(Cell::Null),
            facts.map_or(Cell::Null, |o| Cell::Int(o.lines)),
            facts.map_or(Cell::Null, |o| Cell::Int(o.units)),
            facts.map_or(Cell::Null, |o| Cell::Int(o.amount)),
            facts
                .and_then(|o| o.cancelled.clone())
                .unwrap_or(Cell::Null),
        ]);
    }
    table
}

/// Reads the source and the warehouse and diffs every change-log model.
pub async fn check(
    pg: &Client,
    sf: &snowflake::Client,
    applied: &Applied,
    expected_fct_orders: &Table,
) -> Result<ChangelogCheck, ChangelogError> {
    let (customers, statuses) = source_tables(pg).await?;
    let order_status = fct_order_status(&statuses, expected_fct_orders);
    let expected = [customers, statuses, dim_customer(applied), order_status];
    let mut actual = Vec::new();
    for spec in crate::prove::mart::CDC {
        actual.push(warehouse::read_table(sf, spec).await?);
    }
    let diff = MartsDiff {
        tables: expected
            .iter()
            .zip(&actual)
            .map(|(e, a)| diff_table(e, a))
            .collect(),
    };
    Ok(ChangelogCheck {
        diff,
        actual,
        partial: warehouse::partial_transactions(sf).await?,
        raw: warehouse::raw_count(sf, "CDC_CHANGES").await?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use synth::oltp::{Customer, Tier};

    use super::*;
    use crate::rig::oltp::{CustomerHistory, CustomerVersion};

    fn version(country: &str, at: i64) -> CustomerVersion {
        CustomerVersion {
            customer: Customer {
                customer_id: "c-1".into(),
                name: "Ada L".into(),
                email: "ada@example.com".into(),
                country: country.into(),
                tier: Tier::Gold,
            },
            updated_at: Utc.timestamp_opt(1_772_000_000 + at, 0).unwrap(),
        }
    }

    #[test]
    fn versions_chain_and_an_erasure_closes_the_last() {
        let mut applied = Applied::default();
        applied.customers.insert(
            "c-1".into(),
            CustomerHistory {
                versions: vec![version("NL", 0), version("DE", 10)],
                erased_at: Some(Utc.timestamp_opt(1_772_000_020, 0).unwrap()),
            },
        );
        let table = dim_customer(&applied);
        let rows: Vec<&Vec<Cell>> = table.rows.values().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0][6], rows[1][1],
            "the first ends where the second begins"
        );
        assert_eq!(
            (&rows[0][7], &rows[0][8]),
            (&Cell::Bool(false), &Cell::Bool(false))
        );
        assert_eq!(
            (&rows[1][7], &rows[1][8]),
            (&Cell::Bool(false), &Cell::Bool(true))
        );
        assert_eq!(rows[1][4], Cell::Text("DE".into()));
        applied.customers.get_mut("c-1").unwrap().erased_at = None;
        let table = dim_customer(&applied);
        let last = table.rows.values().last().unwrap();
        assert_eq!((&last[6], &last[7]), (&Cell::Null, &Cell::Bool(true)));
    }
}
