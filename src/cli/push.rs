//! `gib push`: the images of the last build, to their registry. It runs the build, which reuses
//! every unchanged image from the cache (so after `gib build` nothing is rebuilt), then
//! pushes: one path to the registry, and a push never sends an image that is not the current
//! configuration's.

use std::process::ExitCode;

use super::{BuildArgs, PushArgs};

pub fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    super::build::run(BuildArgs {
        config: args.config,
        images: args.images,
        oci_layout: None,
        archive: None,
        push: true,
        parents_from_registry: args.parents_from_registry,
        platform: args.platform,
        join_index: args.index,
        cache_dir: args.cache_dir,
        force: false,
        json: args.json,
        verbose: args.verbose,
        network: "host".to_string(),
        offline: args.offline,
        locked: args.locked,
        progress: args.progress,
        schedule: args.schedule,
    })
}
