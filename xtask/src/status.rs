//! `cargo xtask status`: probe each service of a stack.

use crate::stack_args::{StackArg, root, runtime};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    /// Print {"stack": ..., "services": [{"name": ..., "healthy": true|false, ...}]}. The pid
    /// column shows the container id for the container provider.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let report = runtime()?.block_on(stack::status(&root(), &self.stack.stack))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "stack {} ({} provider; queues: {})",
                report.stack, report.provider, report.queue_timeouts
            );
            println!(
                "{:<11} {:<8} {:>12} {:>9}  endpoint",
                "service", "healthy", "pid", "uptime"
            );
            for s in &report.services {
                println!(
                    "{:<11} {:<8} {:>12} {:>9}  {}{}",
                    s.name,
                    if s.healthy { "yes" } else { "NO" },
                    s.pid
                        .map(|p| p.to_string())
                        .or_else(|| s.container.clone())
                        .unwrap_or_else(|| "-".into()),
                    s.uptime_secs
                        .map(|u| format!("{u}s"))
                        .unwrap_or_else(|| "-".into()),
                    s.endpoint,
                    s.problem
                        .as_ref()
                        .map(|p| format!("  ({p})"))
                        .unwrap_or_default(),
                );
            }
        }
        if report.services.iter().all(|s| s.healthy) {
            Ok(())
        } else {
            anyhow::bail!("some services of stack `{}` are not healthy", report.stack)
        }
    }
}
