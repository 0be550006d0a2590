//! `cargo xtask env`: `export` lines for using a stack from a shell.

use stack::State;

use crate::stack_args::{StackArg, root};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    stack: StackArg,
}

impl Args {
    pub fn run(self) -> anyhow::Result<()> {
        let state = State::load(&root(), &self.stack.stack)?;
        for (name, value) in state.env_exports() {
            println!("export {name}='{}'", value.replace('\'', r"'\''"));
        }
        Ok(())
    }
}
