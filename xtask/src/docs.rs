//! `cargo xtask docs`: dbt's docs site with the real catalog of a running stack's warehouse, as
//! one static HTML file.

use std::path::PathBuf;

use anyhow::Context;

use crate::stack_args::{StackArg, root, runtime};

// The command's --help text is the `Docs` variant's doc comment in main.rs.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
    /// Where to write the page [default: target/sluice-runs/<stack>/<timestamp>-docs/index.html].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let root = root();
        let state = crate::stack_args::stack_with_marts(&root, &self.stack.stack)?;
        let out = self.out.unwrap_or_else(|| {
            stack::new_run_dir(&root, &self.stack.stack, "docs").join("index.html")
        });
        eprintln!(
            "dbt docs generate --static on stack `{}` (the catalog is read from its warehouse) ...",
            self.stack.stack
        );
        let page = runtime()?
            .block_on(harness::consumers::write_docs(&state, &out))
            .context("generating dbt's docs")?;
        println!("docs: {} (one file; open it in a browser)", page.display());
        Ok(())
    }
}
