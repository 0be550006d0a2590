//! `cargo xtask engine start|stop|status`: Sluice's own Docker engine, for machines without one.

use stack::engine::{Engine, OwnEngine, own_dir};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Start Sluice's own dockerd (its own socket, data and exec roots and pidfile under
    /// $SLUICE_ENGINE_DIR, default ~/.cache/sluice/engine; images survive a stop) unless it
    /// runs. Needs root and Debian's docker.io.
    Start,
    /// Stop Sluice's own dockerd by its pidfile's PID (its containers stop with it).
    Stop,
    /// Say which engine the container provider would use.
    Status,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let own = OwnEngine::at(own_dir());
        match self.action {
            Action::Start => {
                let engine = own.start()?;
                let pid = own.running_pid().unwrap_or_default();
                eprintln!(
                    "Sluice's dockerd runs (pid {pid}, data in {}); cargo xtask uses it when \
                     DOCKER_HOST is unset. For the docker CLI: export DOCKER_HOST={}",
                    own.dir().display(),
                    engine.host
                );
            }
            Action::Stop => match own.stop() {
                Some(pid) => eprintln!("stopped Sluice's dockerd (pid {pid})"),
                None => eprintln!("Sluice's dockerd is not running"),
            },
            Action::Status => match Engine::detect() {
                Some(engine) => {
                    let version = engine.run(&["version", "--format", "{{.Server.Version}}"])?;
                    println!(
                        "{} answers at {} (engine {version})",
                        engine.origin, engine.host
                    );
                }
                None => anyhow::bail!(
                    "no Docker engine answers; `cargo xtask engine start` starts Sluice's own"
                ),
            },
        }
        Ok(())
    }
}
