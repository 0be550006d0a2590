//! An isolated RabbitMQ node: its own epmd, ports, cookie, config and definitions.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::{Result, StackError, io_err};
use crate::process;
use runtime::state::ProcessInfo;

pub(crate) struct Plan {
    pub dir: PathBuf,
    pub node: String,
    pub amqp_port: u16,
    pub management_port: u16,
    pub dist_port: u16,
    pub epmd_port: u16,
    pub user: String,
    pub password: String,
}

impl Plan {
    pub fn amqp_url(&self) -> String {
        format!(
            "amqp://{}:{}@127.0.0.1:{}/%2f",
            self.user, self.password, self.amqp_port
        )
    }
}

pub(crate) fn find_sbin(configured: Option<&Path>) -> Result<PathBuf> {
    let has_server = |dir: &Path| dir.join("rabbitmq-server").is_file();
    if let Some(dir) = configured {
        return if has_server(dir) {
            Ok(dir.to_owned())
        } else {
            Err(StackError::MissingBinary {
                what: "RabbitMQ server",
                looked: format!("{}/rabbitmq-server", dir.display()),
                package: "rabbitmq-server",
            })
        };
    }
    // The package's own scripts run as the caller; the wrappers on PATH switch to the system user.
    let base = Path::new("/usr/lib/rabbitmq/lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("sbin"))
        .filter(|p| has_server(p))
        .collect();
    found.sort();
    found.pop().ok_or(StackError::MissingBinary {
        what: "RabbitMQ server",
        looked: format!("{}/rabbitmq_server-*/sbin/rabbitmq-server", base.display()),
        package: "rabbitmq-server",
    })
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64(salt ++ sha256(salt ++ password)).
fn password_hash(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    let digest = Sha256::new()
        .chain_update(salt)
        .chain_update(password.as_bytes())
        .finalize();
    let mut bytes = salt.to_vec();
    bytes.extend_from_slice(&digest);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The infra definitions plus this stack's user, loaded by the node at boot.
pub(crate) fn definitions(infra: &Path, user: &str, password: &str) -> Result<serde_json::Value> {
    let path = infra.join("rabbitmq/definitions.json");
    let text =
        std::fs::read_to_string(&path).map_err(io_err(format!("reading {}", path.display())))?;
    let mut defs: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| StackError::Apply {
            what: path.display().to_string(),
            reason: e.to_string(),
        })?;
    defs["users"] = serde_json::json!([{
        "name": user,
        "password_hash": password_hash(password),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": "administrator",
    }]);
    defs["permissions"] = serde_json::json!([{"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]);
    Ok(defs)
}

fn env(plan: &Plan) -> Vec<(String, String)> {
    let d = |p: &str| plan.dir.join(p).display().to_string();
    vec![
        ("HOME".into(), d("home")),
        ("RABBITMQ_NODENAME".into(), plan.node.clone()),
        ("RABBITMQ_NODE_IP_ADDRESS".into(), "127.0.0.1".into()),
        ("RABBITMQ_NODE_PORT".into(), plan.amqp_port.to_string()),
        ("RABBITMQ_DIST_PORT".into(), plan.dist_port.to_string()),
        ("RABBITMQ_CONF_ENV_FILE".into(), d("empty-env.conf")),
        ("RABBITMQ_CONFIG_FILE".into(), d("rabbitmq.conf")),
        ("RABBITMQ_ENABLED_PLUGINS_FILE".into(), d("enabled_plugins")),
        ("RABBITMQ_MNESIA_BASE".into(), d("mnesia")),
        ("RABBITMQ_LOG_BASE".into(), d("log")),
        ("RABBITMQ_PID_FILE".into(), d("rabbit.pid")),
        ("ERL_EPMD_PORT".into(), plan.epmd_port.to_string()),
        ("ERL_EPMD_ADDRESS".into(), "127.0.0.1".into()),
    ]
}

/// Starts epmd, then the node. Returns (epmd, node).
pub(crate) fn start(plan: &Plan, sbin: &Path, infra: &Path) -> Result<(ProcessInfo, ProcessInfo)> {
    for sub in ["home", "mnesia", "log"] {
        std::fs::create_dir_all(plan.dir.join(sub))
            .map_err(io_err(format!("creating {}", plan.dir.join(sub).display())))?;
    }
    let write = |name: &str, text: String| {
        let path = plan.dir.join(name);
        std::fs::write(&path, text).map_err(io_err(format!("writing {}", path.display())))
    };
    write("empty-env.conf", String::new())?;
    write("enabled_plugins", "[rabbitmq_management].\n".into())?;
    write(
        "definitions.json",
        serde_json::to_string_pretty(&definitions(infra, &plan.user, &plan.password)?)
            .expect("json"),
    )?;
    // Queue statistics every second (the default is 5 s): the load test samples queue depths
    // from the management API once a second.
    write(
        "rabbitmq.conf",
        format!(
            "listeners.tcp.default = 127.0.0.1:{}\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {}\n\
             distribution.listener.interface = 127.0.0.1\nload_definitions = {}\nloopback_users = none\n\
             collect_statistics_interval = 1000\n",
            plan.amqp_port,
            plan.management_port,
            plan.dir.join("definitions.json").display()
        ),
    )?;
    // Our own epmd, in the foreground, so the stack knows its PID and stops exactly it.
    let mut epmd = Command::new("epmd");
    epmd.args([
        "-port",
        &plan.epmd_port.to_string(),
        "-address",
        "127.0.0.1",
    ]);
    let epmd = process::spawn(epmd, &plan.dir.join("epmd.log"))?;
    let node = start_node(plan, sbin)?;
    Ok((epmd, node))
}

/// The node alone, on the folder `start` prepared (also to start it again after it died).
pub(crate) fn start_node(plan: &Plan, sbin: &Path) -> Result<ProcessInfo> {
    let mut server = Command::new(sbin.join("rabbitmq-server"));
    server
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env(plan));
    process::spawn(server, &plan.dir.join("rabbitmq.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hash_is_salted_sha256() {
        let h = base64::engine::general_purpose::STANDARD
            .decode(password_hash("pw"))
            .unwrap();
        assert_eq!(h.len(), 36);
        let expected = Sha256::new()
            .chain_update(&h[..4])
            .chain_update(b"pw")
            .finalize();
        assert_eq!(&h[4..], expected.as_slice());
    }

    #[test]
    fn a_missing_server_names_the_package() {
        let err = find_sbin(Some(Path::new("/nonexistent/sbin"))).unwrap_err();
        assert!(
            err.to_string().contains("apt-get install rabbitmq-server"),
            "{err}"
        );
    }
}
