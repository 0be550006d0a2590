//! A native stack for integration tests: started on first use under a temporary root, shared by
//! the tests of one test binary that hold it at the same time, and taken down (by PID, like
//! `down`) when the last holder drops it, even when a test panics. Never kept in a static that
//! outlives the tests: that is how stacks leak.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use crate::{
    Binaries, DownOptions, Ports, ProviderKind, Shutdown, StackName, State, UpOptions, UpOutcome,
};

pub struct ScratchStack {
    root: PathBuf,
    name: StackName,
    pub state: State,
}

static SHARED: tokio::sync::Mutex<Weak<ScratchStack>> = tokio::sync::Mutex::const_new(Weak::new());
static COUNTER: AtomicU32 = AtomicU32::new(0);

impl ScratchStack {
    /// The running scratch stack of this process, or a new one.
    pub async fn shared() -> Arc<ScratchStack> {
        let mut slot = SHARED.lock().await;
        if let Some(stack) = slot.upgrade() {
            return stack;
        }
        let stack = Arc::new(Self::start().await);
        *slot = Arc::downgrade(&stack);
        stack
    }

    async fn start() -> ScratchStack {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let root = std::env::temp_dir().join(format!("sluice-scratch-{pid}-{n}"));
        let name: StackName = format!("t{pid}-{n}").parse().expect("a valid stack name");
        let options = UpOptions {
            root: root.clone(),
            name: name.clone(),
            provider: ProviderKind::Native,
            ports: Ports::default(),
            binaries: Binaries::default(),
            stop_on_ctrl_c: false,
            images: Default::default(),
            queue_timeouts: scratch_queue_timeouts(),
        };
        let state = match crate::up(options).await {
            Ok(UpOutcome::Started { state, .. } | UpOutcome::AlreadyRunning(state)) => state,
            Err(e) => panic!("the scratch stack did not come up: {e}"),
        };
        ScratchStack { root, name, state }
    }

    /// The folder the stack's state lives under (`<root>/target/sluice/<name>`), what the
    /// harness takes as `root`.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn output(&self, key: &str) -> &str {
        self.state
            .aws
            .outputs
            .get(key)
            .unwrap_or_else(|| panic!("CloudFormation output {key} missing"))
    }
}

/// The test profile: a message a killed consumer held comes back in seconds, not minutes.
/// `SLUICE_SCRATCH_PROFILE=production` gives the scratch stacks production's timeouts instead,
/// to measure the difference or to check that no test depends on short ones.
fn scratch_queue_timeouts() -> runtime::QueueTimeouts {
    match std::env::var("SLUICE_SCRATCH_PROFILE").as_deref() {
        Ok("production") => runtime::QueueTimeouts::PRODUCTION,
        Ok("test") | Err(_) => runtime::QueueTimeouts::TEST,
        Ok(other) => panic!("SLUICE_SCRATCH_PROFILE={other}: expected `test` or `production`"),
    }
}

impl Drop for ScratchStack {
    fn drop(&mut self) {
        // Killed, not shut down: the whole folder goes next, so nothing needs to be consistent.
        let options = DownOptions {
            keep_data: false,
            shutdown: Shutdown::Kill,
        };
        if let Err(e) = crate::down(&self.root, &self.name, options) {
            eprintln!("scratch stack {}: down failed: {e}", self.name);
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
