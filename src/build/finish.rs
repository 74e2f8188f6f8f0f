//! An image's `accounts:` and `paths:`, applied to its layer after emerge and finish-root.sh:
//! the host's `paths[].source` files are copied into the build's input dir first, by gib
//! itself, so the job (`rootfs::files`, run in the user namespace) reads nothing of the host
//! but what it is given.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::BuildContext;
use crate::rootfs::accounts::PathKind;
use crate::rootfs::files::FilesJob;

/// Apply `image`'s accounts and paths to `upper` over `lowers`; nothing when it has none.
pub fn apply(
    ctx: &BuildContext<'_>,
    image: &crate::plan::ImagePlan,
    upper: &Path,
    lowers: &[PathBuf],
    input_dir: &Path,
) -> Result<()> {
    if image.accounts.is_none() && image.paths.is_empty() {
        return Ok(());
    }
    let files_dir = input_dir.join("files");
    std::fs::create_dir_all(&files_dir)
        .with_context(|| format!("cannot create {}", files_dir.display()))?;
    let mut paths = image.paths.clone();
    for (index, entry) in paths.iter_mut().enumerate() {
        if let PathKind::File { source } = &mut entry.kind {
            let copy = files_dir.join(index.to_string());
            std::fs::copy(&*source, &copy).with_context(|| {
                format!(
                    "image {}: cannot copy {} (paths: `{}`)",
                    image.name,
                    source.display(),
                    entry.path
                )
            })?;
            *source = copy;
        }
    }
    // An image with no emerge and no script has had no sandbox write its layer yet: the
    // job writes it as the sandbox's root, so the dir must be that root's (as an emerge's
    // /staging is made).
    crate::sandbox::hand_over(upper)?;
    let job = FilesJob {
        upper: upper.to_path_buf(),
        lowers: lowers.to_vec(),
        accounts: image.accounts.clone(),
        paths,
    };
    let what = format!("apply the accounts and paths of image {}", image.name);
    crate::jobs::run(
        ctx.cache,
        &crate::jobs::Job::ApplyFiles(job),
        crate::jobs::cannot(what),
    )
}

/// The contents of the files `paths:` copies from the host, for the image's input key (the
/// plan names them only by path).
pub fn sources_identity(image: &crate::plan::ImagePlan) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for entry in &image.paths {
        if let PathKind::File { source } = &entry.kind {
            let bytes = std::fs::read(source).with_context(|| {
                format!(
                    "image {}: cannot read {} (paths: `{}`)",
                    image.name,
                    source.display(),
                    entry.path
                )
            })?;
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}
