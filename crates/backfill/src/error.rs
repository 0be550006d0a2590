#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("Snowflake: {0}")]
    Snowflake(#[from] snowflake::Error),
    #[error("history.events row {event_id}: {reason}")]
    BadRow { event_id: String, reason: String },
}
