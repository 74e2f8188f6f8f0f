//! An image's cache entry, the one place that knows its life: naming, generations,
//! `record.json`, finding the entries of the same inputs, publishing a finished build, and
//! the latest build of an image for `gib inspect`.
//!
//! `images/<name>-<key>.<generation>/` holds `upper/` (what its build added to its builder
//! root: the upper dir of an overlay over its parent's builder, down to the stage3),
//! `layer/` (what it adds to its parent's tree: the upper dir of an overlay over its
//! parent's layers, with overlayfs whiteouts; copy-ups that changed nothing are pruned) and
//! `record.json`. Entries are made in a scratch dir and renamed into place, and never changed
//! after that: a rebuild (`--force`, or a USE line of a package the build merged) makes a new
//! generation, so a child building on the old one in another gib keeps its lower dirs. A run
//! holds a shared lock on every entry it builds on until it ends; `gib clean` and the removal
//! of superseded generations skip entries in use.
//!
//! Not for: what goes into an entry (`packages`) or how its key is made (`key`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::BuiltImage;
use crate::cache::Cache;
use crate::oci::blob::BlobStore;
use crate::sandbox::{OverlayScratch, remove_tree, retire_tree};

/// The cache kind (and lock kind) of image entries.
const KIND: &str = "images";
/// The lock kind of one entry, as the cache's table of kinds names it (`gib clean` takes the
/// same lock before it removes the entry).
fn lock_kind() -> &'static str {
    crate::cache::kind_named(KIND)
        .and_then(|kind| kind.entry_lock)
        .unwrap_or(KIND)
}

/// The record of a finished build, in its entry.
const RECORD_FILE: &str = "record.json";
/// Digits of the key in an entry's name.
const KEY_DIGITS: usize = 16;

/// The entries of one image's inputs, `<name>-<key>`: one per build of them (generation).
pub struct Slot {
    name: String,
}

impl Slot {
    pub fn new(image: &str, key: &str) -> Slot {
        Slot {
            name: format!("{image}-{}", &key[..KEY_DIGITS.min(key.len())]),
        }
    }

    /// `<name>-<key>`: also names the lock held while building these inputs and the log dir.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new entry for a build of these inputs: entries are never replaced, so each build
    /// gets its own (`<slot>.<generation>`).
    pub fn new_entry(&self, cache: &Cache) -> Result<Entry> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let generation = format!("{:x}{:05x}", now.as_nanos(), std::process::id());
        Ok(Entry {
            path: cache.dir(KIND)?.join(format!("{}.{generation}", self.name)),
        })
    }

    /// The entries of this slot (`<slot>`, from gibs before generations, and
    /// `<slot>.<generation>`), newest first.
    pub fn entries(&self, cache: &Cache) -> Result<Vec<Entry>> {
        let dir = cache.dir(KIND)?;
        let listing =
            fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut entries = Vec::new();
        for item in listing {
            let item = item.with_context(|| format!("cannot read {}", dir.display()))?;
            let name = item.file_name().to_string_lossy().into_owned();
            if name == self.name
                || name
                    .strip_prefix(&self.name)
                    .is_some_and(|g| g.starts_with('.'))
            {
                let time = item.metadata().and_then(|m| m.modified()).ok();
                entries.push((time, item.path()));
            }
        }
        entries.sort_by(|a, b| b.cmp(a));
        Ok(entries
            .into_iter()
            .map(|(_, path)| Entry { path })
            .collect())
    }

    /// Move a finished scratch dir to `entry` (a new one: a published entry is never changed,
    /// as children of it may be building on it), without the overlay work dirs, and use it
    /// for the rest of the run. Older entries of the same inputs (`--force`) that no gib uses
    /// are removed.
    pub fn publish(
        &self,
        cache: &Cache,
        store: &BlobStore,
        scratch: OverlayScratch,
        entry: &Entry,
        record: &BuiltImage,
    ) -> Result<()> {
        for work in [scratch.work(), scratch.path().join("layer-work")] {
            remove_tree(&work)?;
        }
        self.move_into_place(cache, store, scratch.path(), entry, record)
    }

    /// Publish a new entry that holds only its record: a `rootfs:` image, whose trees are
    /// the cache's `rootfs` entries.
    pub fn publish_record(
        &self,
        cache: &Cache,
        store: &BlobStore,
        record: &BuiltImage,
    ) -> Result<()> {
        let scratch = cache.scratch_path(KIND)?;
        let entry = self.new_entry(cache)?;
        let published = write_record(&scratch, record)
            .and_then(|()| self.move_into_place(cache, store, &scratch, &entry, record));
        if published.is_err() {
            crate::cache::remove_any(&scratch).ok();
        }
        published
    }

    /// Rename a finished scratch dir to `entry`, use it, and retire the older entries of
    /// the same inputs that no gib uses.
    fn move_into_place(
        &self,
        cache: &Cache,
        store: &BlobStore,
        scratch: &Path,
        entry: &Entry,
        record: &BuiltImage,
    ) -> Result<()> {
        let in_use = cache.lock(lock_kind(), &entry.name())?;
        fs::rename(scratch, &entry.path).with_context(|| {
            format!(
                "cannot move {} to {}",
                scratch.display(),
                entry.path.display()
            )
        })?;
        cache.keep(in_use)?;
        for old in self.entries(cache)? {
            if old.path == entry.path || old.record(store).is_some_and(|r| r.key != record.key) {
                continue;
            }
            if let Some(_removing) = cache.try_lock(lock_kind(), &old.name())? {
                retire_tree(&old.path)?;
            }
        }
        Ok(())
    }
}

