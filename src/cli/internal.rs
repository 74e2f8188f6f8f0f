//! Hidden subcommands gib runs as its own helpers inside its namespaces (unpacking a stage3
//! so files keep their owners, reading a tree back to write a layer). Not for users.

use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct InternalArgs {
    #[command(subcommand)]
    pub command: InternalCommand,
}

#[derive(Subcommand, Debug)]
pub enum InternalCommand {}

pub fn run(args: InternalArgs) -> anyhow::Result<ExitCode> {
    match args.command {}
}
