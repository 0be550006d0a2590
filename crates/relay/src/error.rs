#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("connecting to RabbitMQ at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "consuming queue `{queue}`: {source} (does the queue exist? `cargo xtask up` declares it)"
    )]
    Consume {
        queue: String,
        #[source]
        source: lapin::Error,
    },
    #[error("RabbitMQ channel failed: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the stack state has no CloudFormation output `{0}`; was `cargo xtask up` run?")]
    MissingOutput(&'static str),
    #[error("invalid configuration: {0}")]
    Config(String),
}