/// One build's entry, published or about to be.
pub struct Entry {
    path: PathBuf,
}

impl Entry {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry's directory name, which names its lock too.
    fn name(&self) -> String {
        self.path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    /// The record, when the entry is complete and its blobs are all still there.
    pub fn record(&self, store: &BlobStore) -> Option<BuiltImage> {
        let text = fs::read(self.path.join(RECORD_FILE)).ok()?;
        let record: BuiltImage = serde_json::from_slice(&text).ok()?;
        // Entries from before SBOMs were attached are rebuilt rather than shipped without one.
        record.sbom()?;
        let blobs = std::iter::once(&record.image.manifest)
            .chain(std::iter::once(&record.image.config))
            .chain(record.image.layers.iter())
            .chain(
                record
                    .referrers
                    .iter()
                    .flat_map(|a| a.blobs.iter().chain([&a.manifest])),
            );
        for blob in blobs {
            if !store.path(&blob.digest).exists() {
                return None;
            }
        }
        Some(record)
    }

    /// Use this published entry until the run ends; false when it is gone (a `gib clean`
    /// removed it meanwhile).
    pub fn use_if_present(&self, cache: &Cache) -> Result<bool> {
        cache.use_if_present(lock_kind(), &self.name(), &self.path)
    }
}

/// A scratch dir for a new entry, beside the entries so it is renamed into place.
pub fn scratch(cache: &Cache) -> Result<OverlayScratch> {
    OverlayScratch::create(&cache.dir(KIND)?)
}

/// Write the record of a build into its entry's scratch dir (renamed into place after).
pub fn write_record(entry_scratch: &Path, record: &BuiltImage) -> Result<()> {
    let path = entry_scratch.join(RECORD_FILE);
    fs::write(&path, serde_json::to_vec_pretty(record)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The most recent build of the image `name` in `cache` (by its record's time), of
/// `platform` when given (the platform its config names: the images of several platforms
/// have an entry each).
pub fn latest_record(
    cache: &Cache,
    name: &str,
    platform: Option<&crate::oci::spec::Platform>,
) -> Result<Option<BuiltImage>> {
    let images = cache.dir(KIND)?;
    let prefix = format!("{name}-");
    let mut records: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    let entries =
        fs::read_dir(&images).with_context(|| format!("cannot read {}", images.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", images.display()))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        // `<name>-<16 hex digits>[.<generation>]`: the name itself may contain dashes.
        let Some(key) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let key = key.split_once('.').map_or(key, |(key, _)| key);
        if key.len() != KEY_DIGITS || !key.chars().all(|c| c.is_ascii_hexdigit()) {
            continue;
        }
        let record = entry.path().join(RECORD_FILE);
        let Ok(modified) = fs::metadata(&record).and_then(|m| m.modified()) else {
            continue;
        };
        records.push((modified, record));
    }
    records.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, record) in records {
        let text =
            fs::read(&record).with_context(|| format!("cannot read {}", record.display()))?;
        let built: BuiltImage = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a build record", record.display()))?;
        if platform.is_none_or(|wanted| wanted.matches(&built.platform())) {
            return Ok(Some(built));
        }
    }
    Ok(None)
}
