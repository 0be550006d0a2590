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
    #[error("loading {key}: {inserted} rows inserted but the file has {rows}")]
    RowCount {
        key: String,
        inserted: u64,
        rows: u64,
    },
    #[error("SQS {operation} on {queue}: {reason}")]
    Sqs {
        operation: &'static str,
        queue: String,
        reason: String,
    },
}
