//! Running cargo from inside `cargo xtask`.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use harness::rig::components::ComponentBinaries;

/// `cargo` (the one that runs this xtask) with the variables `cargo run` set for the xtask
/// package removed: build scripts that watch one (ring watched CARGO_MANIFEST_DIR) would
/// otherwise see them change and rebuild half the tree on every nested build.
pub fn command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
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
    cmd
}

/// `--batcher`: how the batcher runs.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Batcher {
    /// `batcher`, its own SQS poller.
    #[default]
    Poller,
    /// As production runs it: `batcher-lambda` under a Lambda Runtime API, fed by an SQS
    /// event-source mapping (`lambda-host`).
    Lambda,
}

impl From<Batcher> for harness::rig::components::BatcherShape {
    fn from(b: Batcher) -> Self {
        match b {
            Batcher::Poller => Self::Poller,
            Batcher::Lambda => Self::Lambda,
        }
    }
}

/// `cargo build` of the component binaries; returns where cargo put them.
pub fn build_components(root: &Path, release: bool) -> anyhow::Result<ComponentBinaries> {
    eprintln!("building relay, batcher (and its Lambda host), pipe and cdc...");
    let found = build_bins(
        root,
        release,
        &["relay", "batcher", "lambda-host", "pipe", "cdc"],
    )?;
    exe(&found, "batcher-lambda")?;
    Ok(ComponentBinaries {
        relay: exe(&found, "relay")?,
        batcher: exe(&found, "batcher")?,
        lambda_host: exe(&found, "lambda-host")?,
        pipe: exe(&found, "pipe")?,
        cdc: exe(&found, "cdc")?,
        batcher_shape: Default::default(),
    })
}

/// `cargo build` of the load generator's worker (`publisher`); returns where cargo put it.
pub fn build_publisher(root: &Path, release: bool) -> anyhow::Result<PathBuf> {
    eprintln!("building the publisher worker...");
    exe(&build_bins(root, release, &["publisher"])?, "publisher")
}

fn exe(found: &[(String, PathBuf)], name: &str) -> anyhow::Result<PathBuf> {
    found
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .with_context(|| format!("cargo build did not report a `{name}` executable"))
}

/// The binaries of `packages`, by target name.
fn build_bins(
    root: &Path,
    release: bool,
    packages: &[&str],
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut cmd = crate::cargo::command();
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"));
    for package in packages {
        cmd.args(["-p", package]);
    }
    cmd.arg("--bins")
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
        bail!("building {} failed ({status})", packages.join(", "));
    }
    Ok(found)
}
