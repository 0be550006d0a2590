//! The three marts as the harness sees them: a fixed column list per mart, rows keyed by the
//! mart's grain, and cells compared the way the correctness model says (integers, text, dates
//! and timestamps exactly; ratios within [`RATIO_TOLERANCE`]).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};

/// Ratios (yield and defect rates, hours) are compared to this absolute precision: the
/// emulator computes them in binary floating point, a real account as NUMBER with six decimals.
pub const RATIO_TOLERANCE: f64 = 1e-6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Bool,
    Text,
    Date,
    Timestamp,
    Ratio,
}

#[derive(Clone, Debug)]
pub enum Cell {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Date(NaiveDate),
    /// UTC, microsecond precision.
    Timestamp(NaiveDateTime),
    Ratio(f64),
}

impl PartialEq for Cell {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::Date(a), Cell::Date(b)) => a == b,
            (Cell::Timestamp(a), Cell::Timestamp(b)) => a == b,
            (Cell::Ratio(a), Cell::Ratio(b)) => (a - b).abs() <= RATIO_TOLERANCE,
            _ => false,
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Int(v) => write!(f, "{v}"),
            Cell::Bool(v) => write!(f, "{v}"),
            Cell::Text(v) => f.write_str(v),
            Cell::Date(v) => write!(f, "{}", v.format("%Y-%m-%d")),
            Cell::Timestamp(v) => write!(f, "{}", v.format("%Y-%m-%dT%H:%M:%S%.6f")),
            Cell::Ratio(v) => write!(f, "{v:.6}"),
        }
    }
}

pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column { name, kind }
}

/// A mart's name in the warehouse, its columns in order, and how many leading columns make its
/// grain (the row key).
pub struct MartSpec {
    pub table: &'static str,
    pub columns: &'static [Column],
    pub key_len: usize,
}

impl MartSpec {
    pub fn column_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.columns.iter().map(|c| c.name)
    }
}

pub const DIM_CARD: MartSpec = MartSpec {
    table: "DIM_CARD",
    columns: &[
        col("CARD_ID", Kind::Text),
        col("SKU", Kind::Text),
        col("CARD_NAME", Kind::Text),
        col("SET_NAME", Kind::Text),
        col("RARITY", Kind::Text),
        col("RELEASE_DATE", Kind::Date),
        col("LIST_PRICE_CENTS", Kind::Int),
        col("CURRENCY", Kind::Text),
        col("FIRST_SEEN_AT", Kind::Timestamp),
    ],
    key_len: 1,
};

pub const FCT_ORDERS: MartSpec = MartSpec {
    table: "FCT_ORDERS",
    columns: &[
        col("ORDER_ID", Kind::Text),
        col("LINE_NUMBER", Kind::Int),
        col("CARD_ID", Kind::Text),
        col("CUSTOMER_ID", Kind::Text),
        col("CHANNEL", Kind::Text),
        col("SHIP_COUNTRY", Kind::Text),
        col("QUANTITY", Kind::Int),
        col("UNIT_PRICE_CENTS", Kind::Int),
        col("AMOUNT_CENTS", Kind::Int),
        col("ORDERED_AT", Kind::Timestamp),
        col("ORDERED_DATE", Kind::Date),
        col("IS_CANCELLED", Kind::Bool),
        col("CANCELLED_AT", Kind::Timestamp),
    ],
    key_len: 2,
};

pub const FCT_BATCH_PERFORMANCE: MartSpec = MartSpec {
    table: "FCT_BATCH_PERFORMANCE",
    columns: &[
        col("BATCH_ID", Kind::Text),
        col("CARD_ID", Kind::Text),
        col("FACTORY", Kind::Text),
        col("QUANTITY_PLANNED", Kind::Int),
        col("QUANTITY_PRODUCED", Kind::Int),
        col("QUANTITY_DEFECTIVE", Kind::Int),
        col("YIELD_RATE", Kind::Ratio),
        col("DEFECT_RATE", Kind::Ratio),
        col("DURATION_HOURS", Kind::Ratio),
        col("COMPLETED_AT", Kind::Timestamp),
        col("COMPLETED_DATE", Kind::Date),
    ],
    key_len: 1,
};

pub const ALL: [&MartSpec; 3] = [&DIM_CARD, &FCT_ORDERS, &FCT_BATCH_PERFORMANCE];

/// The change log's models: current state (compared with the source tables), the SCD2 history
/// (compared with the workload's) and order status joined to the order facts.
pub const CUSTOMERS_CURRENT: MartSpec = MartSpec {
    table: "CUSTOMERS_CURRENT",
    columns: &[
        col("CUSTOMER_ID", Kind::Text),
        col("NAME", Kind::Text),
        col("EMAIL", Kind::Text),
        col("COUNTRY", Kind::Text),
        col("TIER", Kind::Text),
        col("UPDATED_AT", Kind::Timestamp),
    ],
    key_len: 1,
};

pub const ORDER_STATUS_CURRENT: MartSpec = MartSpec {
    table: "ORDER_STATUS_CURRENT",
    columns: &[
        col("ORDER_ID", Kind::Text),
        col("STATUS", Kind::Text),
        col("UPDATED_AT", Kind::Timestamp),
    ],
    key_len: 1,
};

