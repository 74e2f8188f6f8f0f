//! Applying an image's layers, base first, onto one directory: the tree a pulled parent image
//! shows, for children to build on (an overlay lower dir) and for tests to run in.
//!
//! Runs as the `unpack_layers` job (`crate::jobs`) inside the user namespace, so owners are kept
//! as the image's ids. The writing (whiteouts included) is the one tarball module's.
//!
//! Not for: writing layers (`layer`).

use std::path::Path;

use anyhow::{Context, Result};

use super::blob::BlobStore;
use super::spec::Digest;
use crate::sandbox::safe_fs::TreeDir;
use crate::tarball::{self, UnpackMode, UnpackSummary};

/// Apply the layer blobs `digests` (base first) from `store` onto `dest` (created).
pub fn apply_layers(store: &BlobStore, digests: &[Digest], dest: &Path) -> Result<UnpackSummary> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let root = TreeDir::open_root(dest)?;
    let mode = UnpackMode {
        keep_owners: true,
        whiteouts: true,
    };
    let mut total = UnpackSummary::default();
    for digest in digests {
        let path = store.path(digest);
        let summary = tarball::unpack_stream(tarball::open(&path)?, &root, mode)
            .with_context(|| format!("layer {digest}"))?;
        total.add(&summary);
    }
    Ok(total)
}
