//! `cargo xtask report`: the analyses of infra/dbt/analyses against a running stack's marts,
//! as CSV files and one HTML page.

use std::path::PathBuf;

use anyhow::Context;

use crate::stack_args::{StackArg, root, runtime};

// The command's --help text is the `Report` variant's doc comment in main.rs.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    /// Folder for index.html and one CSV per analysis [default:
    /// target/sluice-runs/<stack>/<timestamp>-report].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let root = root();
        let state = crate::stack_args::stack_with_marts(&root, &self.stack.stack)?;
        let out = self
            .out
            .unwrap_or_else(|| stack::new_run_dir(&root, &self.stack.stack, "report"));
        eprintln!(
            "compiling infra/dbt/analyses and running them on stack `{}` ...",
            self.stack.stack
        );
        let analyses = runtime()?
            .block_on(harness::consumers::run_analyses(&state))
            .context("running the analyses")?;
        let written = harness::consumers::write_report(&out, self.stack.stack.as_str(), &analyses)?;
        for a in &analyses {
            println!("{:<32} {:>5} rows  {}", a.name, a.rows.len(), a.title);
        }
        println!("report: {}", written[0].display());
        println!(
            "csv:    {}/<analysis>.csv ({} files)",
            out.display(),
            written.len() - 1
        );
        Ok(())
    }
}
