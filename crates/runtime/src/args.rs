//! Flags every component binary takes.

use std::path::PathBuf;

use crate::StackName;
use crate::state::{Aws, State, StateError};

/// `--stack NAME [--root DIR]`: take endpoints from a stack that `cargo xtask up` started.
#[derive(Clone, Debug, clap::Args)]
pub struct StackArgs {
    /// Take endpoints and credentials from this stack's state
    /// (`<root>/target/sluice/<stack>/state.json`, written by `cargo xtask up`).
    #[arg(long, env = "SLUICE_STACK")]
    pub stack: Option<StackName>,
    /// The checkout the stack lives under.
    #[arg(long, env = "SLUICE_ROOT", default_value = ".")]
    pub root: PathBuf,
}

impl StackArgs {
    pub fn load(&self) -> Result<Option<State>, StateError> {
        self.stack
            .as_ref()
            .map(|name| State::load(&self.root, name))
            .transpose()
    }
}

/// `--aws-endpoint-url` / `--aws-region` for runs without a stack.
#[derive(Clone, Debug, clap::Args)]
pub struct AwsArgs {
    /// An S3/SQS/SNS endpoint override (LocalStack); unset means real AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,
}

impl AwsArgs {
    /// The stack's AWS settings when there is a stack, else these flags.
    pub fn resolve(&self, state: Option<&State>) -> Aws {
        match state {
            Some(state) if self.aws_endpoint_url.is_none() => state.aws.clone(),
            _ => Aws {
                endpoint_url: self.aws_endpoint_url.clone(),
                region: self.aws_region.clone(),
                process: None,
                outputs: state.map(|s| s.aws.outputs.clone()).unwrap_or_default(),
                queue_timeouts: state.map(|s| s.aws.queue_timeouts).unwrap_or_default(),
            },
        }
    }
}

/// `--metrics-file FILE`.
#[derive(Clone, Debug, clap::Args)]
pub struct MetricsArgs {
    /// Write counters as JSON to this file every second and on exit.
    #[arg(long)]
    pub metrics_file: Option<PathBuf>,
}
