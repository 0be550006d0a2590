//! `cargo xtask up`: provision a stack.

use std::path::PathBuf;

use stack::{Binaries, Ports, ProviderKind, UpOptions, UpOutcome};

use crate::stack_args::{StackArg, root, runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    /// native: child processes on 127.0.0.1 (RabbitMQ and PostgreSQL from the system packages,
    /// LocalStack and fakesnow from pinned venvs). containers: testcontainers (build with
    /// `--features containers`; needs a Docker engine). external: services from environment
    /// variables (see README), nothing started. auto: containers where they are built in and a
    /// Docker engine answers, native otherwise.
    #[arg(long, value_enum, default_value_t = Provider::Auto)]
    provider: Provider,
    /// AMQP port for RabbitMQ (default: a free one).
    #[arg(long)]
    rabbitmq_port: Option<u16>,
    /// Port for PostgreSQL (default: a free one).
    #[arg(long)]
    postgres_port: Option<u16>,
    /// Port for LocalStack (default: a free one).
    #[arg(long)]
    localstack_port: Option<u16>,
    /// Port for fakesnow (default: a free one).
    #[arg(long)]
    fakesnow_port: Option<u16>,
    /// RabbitMQ server scripts folder (default: /usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin).
    #[arg(long, env = "SLUICE_RABBITMQ_SBIN")]
    rabbitmq_sbin: Option<PathBuf>,
    /// PostgreSQL server bin folder (default: `pg_config --bindir`).
    #[arg(long, env = "SLUICE_POSTGRES_BINDIR")]
    postgres_bindir: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Provider {
    Auto,
    Native,
    Containers,
    External,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let options = UpOptions {
            root: root(),
            name: self.stack.stack.clone(),
            provider: match self.provider {
                Provider::Auto
                    if cfg!(feature = "containers")
                        && stack::containers::docker_engine_answers() =>
                {
                    ProviderKind::Containers
                }
                Provider::Auto | Provider::Native => ProviderKind::Native,
                Provider::Containers => ProviderKind::Containers,
                Provider::External => ProviderKind::External,
            },
            ports: Ports {
                rabbitmq: self.rabbitmq_port,
                postgres: self.postgres_port,
                localstack: self.localstack_port,
                fakesnow: self.fakesnow_port,
            },
            binaries: Binaries {
                rabbitmq_sbin: self.rabbitmq_sbin,
                postgres_bindir: self.postgres_bindir,
            },
            stop_on_ctrl_c: true,
        };
        eprintln!(
            "bringing up stack `{}` ({} provider)...",
            options.name, options.provider
        );
        match runtime()?.block_on(stack::up(options))? {
            UpOutcome::AlreadyRunning(state) => {
                eprintln!(
                    "stack `{}` is already running (since {}); nothing to do",
                    state.stack, state.created_at
                );
            }
            UpOutcome::Started {
                state,
                phases,
                elapsed,
            } => {
                for phase in phases {
                    eprintln!("  {:>6.1}s  {}", phase.done_after.as_secs_f64(), phase.name);
                }
                eprintln!(
                    "stack `{}` is up in {:.1}s; state in {}",
                    state.stack,
                    elapsed.as_secs_f64(),
                    state.dir.join("state.json").display()
                );
                eprintln!(
                    "use it from a shell with: eval \"$(cargo xtask env --stack {})\"",
                    state.stack
                );
            }
        }
        Ok(())
    }
}
