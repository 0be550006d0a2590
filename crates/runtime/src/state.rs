//! `target/sluice/<stack>/state.json`: what a stack is made of and how to reach it. Written with
//! mode 0600 because it holds the stack's generated credentials.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::StackName;

/// Why a stack's state could not be read or written. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("no stack {stack:?} here (no {}); start one with `cargo xtask up --stack {stack}`", path.display())]
    NotFound { stack: String, path: PathBuf },
    #[error(
        "state file {} is corrupt ({reason}); stop any processes it started by hand if needed, then remove the file",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, StateError>;

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StateError {
    let context = context.into();
    move |source| StateError::Io { context, source }
}

/// A process a stack started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22): a PID that was reused
    /// by another process has another start time, so it is never signalled by mistake.
    pub start_ticks: u64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub log: PathBuf,
}

/// The fields of `/proc/<pid>/stat` after the command name (field 3 first).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

impl ProcessInfo {
    /// Running, and still the process that was started (a zombie counts as gone).
    pub fn is_alive(&self) -> bool {
        match stat_fields(self.pid) {
            Some(f) => {
                f.first().is_some_and(|state| state != "Z")
                    && f.get(19).and_then(|t| t.parse().ok()) == Some(self.start_ticks)
            }
            None => false,
        }
    }

    pub fn uptime(&self) -> std::time::Duration {
        (chrono::Utc::now() - self.started_at)
            .to_std()
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Native,
    Containers,
    External,
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProviderKind::Native => "native",
            ProviderKind::Containers => "containers",
            ProviderKind::External => "external",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RabbitMq {
    /// `amqp://user:password@127.0.0.1:port/%2f`
    pub amqp_url: String,
    pub management_url: String,
    pub user: String,
    pub password: String,
    pub process: Option<ProcessInfo>,
    /// The Erlang port mapper this stack started for the node.
    pub epmd: Option<ProcessInfo>,
    /// How to start the node again on its data (a native stack's broker restart).
    #[serde(default)]
    pub node: Option<NativeNode>,
}

/// A RabbitMQ node the native provider started: enough to start it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeNode {
    /// The server package's `sbin/`.
    pub sbin: PathBuf,
    /// The node's folder (config, data, logs).
    pub dir: PathBuf,
    pub name: String,
    pub amqp_port: u16,
    pub management_port: u16,
    pub dist_port: u16,
    pub epmd_port: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Postgres {
    /// `postgres://user:password@127.0.0.1:port/database`
    pub url: String,
    pub process: Option<ProcessInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Aws {
    /// LocalStack's endpoint; `None` means real AWS.
    pub endpoint_url: Option<String>,
    pub region: String,
    pub process: Option<ProcessInfo>,
    /// The CloudFormation stack's Outputs (BucketName, IngestQueueUrl, ...).
    pub outputs: BTreeMap<String, String>,
    /// The queues' timeouts as the CloudFormation stack has them (its parameters). States
    /// written before they were parameters had the production values.
    #[serde(default)]
    pub queue_timeouts: QueueTimeouts,
}

/// How long the pipeline's SQS queues keep a received message from other consumers, and how
/// many receives move it to the dead-letter queue: the template's parameters, chosen when a
/// stack is created. A consumer that dies holding messages gives them back only after their
/// visibility timeout, so these bound every recovery; the harness reads them here instead of
/// assuming the production values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueTimeouts {
    /// The ingest queue (relay -> batcher), in seconds.
    pub ingest_visibility_s: u32,
    /// The snowpipe-notify queue (the batcher's notices -> pipe), in seconds.
    pub notify_visibility_s: u32,
    /// Receives of an ingest message before its queue's redrive moves it to the DLQ.
    pub max_receive_count: u32,
}

impl QueueTimeouts {
    /// What a deployment to AWS keeps: an event-source mapping needs the source queue's
    /// visibility timeout at least six times the function's timeout (60 s covers a batcher
    /// timeout up to 10 s), and the pipe's loads of large files need minutes.
    pub const PRODUCTION: Self = Self {
        ingest_visibility_s: 60,
        notify_visibility_s: 120,
        max_receive_count: 5,
    };

    /// Test stacks: a message held by a killed or crashed consumer comes back in seconds. Longer
    /// than any batch a test holds (its window plus a put and a publish), so a live consumer's
    /// messages are not taken from it.
    pub const TEST: Self = Self {
        ingest_visibility_s: 10,
        notify_visibility_s: 10,
        max_receive_count: 5,
    };

    pub fn ingest_visibility(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.ingest_visibility_s.into())
    }

    pub fn notify_visibility(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.notify_visibility_s.into())
    }

    /// The longest a killed consumer can keep events from RAW: its ingest messages come back
    /// after one timeout, the notices of files it wrote after the other.
    pub fn redelivery_bound(&self) -> std::time::Duration {
        self.ingest_visibility() + self.notify_visibility()
    }
}

impl Default for QueueTimeouts {
    fn default() -> Self {
        Self::PRODUCTION
    }
}

impl std::fmt::Display for QueueTimeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "visibility timeout ingest {} s, notify {} s; max receives {}",
            self.ingest_visibility_s, self.notify_visibility_s, self.max_receive_count
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snowflake {
    /// fakesnow's URL; `None` means `https://<account>.snowflakecomputing.com`.
    pub base_url: Option<String>,
    pub account: String,
    pub user: String,
    pub database: String,
    /// Set for fakesnow; real accounts take credentials from the environment, never the state.
    pub password: Option<String>,
    pub process: Option<ProcessInfo>,
}

