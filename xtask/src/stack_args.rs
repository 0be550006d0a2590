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

/// A running stack whose warehouse holds the marts (`report`, `docs`); if none runs, an error
/// that says how to get one.
pub fn stack_with_marts(root: &Path, stack: &StackName) -> anyhow::Result<stack::State> {
    anyhow::Context::with_context(stack::State::load(root, stack), || {
        format!(
            "no running stack `{stack}`: run `cargo xtask e2e --keep --stack {stack} --scenario \
             scenarios/smoke.toml` (or any scenario) first, so its warehouse holds the marts"
        )
    })
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `--provider` and `--images`, for every command that brings a stack up.
#[derive(clap::Args, Clone)]
pub struct ProviderArg {
    /// native: child processes on 127.0.0.1 (RabbitMQ and PostgreSQL from the system packages,
    /// LocalStack and fakesnow from pinned venvs). containers: the same services as containers
    /// through testcontainers, from the images `cargo xtask images` builds (needs a Docker
    /// engine: DOCKER_HOST, the system's, or `cargo xtask engine start`). external: services
    /// from environment variables (see README), nothing started. auto: containers where a Docker
    /// engine answers and the images are built, native otherwise (it says which and why). [default: auto for `up`, native for
    /// `e2e` and `load-test`]
    #[arg(long, value_enum)]
    pub provider: Option<Provider>,
    /// Container provider only: where RabbitMQ's and PostgreSQL's images come from. sluice: built
    /// here by `cargo xtask images`, no registry needed. official: rabbitmq:3.13-management and
    /// postgres:15, pulled from a registry. LocalStack and fakesnow always come from Sluice's
    /// pinned images.
    #[arg(long, value_enum, default_value_t = Images::Sluice)]
    pub images: Images,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    Auto,
    Native,
    Containers,
    External,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Images {
    Sluice,
    Official,
}

impl ProviderArg {
    /// The provider to use (`default` when none was given); `auto` says which it picked and why.
    pub fn kind(&self, default: Provider) -> ProviderKind {
        match self.provider.unwrap_or(default) {
            Provider::Auto => match stack::engine::Engine::detect() {
                Some(engine) if images_built(&engine) => {
                    eprintln!(
                        "provider auto: containers ({} answers at {})",
                        engine.origin, engine.host
                    );
                    ProviderKind::Containers
                }
                Some(engine) => {
                    eprintln!(
                        "provider auto: native ({} answers at {}, but the images are not built: \
                         `cargo xtask images`)",
                        engine.origin, engine.host
                    );
                    ProviderKind::Native
                }
                None => {
                    eprintln!("provider auto: native (no Docker engine answers)");
                    ProviderKind::Native
                }
            },
            Provider::Native => ProviderKind::Native,
            Provider::Containers => ProviderKind::Containers,
            Provider::External => ProviderKind::External,
        }
    }

    pub fn image_choice(&self) -> stack::containers::ImageChoice {
        match self.images {
            Images::Sluice => stack::containers::ImageChoice::Sluice,
            Images::Official => stack::containers::ImageChoice::Official,
        }
    }
}

/// `--profile` and the timeout overrides: what a stack this command creates has its queues made
/// with (a running stack keeps what it was created with).
#[derive(clap::Args, Clone)]
pub struct QueueTimeoutsArg {
    /// Queue timeouts of a stack this command creates. production: the template's AWS-correct
    /// defaults (visibility timeout 60 s on the ingest queue, six times a 10 s batcher function
    /// timeout, and 120 s on the snowpipe-notify queue; 5 receives before the dead-letter
    /// queue). test: 10 s each, so a message a killed consumer held comes back in seconds.
    /// [default: production for `up` and `load-test`, test for `e2e`]
    #[arg(long, value_enum, value_name = "PROFILE")]
    pub profile: Option<Profile>,
    /// The ingest queue's visibility timeout (whole seconds, 1s-12h), over the profile's.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ingest_visibility_timeout: Option<std::time::Duration>,
    /// The snowpipe-notify queue's visibility timeout (whole seconds, 1s-12h), over the
    /// profile's.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub notify_visibility_timeout: Option<std::time::Duration>,
    /// Receives of an ingest message before the queue moves it to its dead-letter queue
    /// (1-1000), over the profile's.
    #[arg(long, value_name = "N")]
    pub max_receive_count: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Production,
    Test,
}

impl QueueTimeoutsArg {
    /// The profile's timeouts (`default` when none was given) with the overrides applied; a
    /// value SQS would refuse is an error naming its flag, said before anything starts.
    pub fn timeouts(&self, default: Profile) -> anyhow::Result<stack::QueueTimeouts> {
        let mut t = match self.profile.unwrap_or(default) {
            Profile::Production => stack::QueueTimeouts::PRODUCTION,
            Profile::Test => stack::QueueTimeouts::TEST,
        };
        let seconds = |flag: &str, d: std::time::Duration| -> anyhow::Result<u32> {
            if d.subsec_nanos() != 0 || d.as_secs() < 1 || d.as_secs() > 43_200 {
                anyhow::bail!(
                    "{flag} {}: SQS takes whole seconds from 1s to 12h",
                    humantime::format_duration(d)
                );
            }
            Ok(d.as_secs() as u32)
        };
        if let Some(d) = self.ingest_visibility_timeout {
            t.ingest_visibility_s = seconds("--ingest-visibility-timeout", d)?;
        }
        if let Some(d) = self.notify_visibility_timeout {
            t.notify_visibility_s = seconds("--notify-visibility-timeout", d)?;
        }
        if let Some(n) = self.max_receive_count {
            if !(1..=1000).contains(&n) {
                anyhow::bail!("--max-receive-count {n}: SQS takes 1 to 1000");
            }
            t.max_receive_count = n;
        }
        Ok(t)
    }
}

/// What a command that may create a stack creates it with.
pub struct NewStack {
    pub provider: ProviderKind,
    pub images: stack::containers::ImageChoice,
    pub queue_timeouts: stack::QueueTimeouts,
}

/// Whether every image of the container provider exists on the engine.
fn images_built(engine: &stack::engine::Engine) -> bool {
    stack::images::plan(&stack::infra_dir())
        .is_ok_and(|plan| plan.iter().all(|p| stack::images::exists(engine, &p.image)))
}

/// Faults that act on a service's own process (pause, broker restart) need the native provider;
/// said before anything starts.
pub fn check_faults_for(
    provider: ProviderKind,
    faults: &[synth::chaos::Fault],
) -> anyhow::Result<()> {
    use synth::chaos::FaultKind;
    if provider == ProviderKind::Native {
        return Ok(());
    }
    if let Some(f) = faults.iter().find(|f| {
        matches!(f.kind, FaultKind::Pause | FaultKind::BrokerRestart)
            && f.target.component().is_none()
    }) {
        anyhow::bail!(
            "fault `{}` acts on the service's own process, which only the native provider runs; \
             use --provider native, or outages (which work on any provider)",
            f.describe()
        );
    }
    Ok(())
}

/// The cdc's replication slot, made while the published tables are still empty so no change is
/// missed before the cdc's first run (`cdc setup`). Best effort: a server without logical
/// replication still serves everything else, and the cdc says what it lacks when run.
pub fn make_cdc_slot(rt: &tokio::runtime::Runtime, state: &stack::State) {
    let config = cdc::CdcConfig::new(state.postgres.url.clone(), "");
    match rt.block_on(cdc::slot::setup(&config)) {
        Ok(true) => eprintln!(
            "made the cdc's replication slot {} (the tables are empty: no change is missed before its first run)",
            config.slot
        ),
        Ok(false) => {}
        Err(e) => eprintln!(
            "warning: no replication slot {} made for the cdc: {e}; the cdc takes a snapshot of its own on its first run once that is fixed",
            config.slot
        ),
    }
}

/// Brings the named stack up unless it is running; returns whether this call started it (and
/// so should take it down afterwards).
pub fn ensure_up(
    rt: &tokio::runtime::Runtime,
    root: &Path,
    name: &StackName,
    new: NewStack,
) -> anyhow::Result<bool> {
    eprintln!(
        "bringing up stack `{name}` ({} provider) if needed...",
        new.provider
    );
    Ok(
        match rt.block_on(stack::up(UpOptions {
            root: root.to_owned(),
            name: name.clone(),
            provider: new.provider,
            ports: Ports::default(),
            binaries: Binaries::default(),
            stop_on_ctrl_c: true,
            images: new.images,
            queue_timeouts: new.queue_timeouts,
        }))? {
            UpOutcome::AlreadyRunning(state) => {
                eprintln!(
                    "using stack `{}` ({} provider, {}), running since {}; it stays up afterwards",
                    state.stack, state.provider, state.aws.queue_timeouts, state.created_at
                );
                false
            }
            UpOutcome::Started { state, elapsed, .. } => {
                make_cdc_slot(rt, &state);
                eprintln!(
                    "stack is up in {:.1}s ({})",
                    elapsed.as_secs_f64(),
                    state.aws.queue_timeouts
                );
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
                let specs = synth::chaos::random(duration.get(), seed, &scenario.components());
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
