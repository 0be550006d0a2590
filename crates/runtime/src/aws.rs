//! The AWS SDK configuration of a stack.

use crate::state::Aws;

/// LocalStack's endpoint with static test credentials when the stack has an endpoint override,
/// else the default credential chain of real AWS.
pub async fn sdk_config(aws: &Aws) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()));
    if let Some(endpoint) = &aws.endpoint_url {
        // Static test credentials only when an endpoint override is configured.
        loader = loader.endpoint_url(endpoint).credentials_provider(
            aws_credential_types::Credentials::new("test", "test", None, None, "sluice-localstack"),
        );
    }
    loader.load().await
}
