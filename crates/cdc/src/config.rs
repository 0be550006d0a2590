use std::time::Duration;

use crate::TableName;

/// The slot and publication `cargo xtask up` creates (infra/postgres/shop.sql).
pub const DEFAULT_SLOT: &str = "sluice_cdc";
pub const DEFAULT_PUBLICATION: &str = "sluice_cdc";
/// The tables the warehouse models read the changes of.
pub const DEFAULT_TABLES: [&str; 2] = ["shop.customers", "shop.order_status"];
/// Where a slot's completed initial snapshot is recorded (Debezium keeps this in its offsets).
pub const SNAPSHOTS_TABLE: &str = "cdc.snapshots";
/// The prefix of the heartbeat messages the component writes into the WAL.
pub const HEARTBEAT_PREFIX: &str = "sluice.cdc.heartbeat";

/// What the cdc component reads and where it sends it.
#[derive(Clone, Debug)]
pub struct CdcConfig {
    /// An ordinary connection URL (`postgres://user:password@host:port/db`); the replication
    /// connection is derived from it.
    pub postgres_url: String,
    pub amqp_url: String,
    /// The exchange changes are published to, with routing key `cdc.<schema>.<table>`.
    pub exchange: String,
    pub slot: String,
    pub publication: String,
    /// Tables that must be in the publication (more may be; every one is captured).
    pub tables: Vec<TableName>,
    /// Messages published and not yet confirmed, at most (backpressure on the WAL reader).
    pub max_unconfirmed: usize,
    /// How often the confirmed position is reported to PostgreSQL.
    pub feedback_interval: Duration,
    /// How long a clean stop waits for outstanding confirms.
    pub shutdown_grace: Duration,
    /// How often the component writes a heartbeat into the WAL (a non-transactional logical
    /// message), so the slot's position moves on while the published tables are quiet and
    /// other writes grow the WAL; `None` for none.
    pub heartbeat: Option<Duration>,
}

impl CdcConfig {
    pub fn new(postgres_url: impl Into<String>, amqp_url: impl Into<String>) -> Self {
        Self {
            postgres_url: postgres_url.into(),
            amqp_url: amqp_url.into(),
            exchange: "events".into(),
            slot: DEFAULT_SLOT.into(),
            publication: DEFAULT_PUBLICATION.into(),
            tables: DEFAULT_TABLES
                .iter()
                .map(|t| t.parse().expect("valid table names"))
                .collect(),
            max_unconfirmed: 10_000,
            feedback_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            heartbeat: Some(Duration::from_secs(10)),
        }
    }

    /// The replication connection: the same server and database with `replication=database`.
    pub fn replication_url(&self) -> String {
        let separator = if self.postgres_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}replication=database", self.postgres_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replication_url_keeps_every_other_parameter() {
        let c = CdcConfig::new("postgres://u:p@127.0.0.1:5/db", "amqp://x");
        assert_eq!(
            c.replication_url(),
            "postgres://u:p@127.0.0.1:5/db?replication=database"
        );
        let c = CdcConfig::new("postgres://u:p@h/db?sslmode=disable", "amqp://x");
        assert!(
            c.replication_url()
                .ends_with("?sslmode=disable&replication=database")
        );
    }
}
