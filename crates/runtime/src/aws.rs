//! The AWS SDK configuration of a stack.

use std::time::Duration;

use crate::state::Aws;

/// How long one attempt of an AWS call may take. Without a bound, a connection the far side
/// accepts and never answers (a network fault, a frozen service) would hang a component
/// forever; with it, the call fails, is retried, and the component says so.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// LocalStack's endpoint with static test credentials when the stack has an endpoint override,
/// else the default credential chain of real AWS. Connects time out after 3 s and each
/// attempt after [`ATTEMPT_TIMEOUT`] (long polls wait 1 s, so they fit).
pub async fn sdk_config(aws: &Aws) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()))
        .timeout_config(timeouts);
    if let Some(endpoint) = &aws.endpoint_url {
        // Static test credentials only when an endpoint override is configured.
        loader = loader.endpoint_url(endpoint).credentials_provider(
            aws_credential_types::Credentials::new("test", "test", None, None, "sluice-localstack"),
        );
    }
    loader.load().await
}
