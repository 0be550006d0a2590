//! `cargo xtask up`: provision a stack.

use std::path::PathBuf;

use stack::{Binaries, Ports, UpOptions, UpOutcome};

use crate::stack_args::{Provider, ProviderArg, StackArg, root, runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    #[command(flatten)]
    provider: ProviderArg,
    #[command(flatten)]
    queue_timeouts: crate::stack_args::QueueTimeoutsArg,
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

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let options = UpOptions {
            root: root(),
            name: self.stack.stack.clone(),
            provider: self.provider.kind(Provider::Auto),
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
            images: self.provider.image_choice(),
            queue_timeouts: self
                .queue_timeouts
                .timeouts(crate::stack_args::Profile::Production)?,
        };
        eprintln!(
            "bringing up stack `{}` ({} provider)...",
            options.name, options.provider
        );
        let rt = runtime()?;
        match rt.block_on(stack::up(options))? {
            UpOutcome::AlreadyRunning(state) => {
                eprintln!(
                    "stack `{}` is already running (since {}, {}); nothing to do",
                    state.stack, state.created_at, state.aws.queue_timeouts
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
                crate::stack_args::make_cdc_slot(&rt, &state);
                eprintln!(
                    "stack `{}` is up in {:.1}s ({}); state in {}",
                    state.stack,
                    elapsed.as_secs_f64(),
                    state.aws.queue_timeouts,
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
