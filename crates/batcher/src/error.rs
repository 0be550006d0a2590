#[derive(Debug, thiserror::Error)]
pub enum BatcherError {
    #[error("the stack state has no CloudFormation output `{0}`; was `cargo xtask up` run?")]
    MissingOutput(&'static str),
    #[error("writing s3://{bucket}/{key}: {reason}")]
    Put {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("announcing {key} on {topic}: {reason}")]
    Announce {
        topic: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Format(#[from] rawfiles::FormatError),
    #[error("fault injected: crashed after writing {key} and before announcing it")]
    InjectedCrash { key: String },
    #[error("SQS {operation} on {queue}: {reason}")]
    Sqs {
        operation: &'static str,
        queue: String,
        reason: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
}
