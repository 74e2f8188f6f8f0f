//! Writing a layer from a tree the sandbox filled: the writer runs as a job (`crate::jobs`)
//! inside a user namespace (no root, no mounts), so it reads the tree
//! with the owners the build gave it (portage's 250 stays 250, not a subordinate id) and
//! file capabilities in the namespace's form. Pruning a staging upper dir of unchanged
//! copy-ups runs the same way, before the layer is written.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::BuildContext;
use crate::jobs::{self, Job};
use crate::oci::layer::{Layer, LayerOptions, LayerSource};
use crate::printer::{ByteProgress, human_bytes};
use crate::rootfs::changes::PruneSummary;

/// How an image's layers are written in this run.
/// Every layer is clamped to the build's epoch, directories too: a tree gib unpacked or
/// made has times of when that happened, which must not reach the image.
pub fn layer_options(
    ctx: &BuildContext<'_>,
    image: &crate::plan::ImagePlan,
) -> Result<LayerOptions> {
    Ok(LayerOptions {
        compression: image.compression,
        source_date_epoch: Some(ctx.epoch()?),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        owners: None,
    })
}

/// Write a layer as a job, with a live step (`label`: which layer) counting the tar's bytes.
pub fn write_in_namespace(
    ctx: &BuildContext<'_>,
    label: &str,
    source: LayerSource,
    options: LayerOptions,
) -> Result<Layer> {
    let what = format!("write the layer of {}", source.root.display());
    let job = Job::WriteLayer {
        blobs: ctx.store.root().to_path_buf(),
        source,
        options,
    };
    let step = ctx.printer.step("Writing", label);
    let layer: Layer = jobs::run_with_progress(
        ctx.cache,
        &job,
        &|done| step.bytes(done, None),
        jobs::cannot(what),
    )?;
    step.finish("Wrote", &format!("{label} ({})", human_bytes(layer.size)));
    Ok(layer)
}

/// Remove from `upper` (a staging overlay's upper dir) the copy-ups that changed nothing
/// over `lowers`, inside the user namespace where the build's owners are ours.
pub fn prune_in_namespace(
    ctx: &BuildContext<'_>,
    upper: &Path,
    lowers: &[PathBuf],
) -> Result<PruneSummary> {
    let job = Job::PruneLayer {
        upper: upper.to_path_buf(),
        lowers: lowers.to_vec(),
    };
    jobs::run(
        ctx.cache,
        &job,
        jobs::cannot(format!("prune {}", upper.display())),
    )
}
