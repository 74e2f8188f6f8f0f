//! The work gib does inside its own user namespace, as one list: each [`Job`] runs as
//! `gib __internal job` through `sandbox::job` (JSON in, JSON out), so it sees the trees the
//! build made with the owners they have there (portage's 250 stays 250, not a subordinate
//! id). Each job's work lives in its own room; this module only names the jobs, sends them
//! and runs them.
//!
//! Not for: the protocol itself (`sandbox::job`), what a job does (its room).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::oci::blob::BlobStore;
use crate::oci::layer::{LayerOptions, LayerSource};
use crate::oci::spec::Digest;
use crate::sandbox::job::{self, JobError, JobFailed};

/// One piece of work for the helper.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Job {
    /// Write one layer of `source` into the blob store `blobs`: a `Layer` back.
    WriteLayer {
        blobs: PathBuf,
        source: LayerSource,
        options: LayerOptions,
    },
    /// Remove from `upper` the copy-ups that changed nothing over `lowers` (nearest first):
    /// a `PruneSummary` back.
    PruneLayer {
        upper: PathBuf,
        lowers: Vec<PathBuf>,
    },
    /// Apply an image's accounts and paths to its layer dir.
    ApplyFiles(crate::rootfs::files::FilesJob),
    /// Measure an image's layer dirs (`gib inspect`, `--json`): a `UsageReport` back.
    MeasureLayers {
        layer_dirs: Vec<PathBuf>,
        package_dbs: Vec<PathBuf>,
        largest: usize,
    },
    /// Lint an image's layer dirs (nearest first): a `lint::Report` back.
    LintLayers {
        layer_dirs: Vec<PathBuf>,
        inputs: crate::rootfs::lint::LintInputs,
    },
    /// Unpack a tarball (stage3 or `rootfs:`) into `dest`, keeping owners unless the map
    /// has a single id: an `UnpackSummary` back.
    UnpackTarball {
        tarball: PathBuf,
        dest: PathBuf,
        keep_owners: bool,
    },
    /// Apply layer blobs of `blobs` (base first) onto `dest` with their whiteouts: an
    /// `UnpackSummary` back. (On stdin, not the command line: an image may have tens of
    /// thousands of layers.)
    UnpackLayers {
        blobs: PathBuf,
        dest: PathBuf,
        digests: Vec<Digest>,
    },
}

/// Run `job` in the user namespace and read its reply. A failed helper is handed to
/// `failed`, which words the error the user sees.
pub fn run<R: DeserializeOwned>(
    cache: &Cache,
    job: &Job,
    failed: impl FnOnce(JobFailed) -> anyhow::Error,
) -> Result<R> {
    run_with_progress(cache, job, &|_| {}, failed)
}

/// [`run`], handing `progress` the byte counts the helper reports as it works.
pub fn run_with_progress<R: DeserializeOwned>(
    cache: &Cache,
    job: &Job,
    progress: &(dyn Fn(u64) + Sync),
    failed: impl FnOnce(JobFailed) -> anyhow::Error,
) -> Result<R> {
    let scratch = tempfile::tempdir_in(cache.dir("tmp")?)
        .context("cannot create a scratch directory in the cache")?;
    job::run_job(scratch.path(), job, progress).map_err(|err| match err {
        JobError::Failed(f) => failed(f),
        JobError::Setup(err) => err,
    })
}

/// The helper's side (`gib __internal job`): one job from stdin, its reply on stdout.
pub fn serve() -> Result<()> {
    job::serve(std::io::stdin().lock(), std::io::stdout().lock(), work)
}

fn work(job: Job) -> Result<serde_json::Value> {
    fn reply(value: impl Serialize) -> Result<serde_json::Value> {
        serde_json::to_value(value).context("cannot encode the job's reply")
    }
    match job {
        Job::WriteLayer {
            blobs,
            source,
            options,
        } => reply(crate::oci::layer::write_layer(
            &source,
            &BlobStore::open(&blobs)?,
            &options,
            &job::ReportProgress,
        )?),
        Job::PruneLayer { upper, lowers } => {
            reply(crate::rootfs::changes::prune_unchanged(&upper, &lowers)?)
        }
        Job::ApplyFiles(files) => reply(crate::rootfs::files::apply_files(files)?),
        Job::MeasureLayers {
            layer_dirs,
            package_dbs,
            largest,
        } => reply(crate::rootfs::usage::layers_usage(
            &layer_dirs,
            &package_dbs,
            largest,
        )?),
        Job::LintLayers { layer_dirs, inputs } => {
            reply(crate::rootfs::lint::lint_layers(&layer_dirs, &inputs)?)
        }
        Job::UnpackTarball {
            tarball,
            dest,
            keep_owners,
        } => reply(crate::tarball::unpack_tarball(
            &tarball,
            &dest,
            keep_owners,
            job::ReportProgress,
        )?),
        Job::UnpackLayers {
            blobs,
            dest,
            digests,
        } => reply(crate::oci::apply::apply_layers(
            &BlobStore::open(&blobs)?,
            &digests,
            &dest,
        )?),
    }
}

/// The usual wording of a failed job: `cannot <what> (<exit>): <the helper's error>`.
pub fn cannot(what: impl std::fmt::Display) -> impl FnOnce(JobFailed) -> anyhow::Error {
    move |f| anyhow::anyhow!("cannot {what} ({}): {}", f.exit, f.message)
}
