//! `cargo xtask images`: build Sluice's service images from `infra/containers/` and the pins.

use std::time::Instant;

use stack::engine::{Engine, OwnEngine, own_dir};
use stack::images::{BuildOptions, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Do not install missing Debian packages (docker.io, debootstrap) with apt-get.
    #[arg(long)]
    no_install: bool,
    /// Only print the images the current inputs make and whether each exists.
    #[arg(long)]
    plan: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let infra = stack::infra_dir();
        if !self.no_install {
            ensure_packages()?;
        }
        let engine = match Engine::detect() {
            Some(engine) => engine,
            None => {
                eprintln!(
                    "no Docker engine answers; starting Sluice's own (cargo xtask engine stop stops it)"
                );
                OwnEngine::at(own_dir()).start()?
            }
        };
        eprintln!("using {} at {}", engine.origin, engine.host);
        if self.plan {
            println!("{:<34} exists", "image");
            println!(
                "{:<34} {}",
                stack::images::base_image(),
                stack::images::exists(&engine, &stack::images::base_image())
            );
            for p in stack::images::plan(&infra)? {
                println!(
                    "{:<34} {}",
                    p.image,
                    stack::images::exists(&engine, &p.image)
                );
            }
            return Ok(());
        }
        let t0 = Instant::now();
        let progress = |line: &str| eprintln!("  {line}");
        let reports = stack::images::build(
            &engine,
            &BuildOptions {
                infra,
                work_dir: own_dir().join("builds"),
                ca_bundle: ca_bundle(),
                progress: &progress,
            },
        )?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        }
        for r in &reports {
            match r.outcome {
                Outcome::Reused => eprintln!("  {:<34} up to date", r.image),
                Outcome::Built { seconds } => eprintln!("  {:<34} built in {seconds:.1}s", r.image),
            }
        }
        eprintln!("images ready in {:.1}s", t0.elapsed().as_secs_f64());
        Ok(())
    }
}

/// The host's CA bundle, so builds can download through a TLS-intercepting proxy.
fn ca_bundle() -> Option<std::path::PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([std::path::PathBuf::from(
            "/etc/ssl/certs/ca-certificates.crt",
        )])
        .find(|p| p.is_file())
}

/// Installs what is missing with apt-get when this is root: docker.io where no engine answers,
/// debootstrap for the base (without root the base comes from a registry instead).
fn ensure_packages() -> anyhow::Result<()> {
    let exists = |paths: &[&str]| paths.iter().any(|p| std::path::Path::new(p).exists());
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut missing = Vec::new();
    if Engine::detect().is_none() && !exists(&["/usr/sbin/dockerd", "/usr/bin/dockerd"]) {
        missing.push("docker.io");
    }
    if root && !exists(&["/usr/sbin/debootstrap", "/usr/bin/debootstrap"]) {
        missing.push("debootstrap");
    }
    apt_install(
        &missing,
        "or pass --no-install and use your own engine via DOCKER_HOST",
    )
}

/// Chromium for the test that renders dbt's docs page (harness/tests/e2e.rs), installed with
/// apt-get when missing and run as root.
pub fn ensure_chromium() -> anyhow::Result<()> {
    let on_path = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|name| {
            std::process::Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if on_path {
        return Ok(());
    }
    apt_install(
        &["chromium"],
        "the docs test renders dbt's docs page in headless Chromium",
    )
}

/// Installs Debian packages with apt-get (updating the index if the first try fails); an error
/// naming the command to run where this is not root or has no apt-get.
fn apt_install(missing: &[&str], hint: &str) -> anyhow::Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    anyhow::ensure!(
        root && std::path::Path::new("/usr/bin/apt-get").exists(),
        "missing {}: install with `sudo apt-get install {}` ({hint})",
        missing.join(", "),
        missing.join(" ")
    );
    eprintln!("installing {} with apt-get ...", missing.join(", "));
    let install = |update: bool| -> anyhow::Result<bool> {
        if update {
            std::process::Command::new("apt-get")
                .args(["update", "-q"])
                .status()?;
        }
        Ok(std::process::Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()?
            .success())
    };
    anyhow::ensure!(
        install(false)? || install(true)?,
        "apt-get install {} failed (see above)",
        missing.join(" ")
    );
    Ok(())
}