/// A container the container provider started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub service: String,
    pub id: String,
    #[serde(default)]
    pub image: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub stack: StackName,
    pub provider: ProviderKind,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub dir: PathBuf,
    pub rabbitmq: RabbitMq,
    pub postgres: Postgres,
    pub aws: Aws,
    pub snowflake: Snowflake,
    /// Containers to remove on `down` (container provider only).
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
    /// The Docker engine (`DOCKER_HOST` form) the containers run on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_host: Option<String>,
}

/// Where stacks live: `<root>/target/sluice/<stack>/`.
pub fn stack_dir(root: &Path, name: &StackName) -> PathBuf {
    root.join("target").join("sluice").join(name.as_str())
}

/// A new folder for one run's reports and logs: `<root>/target/sluice-runs/<stack>/<UTC
/// time>-<kind>/`. Outside the stack's folder, so taking the stack down keeps them.
pub fn new_run_dir(root: &Path, name: &StackName, kind: &str) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    root.join("target")
        .join("sluice-runs")
        .join(name.as_str())
        .join(format!("{stamp}-{kind}"))
}

pub fn state_path(root: &Path, name: &StackName) -> PathBuf {
    stack_dir(root, name).join("state.json")
}

impl State {
    /// Reads a stack's state; a missing or corrupt file is a clear error.
    pub fn load(root: &Path, name: &StackName) -> Result<Self> {
        let path = state_path(root, name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotFound {
                    stack: name.to_string(),
                    path,
                });
            }
            Err(e) => return Err(io_err(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_str(&text).map_err(|e| StateError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes the state atomically with mode 0600.
    pub fn save(&self, root: &Path) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = state_path(root, &self.stack);
        let partial = path.with_extension("json.partial");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io_err(format!("writing {}", partial.display())))?;
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(io_err(format!("writing {}", partial.display())))?;
        std::fs::rename(&partial, &path).map_err(io_err(format!("renaming to {}", path.display())))
    }

    /// Every process the stack started, in the order to stop them.
    pub fn processes(&self) -> Vec<(&'static str, &ProcessInfo)> {
        [
            ("fakesnow", self.snowflake.process.as_ref()),
            ("localstack", self.aws.process.as_ref()),
            ("postgres", self.postgres.process.as_ref()),
            ("rabbitmq", self.rabbitmq.process.as_ref()),
            ("epmd", self.rabbitmq.epmd.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.map(|p| (n, p)))
        .collect()
    }

    /// `export` lines for using the stack from a shell.
    pub fn env_exports(&self) -> Vec<(String, String)> {
        let mut vars = vec![
            ("SLUICE_STACK".to_owned(), self.stack.to_string()),
            ("SLUICE_AMQP_URL".to_owned(), self.rabbitmq.amqp_url.clone()),
            (
                "SLUICE_RABBITMQ_MANAGEMENT_URL".to_owned(),
                self.rabbitmq.management_url.clone(),
            ),
            ("SLUICE_POSTGRES_URL".to_owned(), self.postgres.url.clone()),
            ("AWS_REGION".to_owned(), self.aws.region.clone()),
            (
                "SNOWFLAKE_ACCOUNT".to_owned(),
                self.snowflake.account.clone(),
            ),
            ("SNOWFLAKE_USER".to_owned(), self.snowflake.user.clone()),
            (
                "SNOWFLAKE_DATABASE".to_owned(),
                self.snowflake.database.clone(),
            ),
        ];
        if let Some(endpoint) = &self.aws.endpoint_url {
            vars.push(("AWS_ENDPOINT_URL".into(), endpoint.clone()));
            vars.push(("AWS_ACCESS_KEY_ID".into(), "test".into()));
            vars.push(("AWS_SECRET_ACCESS_KEY".into(), "test".into()));
        }
        if let Some(url) = &self.snowflake.base_url {
            vars.push(("SNOWFLAKE_URL".into(), url.clone()));
        }
        if let Some(password) = &self.snowflake.password {
            vars.push(("SNOWFLAKE_PASSWORD".into(), password.clone()));
        }
        for (output, value) in &self.aws.outputs {
            vars.push((format!("SLUICE_{}", screaming(output)), value.clone()));
        }
        vars
    }
}

/// `IngestQueueUrl` -> `INGEST_QUEUE_URL`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_from_before_queue_timeouts_reads_with_the_production_ones() {
        let aws: Aws = serde_json::from_str(
            r#"{"endpoint_url": null, "region": "us-east-1", "process": null, "outputs": {}}"#,
        )
        .unwrap();
        assert_eq!(aws.queue_timeouts, QueueTimeouts::PRODUCTION);
        assert!(
            QueueTimeouts::TEST.redelivery_bound() < QueueTimeouts::PRODUCTION.redelivery_bound()
        );
    }

    #[test]
    fn outputs_become_screaming_snake_case() {
        assert_eq!(screaming("IngestQueueUrl"), "INGEST_QUEUE_URL");
        assert_eq!(screaming("BucketName"), "BUCKET_NAME");
    }
}
