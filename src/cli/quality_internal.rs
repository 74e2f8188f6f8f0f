//! `gib __quality`: hidden entries to the distroless-quality library (SBOM, size report) on a
//! root directory, for the integration tests until `gib build` and `gib inspect` call it.
//! Not for users.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::gentoo::vdb::read_installed;
use crate::rootfs::sbom::{read_os_release, spdx_document};
use crate::rootfs::usage::usage_report;

#[derive(Args, Debug)]
pub struct QualityArgs {
    #[command(subcommand)]
    pub command: QualityCommand,
}

#[derive(Subcommand, Debug)]
pub enum QualityCommand {
    /// Print the SPDX 2.3 JSON SBOM of a root.
    Sbom {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// The image name.
        #[arg(long)]
        name: String,
        /// The image reference or digest the SBOM describes.
        #[arg(long = "ref", value_name = "REF", default_value = "")]
        image_ref: String,
        /// Creation time [default: $SOURCE_DATE_EPOCH, else 0].
        #[arg(long, value_name = "N")]
        epoch: Option<i64>,
    },
    /// Print the size report of a root as JSON.
    Usage {
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// How many of the biggest files to list.
        #[arg(long, value_name = "N", default_value_t = 20)]
        largest: usize,
    },
}

pub fn run(args: QualityArgs) -> Result<ExitCode> {
    let json = match args.command {
        QualityCommand::Sbom {
            root,
            name,
            image_ref,
            epoch,
        } => {
            let epoch = match epoch {
                Some(epoch) => epoch,
                None => super::source_date_epoch()?.unwrap_or(0),
            };
            let packages = read_installed(&root)?;
            let os = read_os_release(&root)?;
            spdx_document(&name, &image_ref, epoch, &packages, os.as_ref())?
        }
        QualityCommand::Usage { root, largest } => {
            let packages = read_installed(&root)?;
            serde_json::to_value(usage_report(&root, &packages, largest)?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}
