//! `gib shell`.

use std::process::ExitCode;

use super::ShellArgs;

pub fn run(_args: ShellArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gib shell is being assembled")
}
