//! `gib build`: config -> plan -> (stage3 -> sandbox -> emerge) -> rootfs -> oci -> outputs.

use std::process::ExitCode;

use super::BuildArgs;

pub fn run(_args: BuildArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("gib build is being assembled")
}
