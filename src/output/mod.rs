//! Where finished images go: an OCI layout directory, a docker/podman-loadable archive, a
//! registry.
//!
//! Every output is written beside its final place and renamed into it, so a failed build
//! (a full disk included) leaves the previous output as it was.

pub mod archive;
pub mod layout;
pub mod registry;

use std::path::Path;

use anyhow::{Context, Result};

use crate::oci::image::Image;

/// The mode of a finished output file: 0644 less the process's umask, as a file made by
/// `open(2)` with 0644 would get. Temp files are 0600 while they are written (nobody reads
/// half an output); [`publish_mode`] gives them this mode before the rename.
pub fn file_mode() -> u32 {
    0o644 & !umask()
}

/// Give the temp file of an output, about to be renamed into place, [`file_mode`].
pub fn publish_mode(file: &std::fs::File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(file_mode()))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// The process's umask, from /proc/self/status (Linux 4.7+); reading it so needs no
/// umask(2) round trip, which would race with other threads creating files. 022 when the
/// kernel does not say.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix("Umask:")?.trim();
                u32::from_str_radix(value, 8).ok()
            })
        })
        .unwrap_or(0o022)
}

/// One image under one reference.
#[derive(Debug, Clone)]
pub struct TaggedImage<'a> {
    pub image: &'a Image,
    /// `name:tag` or `registry/name:tag`.
    pub reference: String,
}
