//! A broker crash on purpose: `kill -9` of a native stack's RabbitMQ node (its whole process
//! group) and the node started again on the same data, as RabbitMQ's own test suites do. Quorum
//! queues keep every message they confirmed; clients must reconnect on their own.

use std::path::Path;
use std::time::Duration;

use runtime::state::ProcessInfo;

use crate::error::{Result, StackError};
use crate::native::rabbitmq;
use crate::{StackName, State, readiness};

fn not_native(what: &str) -> StackError {
    StackError::ProviderUnavailable {
        provider: "native",
        reason: format!(
            "{what}: only a RabbitMQ node the native provider started can be killed and started again"
        ),
    }
}

/// SIGKILL to the node's process group; returns once it is gone. The state keeps the dead
/// process until [`start_broker_again`].
pub fn kill_broker(root: &Path, name: &StackName) -> Result<()> {
    let state = State::load(root, name)?;
    let process = state
        .rabbitmq
        .process
        .as_ref()
        .ok_or_else(|| not_native("kill"))?;
    if process.is_alive() {
        // SAFETY: kill(2) on the negated PID of the process group this stack started for the
        // node, checked alive (same start time) just above.
        unsafe { libc::kill(-(process.pid as libc::pid_t), libc::SIGKILL) };
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while process.is_alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Starts the node again on its data, records the new process in the state, then waits until
/// it answers AMQP. Recorded before the wait: a run interrupted while the node boots must leave
/// a state whose `down` stops it.
pub async fn start_broker_again(root: &Path, name: &StackName) -> Result<ProcessInfo> {
    let mut state = State::load(root, name)?;
    let node = state
        .rabbitmq
        .node
        .clone()
        .ok_or_else(|| not_native("restart"))?;
    let plan = rabbitmq::Plan {
        dir: node.dir.clone(),
        node: node.name.clone(),
        amqp_port: node.amqp_port,
        management_port: node.management_port,
        dist_port: node.dist_port,
        epmd_port: node.epmd_port,
        user: state.rabbitmq.user.clone(),
        password: state.rabbitmq.password.clone(),
    };
    let process = rabbitmq::start_node(&plan, &node.sbin)?;
    state.rabbitmq.process = Some(process.clone());
    state.save(root)?;
    let amqp_url = state.rabbitmq.amqp_url.clone();
    readiness::wait("rabbitmq", Some(&process), Duration::from_secs(90), || {
        readiness::amqp(&amqp_url)
    })
    .await?;
    Ok(process)
}
