//! Options shared by the stack commands.

use std::path::{Path, PathBuf};

use stack::{Binaries, Ports, ProviderKind, StackName, UpOptions, UpOutcome};

#[derive(clap::Args, Clone)]
pub struct StackArg {
    /// Stack name: 1-32 lower-case letters, digits and dashes. Its files live under
    /// target/sluice/<stack>/.
    #[arg(long, default_value = "default", value_parser = parse_name)]
    pub stack: StackName,
}

/// `--scenario FILE [--seed N]`.
#[derive(clap::Args, Clone)]
pub struct ScenarioArg {
    /// Scenario file, e.g. scenarios/smoke.toml. A malformed one is rejected before anything
    /// starts.
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Seed to use instead of the scenario's own. Same scenario and seed, same events.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl ScenarioArg {
    pub fn load(&self) -> anyhow::Result<synth::Scenario> {
        Ok(synth::Scenario::load(&self.scenario)?)
    }
}

fn parse_name(s: &str) -> Result<StackName, String> {
    s.parse()
        .map_err(|e: stack::InvalidStackName| e.to_string())
}

/// The checkout root (where `target/` is).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits in the checkout")
        .to_owned()
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Brings the named stack up (native provider) unless it is running; returns whether this call
/// started it (and so should take it down afterwards).
pub fn ensure_up(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    name: &StackName,
) -> anyhow::Result<bool> {
    eprintln!("bringing up stack `{name}` if needed...");
    Ok(
        match rt.block_on(stack::up(UpOptions {
            root: root.to_owned(),
            name: name.clone(),
            provider: ProviderKind::Native,
            ports: Ports::default(),
            binaries: Binaries::default(),
            stop_on_ctrl_c: true,
        }))? {
            UpOutcome::AlreadyRunning(state) => {
                eprintln!(
                    "using stack `{}` ({} provider), running since {}; it stays up afterwards",
                    state.stack, state.provider, state.created_at
                );
                false
            }
            UpOutcome::Started { elapsed, .. } => {
                eprintln!("stack is up in {:.1}s", elapsed.as_secs_f64());
                true
            }
        },
    )
}
