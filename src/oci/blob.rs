//! The content-addressed blob store (`<root>/sha256/<hex>`) and the writer that fills it.
//!
//! A blob is streamed into a temp file beside its final place while it is hashed and counted,
//! then renamed into place: a half-written blob (an interrupted build, a full disk) is never
//! visible under a digest, and nothing is ever re-read to be hashed.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

use super::spec::{Digest, HashingWriter};

/// A digest and size of a stored blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub digest: Digest,
    pub size: u64,
}

/// A directory of blobs by digest; the cache's `blobs/` (or an OCI layout's `blobs/`).
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Open (and create) a store rooted at `root` (blobs live in `root/sha256/`).
    pub fn open(root: &Path) -> Result<BlobStore> {
        let dir = root.join("sha256");
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(BlobStore {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of the blob `digest`, whether or not it exists.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        digest.blob_path(&self.root)
    }

    /// A writer for a new blob; [`BlobWriter::commit`] publishes it under its digest.
    pub fn writer(&self) -> Result<BlobWriter> {
        let dir = self.root.join("sha256");
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a temporary blob in {}", dir.display()))?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(1 << 20, temp)),
            root: self.root.clone(),
        })
    }

    /// Store a small blob held in memory (a config, a manifest).
    pub fn put(&self, bytes: &[u8]) -> Result<StoredBlob> {
        let mut writer = self.writer()?;
        writer
            .write_all(bytes)
            .with_context(|| format!("cannot write a blob in {}", self.root.display()))?;
        writer.commit()
    }
}

/// Streams a blob into a temp file of the store, hashing and counting what passes.
pub struct BlobWriter {
    out: HashingWriter<BufWriter<NamedTempFile>>,
    root: PathBuf,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl BlobWriter {
    /// Flush, sync and rename the blob into place. If the same blob already exists, the new
    /// copy is dropped. On error the temp file is removed.
    pub fn commit(self) -> Result<StoredBlob> {
        let (digest, size, out) = self.out.finish();
        let dir = self.root.join("sha256");
        let write_error = || format!("cannot write a blob in {}", dir.display());
        let temp = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(write_error)?;
        let final_path = digest.blob_path(&self.root);
        if !final_path.exists() {
            // Synced before the rename so a crash cannot leave a short file under a digest.
            // 0644, as OCI layouts have them (the temp file is 0600): gib's helpers read
            // blobs from inside the sandbox, whose root is not the host's root of a root gib.
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))
                .and_then(|()| temp.as_file().sync_all())
                .with_context(write_error)?;
            temp.persist(&final_path).map_err(|e| {
                anyhow::Error::new(e.error)
                    .context(format!("cannot store {}", final_path.display()))
            })?;
        }
        Ok(StoredBlob { digest, size })
    }
}

/// Copy (or hardlink) a blob file to `dest`, via a temp file beside it, unless it is there.
/// The copy gets `mode`; a hardlink, the store's blob itself, is made only when `mode` is
/// the store's 0644.
pub fn copy_blob(src: &Path, dest: &Path, mode: u32) -> Result<()> {
    if dest.exists() {
        return Ok(());
    }
    let dir = dest
        .parent()
        .with_context(|| format!("no parent directory for {}", dest.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Blobs are immutable, so a hardlink is as good as a copy and costs no space.
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .make_in(dir, |path| {
            if mode == 0o644 {
                fs::hard_link(src, path)
            } else {
                Err(io::Error::other("another mode than the store's"))
            }
        });
    let temp = match temp {
        Ok(temp) => temp.into_temp_path(),
        Err(_) => {
            let mut temp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
            let mut input =
                File::open(src).with_context(|| format!("cannot read {}", src.display()))?;
            io::copy(&mut input, temp.as_file_mut())
                .with_context(|| format!("cannot copy {} to {}", src.display(), dir.display()))?;
            use std::os::unix::fs::PermissionsExt;
            temp.as_file()
                .set_permissions(fs::Permissions::from_mode(mode))
                .and_then(|()| temp.as_file().sync_all())
                .with_context(|| format!("cannot write {}", dir.display()))?;
            temp.into_temp_path()
        }
    };
    temp.persist(dest).map_err(|e| {
        anyhow::Error::new(e.error).context(format!("cannot store {}", dest.display()))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_stores_under_the_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BlobStore::open(tmp.path()).unwrap();
        let blob = store.put(b"hello").unwrap();
        assert_eq!(
            blob.digest.as_str(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(fs::read(store.path(&blob.digest)).unwrap(), b"hello");
        let names: Vec<_> = fs::read_dir(tmp.path().join("sha256")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left behind");
    }
}
