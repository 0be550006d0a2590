//! The fakesnow server (Snowflake emulator) from the pinned warehouse-tools venv.

use std::path::Path;
use std::process::Command;

use crate::error::Result;
use crate::process;
use runtime::state::ProcessInfo;

pub(crate) fn start(venv: &pytools::Venv, dir: &Path, port: u16) -> Result<ProcessInfo> {
    let mut c = Command::new(venv.bin("fakesnow"));
    c.args(["-s", "--host", "127.0.0.1", "-p", &port.to_string()]);
    process::spawn(c, &dir.join("fakesnow.log"))
}
