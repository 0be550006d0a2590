//! Subcommands that are part of the design but not built yet: they say so and fail, rather than
//! pretend to work.

use anyhow::bail;

#[derive(clap::Args)]
pub struct Args {
    /// Arguments of the future command (ignored).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

impl Args {
    pub fn run(self, name: &str) -> anyhow::Result<()> {
        bail!(
            "`cargo xtask {name}` is planned but not built yet; see ARCHITECTURE.md in the shared \
             design notes and the open issues. Available now: gen, up, down, status, env, sql and e2e."
        )
    }
}
