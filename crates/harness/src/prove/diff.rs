//! Row-by-row comparison of the warehouse's marts with the oracle's: rows missing from the
//! warehouse, rows it has that the oracle does not, and rows present in both whose columns
//! differ (each differing column with both values).

use std::fmt;

use crate::prove::mart::{Cell, Marts, RowKey, Table};

#[derive(Debug)]
pub struct ColumnChange {
    pub column: &'static str,
    pub expected: Cell,
    pub actual: Cell,
}

#[derive(Debug)]
pub struct TableDiff {
    pub table: &'static str,
    pub expected_rows: usize,
    pub actual_rows: usize,
    pub missing: Vec<(RowKey, Vec<Cell>)>,
    pub unexpected: Vec<(RowKey, Vec<Cell>)>,
    pub changed: Vec<(RowKey, Vec<ColumnChange>)>,
    /// Keys the warehouse holds more than once (the grain is broken): the count and one of
    /// the rows.
    pub repeated: Vec<(RowKey, usize, Vec<Cell>)>,
}

impl TableDiff {
    pub fn is_match(&self) -> bool {
        self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.changed.is_empty()
            && self.repeated.is_empty()
    }
}

pub fn diff_table(expected: &Table, actual: &Table) -> TableDiff {
    let spec = expected.spec;
    let mut out = TableDiff {
        table: spec.table,
        expected_rows: expected.len(),
        actual_rows: actual.len() + actual.repeated_keys.values().map(|n| n - 1).sum::<usize>(),
        missing: Vec::new(),
        unexpected: Vec::new(),
        changed: Vec::new(),
        repeated: actual
            .repeated_keys
            .iter()
            .map(|(k, n)| (k.clone(), *n, actual.rows[k].clone()))
            .collect(),
    };
    for (key, want) in &expected.rows {
        match actual.rows.get(key) {
            None => out.missing.push((key.clone(), want.clone())),
            Some(got) => {
                let changes: Vec<ColumnChange> = spec
                    .columns
                    .iter()
                    .zip(want.iter().zip(got))
                    .filter(|(_, (w, g))| w != g)
                    .map(|(c, (w, g))| ColumnChange {
                        column: c.name,
                        expected: w.clone(),
                        actual: g.clone(),
                    })
                    .collect();
                if !changes.is_empty() {
                    out.changed.push((key.clone(), changes));
                }
            }
        }
    }
    for (key, got) in &actual.rows {
        if !expected.rows.contains_key(key) {
            out.unexpected.push((key.clone(), got.clone()));
        }
    }
    out
}

/// The diff of all three marts.
#[derive(Debug)]
pub struct MartsDiff {
    pub tables: Vec<TableDiff>,
}

impl MartsDiff {
    pub fn is_match(&self) -> bool {
        self.tables.iter().all(TableDiff::is_match)
    }

    /// A run's problem line for each table that differs from `reference` (the oracle, the
    /// source).
    pub fn problems(&self, reference: &str) -> Vec<String> {
        self.tables
            .iter()
            .filter(|t| !t.is_match())
            .map(|t| {
                format!(
                    "{} differs from {reference}: {} missing, {} unexpected, {} changed, {} repeated keys",
                    t.table,
                    t.missing.len(),
                    t.unexpected.len(),
                    t.changed.len(),
                    t.repeated.len()
                )
            })
            .collect()
    }
}

pub fn diff_marts(expected: &Marts, actual: &Marts) -> MartsDiff {
    MartsDiff {
        tables: expected
            .tables()
            .into_iter()
            .zip(actual.tables())
            .map(|(e, a)| diff_table(e, a))
            .collect(),
    }
}

/// Rows listed per kind of difference before the report says "... and N more".
const SHOWN: usize = 10;

fn row_text(cells: &[Cell]) -> String {
    cells
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for TableDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_match() {
            return writeln!(
                f,
                "{}: {} rows, all match the oracle",
                self.table, self.actual_rows
            );
        }
        writeln!(
            f,
            "{}: MISMATCH (oracle {} rows, warehouse {} rows): {} missing, {} unexpected, {} changed, {} keys repeated",
            self.table,
            self.expected_rows,
            self.actual_rows,
            self.missing.len(),
            self.unexpected.len(),
            self.changed.len(),
            self.repeated.len(),
        )?;
        for (key, n, cells) in self.repeated.iter().take(SHOWN) {
            writeln!(
                f,
                "  repeated   {key}: {n} rows for one key, e.g. {}",
                row_text(cells)
            )?;
        }
        for (key, cells) in self.missing.iter().take(SHOWN) {
            writeln!(f, "  missing    {key}: {}", row_text(cells))?;
        }
        for (key, cells) in self.unexpected.iter().take(SHOWN) {
            writeln!(f, "  unexpected {key}: {}", row_text(cells))?;
        }
        for (key, changes) in self.changed.iter().take(SHOWN) {
            let cols: Vec<String> = changes
                .iter()
                .map(|c| format!("{} expected {} got {}", c.column, c.expected, c.actual))
                .collect();
            writeln!(f, "  changed    {key}: {}", cols.join("; "))?;
        }
        let hidden = [
            self.repeated.len(),
            self.missing.len(),
            self.unexpected.len(),
            self.changed.len(),
        ]
        .iter()
        .map(|n| n.saturating_sub(SHOWN))
        .sum::<usize>();
        if hidden > 0 {
            writeln!(f, "  ... and {hidden} more differing rows")?;
        }
        Ok(())
    }
}

impl fmt::Display for MartsDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tables {
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prove::mart::{DIM_CARD, Table};

    fn card(id: &str, price: i64) -> Vec<Cell> {
        let mut cells = vec![Cell::Text(id.into())];
        cells.extend((1..6).map(|_| Cell::Null));
        cells.push(Cell::Int(price));
        cells.extend((7..DIM_CARD.columns.len()).map(|_| Cell::Null));
        cells
    }

    #[test]
    fn missing_unexpected_changed_and_repeated_rows_are_each_reported() {
        let mut expected = Table::new(&DIM_CARD);
        let mut actual = Table::new(&DIM_CARD);
        expected.insert(card("card-1", 10));
        expected.insert(card("card-2", 20));
        expected.insert(card("card-3", 30));
        actual.insert(card("card-2", 21));
        actual.insert(card("card-3", 30));
        actual.insert(card("card-3", 30));
        actual.insert(card("card-4", 40));

        let d = diff_table(&expected, &actual);
        assert!(!d.is_match());
        assert_eq!(d.missing.len(), 1);
        assert_eq!(d.unexpected.len(), 1);
        assert_eq!(d.repeated.len(), 1);
        assert_eq!(d.actual_rows, 4);
        let (key, changes) = &d.changed[0];
        assert_eq!(key.to_string(), "card-2");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].column, "LIST_PRICE_CENTS");
        let text = d.to_string();
        assert!(
            text.contains("changed    card-2: LIST_PRICE_CENTS expected 20 got 21"),
            "{text}"
        );
        assert!(text.contains("missing    card-1"), "{text}");
        assert!(text.contains("unexpected card-4"), "{text}");
        assert!(text.contains("repeated   card-3: 2 rows"), "{text}");
    }

    #[test]
    fn equal_tables_match() {
        let mut a = Table::new(&DIM_CARD);
        let mut b = Table::new(&DIM_CARD);
        a.insert(card("card-1", 10));
        b.insert(card("card-1", 10));
        let d = diff_table(&a, &b);
        assert!(d.is_match(), "{d}");
        assert!(d.to_string().contains("all match"));
    }
}
