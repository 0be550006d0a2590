//! `cargo xtask down`: stop a stack by the PIDs its state names, remove its containers.

use stack::DownOptions;

use crate::stack_args::{StackArg, root};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    /// Keep data and logs under target/sluice/<stack>/ (the state file is still removed).
    #[arg(long)]
    keep_data: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let report = stack::down(
            &root(),
            &self.stack.stack,
            DownOptions {
                keep_data: self.keep_data,
                shutdown: Default::default(),
            },
        )?;
        for (name, pid) in &report.stopped {
            eprintln!("  stopped {name} (pid {pid})");
        }
        for id in &report.removed_containers {
            eprintln!("  removed container {}", &id[..12.min(id.len())]);
        }
        eprintln!(
            "stack `{}` is down in {:.1}s",
            self.stack.stack,
            report.elapsed.as_secs_f64()
        );
        Ok(())
    }
}
