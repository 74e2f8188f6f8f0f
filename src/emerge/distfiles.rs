//! The shared distfile cache after a fetch went wrong: Portage keeps a download whose bytes
//! failed the Manifest as `<file>._checksum_failure_.<random>` and a partial one as
//! `<file>.__download__` in DISTDIR (fetch.py), where every later build would find them.
//! gib removes them once the emerge that made them has ended, so the cache only ever holds
//! distfiles that passed their Manifest.
//!
//! Not for the distfiles themselves: Portage fetches, verifies and names those.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Portage's suffix for a download in progress (fetch.py `_download_suffix`).
const DOWNLOAD_SUFFIX: &str = ".__download__";
/// What Portage puts between the file name and a random part when it sets a file aside.
const CHECKSUM_FAILURE_MARK: &str = "._checksum_failure_.";

/// Remove every set-aside download from `distdir`, and the partial download of `failed`
/// (the file whose fetch failed; other partial downloads may belong to builds still
/// running). Entries are unlinked by name, never followed. Returns what was removed.
pub fn discard_failed_downloads(distdir: &Path, failed: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries =
        fs::read_dir(distdir).with_context(|| format!("cannot read {}", distdir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", distdir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let partial = failed.is_some_and(|f| name == format!("{f}{DOWNLOAD_SUFFIX}"));
        if !(name.contains(CHECKSUM_FAILURE_MARK) || partial) {
            continue;
        }
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_aside_and_the_failed_partial_download_go() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "hello-2.10.tar.gz._checksum_failure_.ab12cd",
            "hello-2.10.tar.gz.__download__._checksum_failure_.x",
            "hello-2.10.tar.gz.__download__",
            "other-1.0.tar.xz.__download__",
            "good-1.0.tar.gz",
        ] {
            fs::write(d.join(name), b"x").unwrap();
        }
        // A link is removed as a link: its target is left alone.
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), b"k").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("keep"),
            d.join("evil._checksum_failure_.1"),
        )
        .unwrap();

        let removed = discard_failed_downloads(d, Some("hello-2.10.tar.gz")).unwrap();
        assert_eq!(removed.len(), 4, "{removed:?}");
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["good-1.0.tar.gz", "other-1.0.tar.xz.__download__"]);
        assert!(outside.path().join("keep").is_file());
    }
}
