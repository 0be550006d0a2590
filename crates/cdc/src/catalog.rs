//! The published tables as the catalog describes them: columns in order with their types, and
//! the primary key. The key comes from the catalog, not from pgoutput's Relation message: with
//! REPLICA IDENTITY FULL, pgoutput flags every column as part of the key.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use tokio_postgres::Client;

use crate::CdcError;

/// A schema-qualified table name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

impl FromStr for TableName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('.') {
            Some((schema, name)) if !schema.is_empty() && !name.is_empty() => {
                Ok(Self::new(schema, name))
            }
            _ => Err(format!(
                "{s:?} is not schema-qualified; write it as schema.table (e.g. shop.customers)"
            )),
        }
    }
}

/// One published table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub name: TableName,
    /// Columns in table order, with their type OIDs.
    pub columns: Vec<(String, u32)>,
    /// Primary key columns, in key order.
    pub key: Vec<String>,
}

impl TableInfo {
    pub fn type_of(&self, column: &str) -> Option<u32> {
        self.columns
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, oid)| *oid)
    }
}

/// Every table of a publication, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    tables: BTreeMap<TableName, TableInfo>,
}

impl Catalog {
    /// Reads the publication's tables. Each must have a primary key.
    pub async fn load(pg: &Client, publication: &str) -> Result<Self, CdcError> {
        let rows = pg
            .query(
                "SELECT schemaname::text, tablename::text FROM pg_publication_tables \
                 WHERE pubname = $1 ORDER BY 1, 2",
                &[&publication],
            )
            .await
            .map_err(CdcError::postgres("reading the publication's tables"))?;
        let mut tables = BTreeMap::new();
        for row in rows {
            let name = TableName::new(row.get::<_, String>(0), row.get::<_, String>(1));
            let info = describe(pg, &name).await?;
            if info.key.is_empty() {
                return Err(CdcError::NoPrimaryKey {
                    table: name.to_string(),
                    publication: publication.to_owned(),
                });
            }
            tables.insert(name, info);
        }
        Ok(Self { tables })
    }

    pub fn get(&self, schema: &str, table: &str) -> Option<&TableInfo> {
        self.tables.get(&TableName::new(schema, table))
    }

    pub fn contains(&self, name: &TableName) -> bool {
        self.tables.contains_key(name)
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableInfo> {
        self.tables.values()
    }
}

async fn describe(pg: &Client, name: &TableName) -> Result<TableInfo, CdcError> {
    let what = format!("describing {name}");
    let qualified = format!("{}.{}", quote_ident(&name.schema), quote_ident(&name.name));
    let columns = pg
        .query(
            "SELECT attname::text, atttypid::oid FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped \
             ORDER BY attnum",
            &[&qualified],
        )
        .await
        .map_err(CdcError::postgres(what.clone()))?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, u32>(1)))
        .collect();
    let key = pg
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary \
             ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&qualified],
        )
        .await
        .map_err(CdcError::postgres(what))?
        .into_iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(TableInfo {
        name: name.clone(),
        columns,
        key,
    })
}

/// An identifier quoted for SQL.
pub(crate) fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

impl Catalog {
    /// Reads one table again (a Relation message: new to the publication, or altered).
    pub async fn refresh(
        &mut self,
        pg: &Client,
        publication: &str,
        name: &TableName,
    ) -> Result<(), CdcError> {
        let info = describe(pg, name).await?;
        if info.key.is_empty() {
            return Err(CdcError::NoPrimaryKey {
                table: name.to_string(),
                publication: publication.to_owned(),
            });
        }
        self.tables.insert(name.clone(), info);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_must_be_qualified() {
        let t: TableName = "shop.customers".parse().unwrap();
        assert_eq!(t, TableName::new("shop", "customers"));
        assert_eq!(t.to_string(), "shop.customers");
        for bad in ["customers", ".x", "x."] {
            assert!(
                bad.parse::<TableName>()
                    .unwrap_err()
                    .contains("schema.table")
            );
        }
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
