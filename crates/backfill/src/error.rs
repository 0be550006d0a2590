#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("Snowflake: {0}")]
    Snowflake(#[from] snowflake::Error),
    #[error("line {line}: not a canonical event: {reason}")]
    BadLine { line: u64, reason: String },
    #[error("line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("history.events row {event_id}: {reason}")]
    BadRow { event_id: String, reason: String },
}
