//! Unpacking one tarball (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2, told apart by their
//! magic bytes) into a directory, with owners, modes (setuid included), xattrs and hardlinks.
//! Runs inside the sandbox's user namespace (`gib __internal unpack-stage3`).
//!
//! Device nodes and fifos are skipped: the tar crate would write them as regular files, a
//! user namespace cannot mknod, and the sandbox binds /dev from the host anyway.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What an unpack did (printed by the hidden subcommand as one JSON line).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpackSummary {
    pub entries: u64,
    /// Character and block devices and fifos left out.
    pub skipped_special: u64,
}

/// Unpack `tarball` into `dest` (replaced if it exists). On failure `dest` is removed, so
/// nothing half-written is left behind.
pub fn unpack_tarball(tarball: &Path, dest: &Path, keep_owners: bool) -> Result<UnpackSummary> {
    remove_if_exists(dest)?;
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let result = unpack(tarball, dest, keep_owners);
    if result.is_err() {
        let _ = remove_if_exists(dest);
    }
    result
}

fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

fn unpack(tarball: &Path, dest: &Path, keep_owners: bool) -> Result<UnpackSummary> {
    let file = File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let reader = decompressor(BufReader::with_capacity(1 << 20, file))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(keep_owners);
    archive.set_unpack_xattrs(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    let mut summary = UnpackSummary::default();
    for entry in archive.entries().context("cannot read the archive")? {
        let mut entry = entry
            .map_err(|err| anyhow::anyhow!("corrupt or truncated archive: {}", innermost(&err)))?;
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo
        ) {
            summary.skipped_special += 1;
            continue;
        }
        let path = entry.path().map(|p| p.into_owned()).unwrap_or_default();
        entry.unpack_in(dest).map_err(|err| {
            // tar's messages repeat the destination path; the innermost cause says it all.
            anyhow::anyhow!("{}: {}", path.display(), innermost(&err))
        })?;
        summary.entries += 1;
    }
    // Read to the end, so a truncated or corrupt compressed stream fails its checks even
    // when the tar end marker came before the damage.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(|err| {
        anyhow::anyhow!(
            "corrupt or truncated archive (after the last entry): {}",
            innermost(&err)
        )
    })?;
    if summary.entries == 0 {
        bail!("the archive has no entries");
    }
    Ok(summary)
}

/// The decompressor for the stream's magic bytes (plain tar otherwise).
fn decompressor<'a>(mut input: BufReader<File>) -> Result<Box<dyn Read + 'a>> {
    let magic = input.fill_buf().context("cannot read the archive")?;
    Ok(if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::read::XzDecoder::new_multi_decoder(input))
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).context("cannot start zstd")?)
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(input))
    } else if magic.len() >= 262 && &magic[257..262] == b"ustar" {
        Box::new(input)
    } else {
        bail!("not a tar archive (nor xz, gzip, zstd or bzip2 compressed)")
    })
}
