//! `cargo xtask e2e`: one scenario through the real pipeline, proved against the oracle.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use harness::components::ComponentBinaries;
use harness::e2e::{Phase, RunConfig};
use harness::publish::Pacing;
use stack::{Binaries, DownOptions, Ports, ProviderKind, UpOptions, UpOutcome};

use crate::stack_args::{StackArg, root, runtime};

// The command's --help text is the `E2e` variant's doc comment in main.rs.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    scenario: crate::stack_args::ScenarioArg,
    #[command(flatten)]
    stack: StackArg,
    /// Leave the stack running afterwards (to look at the warehouse, say with `cargo xtask sql`).
    #[arg(long)]
    keep: bool,
    /// How long, after the last publish, every event may take to reach RAW.
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = humantime::parse_duration)]
    quiesce_timeout: Duration,
    /// Publish as fast as the broker confirms instead of at the scenario's rate.
    #[arg(long)]
    unpaced: bool,
    /// Also write the first N stream events into the PostgreSQL history, so the backfill and
    /// the stream both deliver them (staging must keep one of each).
    #[arg(long, value_name = "N", default_value_t = 0)]
    overlap: u64,
    /// Build and run the components with the release profile.
    #[arg(long)]
    release: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        // A malformed scenario is rejected before anything starts.
        let scenario = self.scenario.load()?;
        let root = root();
        let mut phases = Vec::new();

        let started = Instant::now();
        let binaries = build_components(&root, self.release)?;
        phases.push(Phase {
            name: "build",
            elapsed: started.elapsed(),
        });

        let rt = runtime()?;
        let started = Instant::now();
        eprintln!("bringing up stack `{}` if needed...", self.stack.stack);
        let we_started = match rt.block_on(stack::up(UpOptions {
            root: root.clone(),
            name: self.stack.stack.clone(),
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
        };
        phases.push(Phase {
            name: "up",
            elapsed: started.elapsed(),
        });

        let mut config = RunConfig::new(scenario, root.clone(), self.stack.stack.clone(), binaries);
        config.seed = self.scenario.seed;
        config.quiesce_timeout = self.quiesce_timeout;
        config.overlap = self.overlap;
        config.pacing = if self.unpaced {
            Pacing::Unpaced
        } else {
            Pacing::Scenario
        };
        let progress = |line: &str| eprintln!("{line}");
        let outcome = rt.block_on(async {
            tokio::select! {
                r = harness::e2e::run(&config, &progress) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        });

        let take_down = we_started && !self.keep;
        let started = Instant::now();
        if take_down {
            stack::down(&root, &self.stack.stack, DownOptions::default())
                .context("taking the stack down")?;
        }
        let down = Phase {
            name: "down",
            elapsed: started.elapsed(),
        };
        let Some(outcome) = outcome else {
            bail!(
                "interrupted; components stopped{}",
                if take_down { ", stack taken down" } else { "" }
            );
        };
        let mut report = outcome?;
        phases.append(&mut report.phases);
        phases.push(down);
        report.phases = phases;
        print!("{report}");
        if !take_down {
            println!(
                "stack `{}` is still running: `cargo xtask down --stack {}` stops it",
                self.stack.stack, self.stack.stack
            );
        }
        if !report.passed() {
            bail!(
                "e2e {} failed: {} problem(s), listed above",
                report.scenario,
                report.problems.len()
            );
        }
        Ok(())
    }
}

/// `cargo build` of the component binaries; returns where cargo put them.
fn build_components(root: &Path, release: bool) -> anyhow::Result<ComponentBinaries> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building relay, batcher and pipe...");
    let mut cmd = Command::new(cargo);
    // `cargo run` gave this process the xtask package's variables; build scripts that watch
    // one (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild half the tree every time.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                ))
        {
            cmd.env_remove(name);
        }
    }
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["-p", "relay", "-p", "batcher", "-p", "pipe", "--bins"])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().context("running cargo build")?;
    let stdout = child.stdout.take().expect("piped");
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && let (Some(name), Some(exe)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            )
        {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    let status = child.wait().context("waiting for cargo build")?;
    if !status.success() {
        bail!("building the components failed ({status})");
    }
    let exe = |name: &str| {
        found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .with_context(|| format!("cargo build did not report a `{name}` executable"))
    };
    Ok(ComponentBinaries {
        relay: exe("relay")?,
        batcher: exe("batcher")?,
        pipe: exe("pipe")?,
    })
}
