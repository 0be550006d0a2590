/// Why the cdc component stopped or restarted a session. [`CdcError::is_permanent`] tells a
/// setup the operator must fix (each says how) from a failure a restart can cure.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    #[error(
        "PostgreSQL runs with wal_level = {found}; logical replication needs wal_level = logical \
         (set it in postgresql.conf and restart the server; `cargo xtask up` starts its own that way)"
    )]
    WalLevel { found: String },
    #[error(
        "publication {publication} does not exist; `cargo xtask up` creates it from \
         infra/postgres/shop.sql, or run: CREATE PUBLICATION {publication} FOR TABLE {tables}"
    )]
    NoPublication { publication: String, tables: String },
    #[error(
        "publication {publication} does not include {table}, whose changes the warehouse models \
         read; run: ALTER PUBLICATION {publication} ADD TABLE {table}"
    )]
    PublicationMissingTable { publication: String, table: String },
    #[error(
        "table {table} (in publication {publication}) has no primary key, so its changes cannot \
         be keyed; add one (ALTER TABLE {table} ADD PRIMARY KEY (...)) or remove the table \
         (ALTER PUBLICATION {publication} DROP TABLE {table})"
    )]
    NoPrimaryKey { table: String, publication: String },
    #[error(
        "replication slot {slot} does not exist, but this database records a snapshot taken \
         from it (consistent point {consistent_point}, {completed_at}): it was dropped, and the \
         changes since are gone from the WAL. Run `cdc reset` (or `cargo xtask up` again) to \
         start over with a new snapshot; the warehouse then receives every row again as a read \
         (op r)"
    )]
    SlotDropped {
        slot: String,
        consistent_point: String,
        completed_at: String,
    },
    #[error(
        "replication slot {slot} lost the WAL it needed ({reason}: it fell behind by more than \
         max_slot_wal_keep_size); run `cdc reset` to start over with a new snapshot"
    )]
    SlotInvalidated { slot: String, reason: String },
    #[error(
        "replication slot {slot} is in use by server process {pid}: another cdc (or \
         pg_recvlogical) reads it; stop that one first"
    )]
    SlotInUse { slot: String, pid: i32 },
    #[error("replication slot {slot} uses the {plugin} plugin; this component reads pgoutput")]
    WrongPlugin { slot: String, plugin: String },
    #[error(
        "the bookkeeping table {table} is missing; `cargo xtask up` creates it from \
         infra/postgres/shop.sql"
    )]
    NoSnapshotsTable { table: String },
    #[error(
        "{table}.{column} was not sent with an update (an unchanged TOASTed value) and the row \
         before is not there to take it from; set ALTER TABLE {table} REPLICA IDENTITY FULL"
    )]
    UnchangedToast { table: String, column: String },
    #[error("{table}: {reason}")]
    Convert { table: String, reason: String },
    #[error(
        "the broker could not route {routing_key} to any queue (is the `cdc` queue declared and \
         bound to exchange `{exchange}` with `cdc.#`? `cargo xtask up` does both)"
    )]
    Unroutable {
        routing_key: String,
        exchange: String,
    },
    #[error("PostgreSQL ({what}): {source}")]
    Postgres {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("logical replication: {0}")]
    Replication(#[from] pg_walstream::ReplicationError),
    #[error("RabbitMQ ({what}): {source}")]
    Amqp {
        what: String,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker refused (nacked) a change; it is sent again after a restart")]
    Nacked,
}

impl CdcError {
    /// A setup problem no restart can cure: stop and say what to fix.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            CdcError::Postgres { .. }
                | CdcError::Replication(_)
                | CdcError::Amqp { .. }
                | CdcError::Nacked
                | CdcError::SlotInUse { .. }
        )
    }

    pub(crate) fn postgres(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let what = what.into();
        move |source| CdcError::Postgres { what, source }
    }

    pub(crate) fn amqp(what: impl Into<String>) -> impl FnOnce(lapin::Error) -> Self {
        let what = what.into();
        move |source| CdcError::Amqp { what, source }
    }
}