pub const DIM_CUSTOMER: MartSpec = MartSpec {
    table: "DIM_CUSTOMER",
    columns: &[
        col("CUSTOMER_ID", Kind::Text),
        col("VALID_FROM", Kind::Timestamp),
        col("NAME", Kind::Text),
        col("EMAIL", Kind::Text),
        col("COUNTRY", Kind::Text),
        col("TIER", Kind::Text),
        col("VALID_TO", Kind::Timestamp),
        col("IS_CURRENT", Kind::Bool),
        col("IS_DELETED", Kind::Bool),
    ],
    key_len: 2,
};

pub const FCT_ORDER_STATUS: MartSpec = MartSpec {
    table: "FCT_ORDER_STATUS",
    columns: &[
        col("ORDER_ID", Kind::Text),
        col("STATUS", Kind::Text),
        col("STATUS_UPDATED_AT", Kind::Timestamp),
        col("CUSTOMER_ID", Kind::Text),
        col("LINES", Kind::Int),
        col("UNITS", Kind::Int),
        col("AMOUNT_CENTS", Kind::Int),
        col("CANCELLED_BY_EVENT", Kind::Bool),
    ],
    key_len: 1,
};

pub const CDC: [&MartSpec; 4] = [
    &CUSTOMERS_CURRENT,
    &ORDER_STATUS_CURRENT,
    &DIM_CUSTOMER,
    &FCT_ORDER_STATUS,
];

/// The grain of a row, in a form that sorts naturally (line numbers are zero-padded).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey(String);

impl fmt::Display for RowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One mart's rows, by key.
pub struct Table {
    pub spec: &'static MartSpec,
    pub rows: BTreeMap<RowKey, Vec<Cell>>,
    /// Keys that occurred more than once (a broken grain), with how often.
    pub repeated_keys: BTreeMap<RowKey, usize>,
}

impl Table {
    pub fn new(spec: &'static MartSpec) -> Self {
        Self {
            spec,
            rows: BTreeMap::new(),
            repeated_keys: BTreeMap::new(),
        }
    }

    /// Adds a row; its cells must follow the spec's columns.
    pub fn insert(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.spec.columns.len(), "{}", self.spec.table);
        let key = RowKey(
            cells[..self.spec.key_len]
                .iter()
                .map(|c| match c {
                    Cell::Int(v) => format!("{v:06}"),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("#"),
        );
        if self.rows.insert(key.clone(), cells).is_some() {
            *self.repeated_keys.entry(key).or_insert(1) += 1;
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as CSV, header first, rows sorted by key: the snapshot form.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.spec.column_names().collect::<Vec<_>>().join(","));
        out.push('\n');
        for cells in self.rows.values() {
            let line: Vec<String> = cells.iter().map(|c| csv_field(&c.to_string())).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// All three marts.
pub struct Marts {
    pub dim_card: Table,
    pub fct_orders: Table,
    pub fct_batch_performance: Table,
}

impl Marts {
    pub fn empty() -> Self {
        Self {
            dim_card: Table::new(&DIM_CARD),
            fct_orders: Table::new(&FCT_ORDERS),
            fct_batch_performance: Table::new(&FCT_BATCH_PERFORMANCE),
        }
    }

    pub fn tables(&self) -> [&Table; 3] {
        [
            &self.dim_card,
            &self.fct_orders,
            &self.fct_batch_performance,
        ]
    }

    pub fn table_mut(&mut self, spec: &MartSpec) -> &mut Table {
        match spec.table {
            "DIM_CARD" => &mut self.dim_card,
            "FCT_ORDERS" => &mut self.fct_orders,
            "FCT_BATCH_PERFORMANCE" => &mut self.fct_batch_performance,
            other => unreachable!("{other} is not one of the marts in mart::ALL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_compare_within_the_tolerance_and_nothing_else_does() {
        assert_eq!(Cell::Ratio(0.9042857142857142), Cell::Ratio(0.904286));
        assert_ne!(Cell::Ratio(0.9042), Cell::Ratio(0.9043));
        assert_ne!(Cell::Int(1), Cell::Ratio(1.0));
        assert_ne!(Cell::Null, Cell::Text(String::new()));
    }

    #[test]
    fn keys_sort_line_numbers_numerically_and_repeats_are_counted() {
        let mut t = Table::new(&FCT_ORDERS);
        let row = |line: i64| {
            let mut cells = vec![Cell::Text("ord-1".into()), Cell::Int(line)];
            cells.extend((2..FCT_ORDERS.columns.len()).map(|_| Cell::Null));
            cells
        };
        t.insert(row(10));
        t.insert(row(9));
        t.insert(row(9));
        let keys: Vec<String> = t.rows.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["ord-1#000009", "ord-1#000010"]);
        assert_eq!(t.repeated_keys.values().copied().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(&DIM_CARD);
        let mut cells = vec![
            Cell::Text("card-1".into()),
            Cell::Text("SKU".into()),
            Cell::Text("Kitty, \"the\" Seer".into()),
        ];
        cells.extend((3..DIM_CARD.columns.len()).map(|_| Cell::Null));
        t.insert(cells);
        let csv = t.to_csv();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with(r#"card-1,SKU,"Kitty, ""the"" Seer",NULL"#),
            "{csv}"
        );
    }
}
