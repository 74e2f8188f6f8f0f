//! `gib build`: the arguments, into a `build::RunRequest`; the outcome, printed (`--json`).
//! The run itself (config -> plan -> build each image -> outputs -> report) is `build::run`.

use std::process::ExitCode;

use anyhow::Result;

use super::{BuildArgs, ProgressMode, parse_network, source_date_epoch};
use crate::build::{BuildOptions, RunRequest};
use crate::output::Outputs;
use crate::printer::Printer;

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let printer = Printer::with_progress(args.verbose, args.progress == ProgressMode::Auto);
    let config = crate::config::load(&args.config.file)?;
    let request = RunRequest {
        config: &config,
        images: &args.images,
        platform: args.platform.as_deref(),
        join_index: args.join_index,
        cache_dir: args.cache_dir.as_deref(),
        options: BuildOptions {
            network: parse_network(&args.network)?,
            source_date_epoch: source_date_epoch()?,
            force: args.force,
            offline: args.offline,
            lock: if args.locked {
                crate::build::LockMode::Locked
            } else {
                crate::build::LockMode::Follow
            },
            parallelism: crate::build::Parallelism::new(
                &config.build,
                args.schedule.jobs.map(|n| n as usize),
                args.schedule.fail_fast,
            ),
        },
        outputs: Outputs {
            oci_layout: args.oci_layout,
            archive: args.archive,
            push: args.push,
        },
        parents_from_registry: args.parents_from_registry,
        report: args.json,
    };
    let outcome = crate::build::run(&request, &printer)?;
    if let Some(report) = &outcome.report {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(ExitCode::SUCCESS)
}
