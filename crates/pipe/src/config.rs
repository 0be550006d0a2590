use crate::PipeError;

#[derive(Clone, Debug)]
pub struct PipeConfig {
    /// The queue S3 notifications arrive on (through SNS, or directly).
    pub queue_url: String,
    pub snowflake: snowflake::Config,
}

impl PipeConfig {
    pub fn from_stack(state: &runtime::State) -> Result<Self, PipeError> {
        Ok(Self {
            queue_url: state
                .aws
                .outputs
                .get("SnowpipeNotifyQueueUrl")
                .cloned()
                .ok_or(PipeError::MissingOutput("SnowpipeNotifyQueueUrl"))?,
            snowflake: {
                let mut c = snowflake::Config::from_state(&state.snowflake)?;
                // A call that hangs (a frozen warehouse, a dropped connection) fails in time
                // and its batch is retried; long statements are polled, so this bounds a call.
                c.request_timeout = std::time::Duration::from_secs(30);
                c
            },
        })
    }
}
