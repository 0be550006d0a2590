#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error("the stack state has no CloudFormation output `{0}`; was `cargo xtask up` run?")]
    MissingOutput(&'static str),
    #[error("Snowflake: {0}")]
    Snowflake(#[from] snowflake::Error),
    #[error("reading s3://{bucket}/{key}: {reason}")]
    Get {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("loading {keys:?}: {inserted} rows inserted but the files have {rows}")]
    RowCount {
        keys: Vec<String>,
        inserted: u64,
        rows: u64,
    },
    #[error("SQS {operation} on {queue}: {reason}")]
    Sqs {
        operation: &'static str,
        queue: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}
