//! `up`: brings a stack up, or reports the one already running, by handing its options to the
//! chosen provider (native, containers or external).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Result, io_err};
use crate::native::{Binaries, Ports};
use crate::{StackName, stack_dir, stop_processes};
use runtime::state::{ProviderKind, State};

#[derive(Clone, Debug)]
pub struct UpOptions {
    /// The checkout: stacks live under `<root>/target/sluice/`.
    pub root: PathBuf,
    pub name: StackName,
    pub provider: ProviderKind,
    pub ports: Ports,
    pub binaries: Binaries,
    /// Stop what was started and return `Interrupted` on Ctrl-C (for interactive use).
    pub stop_on_ctrl_c: bool,
    /// Where the container provider's RabbitMQ and PostgreSQL images come from.
    pub images: crate::containers::ImageChoice,
    /// The queues' timeouts the pipeline's template is created with.
    pub queue_timeouts: runtime::QueueTimeouts,
}

/// How long a step took, counted from the start of `up`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Phase {
    pub name: &'static str,
    pub done_after: Duration,
}

#[derive(Debug)]
pub enum UpOutcome {
    /// The stack was already up; nothing was changed.
    AlreadyRunning(State),
    Started {
        state: State,
        phases: Vec<Phase>,
        elapsed: Duration,
    },
}

/// Brings a stack up, or reports the one that is already running.
pub async fn up(options: UpOptions) -> Result<UpOutcome> {
    match State::load(&options.root, &options.name) {
        Ok(state) if crate::alive(&state) => {
            return Ok(UpOutcome::AlreadyRunning(state));
        }
        Ok(stale) => {
            tracing::warn!(stack = %options.name, "stale state: some processes or containers are gone; stopping the rest and starting afresh");
            stop_processes(&stale.processes(), crate::Shutdown::Graceful);
            crate::remove_containers_of(&options.root, &stale);
            let dir = stack_dir(&options.root, &options.name);
            std::fs::remove_dir_all(&dir).map_err(io_err(format!("removing {}", dir.display())))?;
        }
        Err(runtime::StateError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    match options.provider {
        ProviderKind::Native => crate::native::up::up(options).await,
        ProviderKind::External => crate::external::up(options).await,
        ProviderKind::Containers => containers_up(options).await,
    }
}

#[cfg(feature = "containers")]
async fn containers_up(options: UpOptions) -> Result<UpOutcome> {
    crate::containers::runner::up(options).await
}

#[cfg(not(feature = "containers"))]
async fn containers_up(_: UpOptions) -> Result<UpOutcome> {
    Err(crate::error::StackError::ProviderUnavailable {
        provider: "containers",
        reason: "this build has no container provider (build xtask with `--features containers`); use --provider native".into(),
    })
}

#[derive(Clone, Default)]
pub(crate) struct Phases(Arc<Mutex<Vec<Phase>>>, Option<Instant>);

impl Phases {
    pub(crate) fn starting_now() -> Self {
        Phases(Default::default(), Some(Instant::now()))
    }

    pub(crate) fn take(&self) -> Vec<Phase> {
        self.0.lock().expect("lock").clone()
    }

    pub(crate) fn mark(&self, name: &'static str) {
        let done_after = self.1.map(|t| t.elapsed()).unwrap_or_default();
        tracing::info!(phase = name, ?done_after, "done");
        self.0
            .lock()
            .expect("lock")
            .push(Phase { name, done_after });
    }
}
