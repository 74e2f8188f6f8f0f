//! `gib completions SHELL` and `gib man DIR`: shell completion scripts and manual pages, made
//! by clap's own generators from the same definitions as `--help`, so they cannot disagree.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// The directory to write gib.1 and gib-<subcommand>.1 into (made if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    let mut command = public_command();
    clap_complete::generate(args.shell, &mut command, "gib", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man(args: ManArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    clap_mangen::generate_to(public_command(), &args.dir)
        .with_context(|| format!("cannot write the manual pages into {}", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// gib's command line without the hidden helpers gib runs itself: clap's completion
/// generators would offer them (`gib __<TAB>`), and clap has no way to drop a subcommand.
fn public_command() -> clap::Command {
    let full = Cli::command();
    let mut public = clap::Command::new("gib")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = full.get_about() {
        public = public.about(about.clone());
    }
    if let Some(after_help) = full.get_after_help() {
        public = public.after_help(after_help.clone());
    }
    public
}
