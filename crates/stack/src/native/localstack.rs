//! LocalStack in host mode (no Docker): S3, SQS, SNS and CloudFormation from a pinned venv.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, io_err};
use crate::process;
use runtime::state::ProcessInfo;

pub(crate) fn tools(infra: &Path) -> pytools::ToolSet {
    pytools::ToolSet {
        name: "localstack".into(),
        requirements: infra.join("python/localstack-py311.txt"),
        constraints: None,
        min_python: (3, 11),
    }
}

pub(crate) fn start(
    venv: &pytools::Venv,
    infra: &Path,
    dir: &Path,
    port: u16,
) -> Result<ProcessInfo> {
    let root: PathBuf = dir.join("localstack");
    std::fs::create_dir_all(&root).map_err(io_err(format!("creating {}", root.display())))?;
    let mut c = Command::new(venv.python());
    // Twisted costs about 0.6 of hypercorn's CPU per call; the launcher makes it bind the host.
    c.arg(infra.join("localstack/launch.py")).envs([
        ("GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        ("GATEWAY_SERVER", "twisted".into()),
        ("LOCALSTACK_HOST", format!("127.0.0.1:{port}")),
        ("SERVICES", "s3,sqs,sns,cloudformation,cloudwatch".into()),
        ("EAGER_SERVICE_LOADING", "1".into()),
        ("DNS_ADDRESS", "0".into()),
        ("DISABLE_EVENTS", "1".into()),
        ("SKIP_SSL_CERT_DOWNLOAD", "1".into()),
        ("FILESYSTEM_ROOT", root.display().to_string()),
        ("SQS_ENDPOINT_STRATEGY", "path".into()),
        // Without it shutdown after load hangs for over 45 s.
        ("SQS_DISABLE_CLOUDWATCH_METRICS", "1".into()),
        // Its INFO line per request took 13 % of LocalStack's samples under load (py-spy, small
        // files), most of it waiting for the log handler's lock.
        ("LOG_LEVEL_OVERRIDES", "localstack.request=WARNING".into()),
    ]);
    process::spawn(c, &dir.join("localstack.log"))
}
