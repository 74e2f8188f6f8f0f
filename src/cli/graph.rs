//! `gib graph`.

use std::process::ExitCode;

use super::GraphArgs;

pub fn run(_args: GraphArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gib graph is being assembled")
}
