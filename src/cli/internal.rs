//! Hidden subcommands gib runs as its own helpers inside its namespaces (unpacking a stage3
//! so files keep their owners, reading a tree back to write a layer). Not for users.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct InternalArgs {
    #[command(subcommand)]
    pub command: InternalCommand,
}

#[derive(Subcommand, Debug)]
pub enum InternalCommand {
    /// Write one layer: a `LayerJob` as JSON on stdin, the `Layer` as JSON on stdout.
    WriteLayer {
        /// The blob store (a cache's `blobs/` directory).
        #[arg(long, value_name = "DIR")]
        blobs: PathBuf,
    },
}

pub fn run(args: InternalArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        InternalCommand::WriteLayer { blobs } => {
            let store = crate::oci::blob::BlobStore::open(&blobs)?;
            // stdout is the channel back to the parent gib, not the terminal.
            crate::oci::layer::run_layer_job(
                std::io::stdin().lock(),
                std::io::stdout().lock(),
                &store,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
