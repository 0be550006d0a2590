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

/// `--chaos FILE|random`: a fault schedule instead of the scenario's own `[[chaos]]`.
#[derive(clap::Args, Clone)]
pub struct ChaosArg {
    /// Fault schedule to run instead of the scenario's `[[chaos]]`: a TOML file of `[[chaos]]`
    /// entries, or `random` for a staggered mix of every fault kind drawn from the seed (the
    /// drawn schedule is printed and saved, so a failing run can be replayed with `--chaos FILE`).
    #[arg(long, value_name = "FILE|random")]
    pub chaos: Option<PathBuf>,
}

impl ChaosArg {
    /// The schedule, checked against the scenario before anything starts.
    pub fn faults(
        &self,
        scenario: &synth::Scenario,
        scenario_arg: &ScenarioArg,
        save_dir: &Path,
    ) -> anyhow::Result<Vec<synth::chaos::Fault>> {
        use anyhow::Context;
        let (specs, origin) = match &self.chaos {
            None => (scenario.chaos.clone(), scenario_arg.scenario.clone()),
            Some(p) if p.as_os_str() == "random" => {
                let Some(duration) = scenario.duration else {
                    anyhow::bail!(
                        "--chaos random: {} has no `duration` to place faults in",
                        scenario_arg.scenario.display()
                    );
                };
                let seed = scenario_arg.seed.unwrap_or(scenario.seed);
                let specs = synth::chaos::random(duration.get(), seed);
                let text = synth::chaos::to_toml(&specs);
                std::fs::create_dir_all(save_dir)
                    .with_context(|| format!("creating {}", save_dir.display()))?;
                let saved = save_dir.join(format!("chaos-{}-seed{seed}.toml", scenario.name));
                std::fs::write(&saved, &text)
                    .with_context(|| format!("writing {}", saved.display()))?;
                eprintln!(
                    "chaos: random schedule for seed {seed} ({} faults), saved to {} to replay with --chaos:\n{text}",
                    specs.len(),
                    saved.display()
                );
                (specs, saved)
            }
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading the fault schedule {}", p.display()))?;
                (synth::chaos::parse_file(p, &text)?, p.clone())
            }
        };
        scenario
            .faults_of(&specs)
            .map_err(|(key, reason)| anyhow::anyhow!("{}: `{key}`: {reason}", origin.display()))
    }
}
