//! Ebuild repositories: the main one (`portage:`) and overlays (`repositories:`), synced into
//! the cache once per run and bound read-only into every builder.
//!
//! Sync types: `git` (shallow fetch by the `git` CLI), `rsync` (the `rsync` CLI), `webrsync`
//! (the dated snapshot tarball and its signature by Gentoo's infrastructure key), `local` (a
//! host directory used as is) and `none` (nothing: the stage3's own tree).
//!
//! A synced copy is never changed in place, because a running build may have it bound:
//! each sync makes a new tree `repos/<name>-<hash of uri>/snap-<id>/` and then swaps the
//! `current` symlink beside it. Older trees are removed, except the previous one and any
//! that a running gib holds (a shared lock on `snap-<id>.lock`, taken by `sync` and kept
//! until the process exits), since a build may still read them. A sync holds the entry's lock, so two gib
//! processes never sync the same repository at once. A `pin` (a date or a commit) selects
//! that snapshot, and a pinned snapshot already in the cache is used without the network.
//!
//! Use: once per run, `sync(&RepoSpec::main(&config.portage, &trust), …)` and
//! `sync(&RepoSpec::overlay(repo, &trust), …)` for each of `config.repositories`; bind each
//! `SyncedRepo::path` read-only at `SyncedRepo::location` in every builder; record
//! `snapshot` (its `date` is the tag rule's snapshot date) and `revision` in the annotations.
//!
//! Not here: repos.conf text (`gentoo`), the bind mounts themselves (`sandbox`).

mod git;
mod rsync;
mod snapshot;
mod webrsync;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::{Cache, remove_any};
use crate::openpgp::Trust;
use crate::printer::{Printer, UserError};

pub use snapshot::{Pin, SnapshotTime};

/// The name of the main ebuild repository.
pub const MAIN_REPO: &str = "gentoo";

const CACHE_KIND: &str = "repos";

/// How a repository is synced (`sync_type:`); config re-exports these types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncType {
    Git,
    Rsync,
    Webrsync,
    Local,
    None,
}

/// The main ebuild repository ("gentoo").
#[derive(Debug, Clone, PartialEq)]
pub struct Portage {
    pub sync_type: SyncType,
    pub uri: Option<String>,
    pub pin: Option<String>,
    /// A PEM CA certificate trusted for the repository's host besides the system roots.
    pub ca_certificate: Option<PathBuf>,
}

/// An extra ebuild repository (overlay).
#[derive(Debug, Clone, PartialEq)]
pub struct Repository {
    pub name: String,
    pub sync_type: SyncType,
    pub uri: Option<String>,
    /// A PEM CA certificate trusted for this repository's host besides the system roots.
    pub ca_certificate: Option<PathBuf>,
    pub priority: Option<i32>,
}

/// What to sync: built from a [`Portage`] or a [`Repository`].
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSpec {
    /// The repository's name (`gentoo` for the main one); its place in the builder is
    /// `/var/db/repos/<name>`.
    pub name: String,
    pub sync_type: SyncType,
    /// A URL, or a host path for `local`; `None` takes the default of the main repository.
    pub uri: Option<String>,
    /// A snapshot date (`2026-11-20`, `20261120`) or a commit.
    pub pin: Option<String>,
    /// CA certificates (PEM) trusted instead of the built-in ones for this host.
    pub ca_certificate: Option<PathBuf>,
    /// repos.conf `priority`.
    pub priority: Option<i32>,
    /// The key that signs webrsync snapshots.
    pub trust: Trust,
}

impl RepoSpec {
    /// The main repository, with its own CA certificate (`portage.ca_certificate`).
    pub fn main(portage: &Portage, trust: &Trust) -> RepoSpec {
        RepoSpec {
            name: MAIN_REPO.to_string(),
            sync_type: portage.sync_type,
            uri: portage.uri.clone(),
            pin: portage.pin.clone(),
            ca_certificate: portage.ca_certificate.clone(),
            priority: None,
            trust: trust.clone(),
        }
    }

    /// An overlay, with its own CA certificate and priority.
    pub fn overlay(repository: &Repository, trust: &Trust) -> RepoSpec {
        RepoSpec {
            name: repository.name.clone(),
            sync_type: repository.sync_type,
            uri: repository.uri.clone(),
            pin: None,
            ca_certificate: repository.ca_certificate.clone(),
            priority: repository.priority,
            trust: trust.clone(),
        }
    }
}

/// A repository ready to be bound into builders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncedRepo {
    pub name: String,
    pub sync_type: SyncType,
    /// The host directory to bind read-only at `location`: a snapshot in the cache (its real
    /// path, not the `current` symlink, so a later sync never changes what a build sees), or
    /// the user's directory for `local`. `None` for `sync_type: none`.
    pub path: Option<PathBuf>,
    /// Where the builder sees it, `/var/db/repos/<name>` (repos.conf `location`).
    pub location: String,
    /// repos.conf `priority`, when the user set one.
    pub priority: Option<i32>,
    /// When the tree was made (metadata/timestamp.chk, else timestamp.commit, else the git
    /// commit time); `None` when the tree does not say.
    pub snapshot: Option<SnapshotTime>,
    /// The git commit, for git (and local git checkouts).
    pub revision: Option<String>,
}

/// What `spec` asks for, as one line (`git https://… pin 2026-11-20`): gib.lock records it
/// beside the snapshot it resolved to.
pub fn describe(spec: &RepoSpec) -> String {
    let mut text = sync_type_name(spec.sync_type).to_string();
    if let Ok(Some(uri)) = resolve_uri(spec) {
        text.push(' ');
        text.push_str(&uri);
    }
    if let Some(pin) = &spec.pin {
        text.push_str(&format!(" pin {pin}"));
    }
    text
}

/// Sync `spec` into the cache (or use the cached copy with `offline`) and say what to bind.
/// Each repository is synced at most once per process: later calls return the first result.
pub fn sync(
    spec: &RepoSpec,
    cache: &Cache,
    offline: bool,
    printer: &Printer,
) -> Result<SyncedRepo> {
    check_name(&spec.name)?;
    let pin = spec.pin.as_deref().map(Pin::parse).transpose()?;
    let uri = resolve_uri(spec)?;
    let memo_key = format!(
        "{:?}|{}|{:?}|{}|{offline}",
        spec.sync_type,
        uri.as_deref().unwrap_or_default(),
        spec.pin,
        spec.name
    );
    if let Some(done) = synced_this_run().get(&memo_key) {
        return Ok(done.clone());
    }
    let synced = sync_uncached(spec, uri.as_deref(), pin.as_ref(), cache, offline, printer)?;
    synced_this_run().insert(memo_key, synced.clone());
    Ok(synced)
}

fn synced_this_run() -> std::sync::MutexGuard<'static, BTreeMap<String, SyncedRepo>> {
    static SYNCED: Mutex<BTreeMap<String, SyncedRepo>> = Mutex::new(BTreeMap::new());
    SYNCED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn sync_uncached(
    spec: &RepoSpec,
    uri: Option<&str>,
    pin: Option<&Pin>,
    cache: &Cache,
    offline: bool,
    printer: &Printer,
) -> Result<SyncedRepo> {
    let mut synced = SyncedRepo {
        name: spec.name.clone(),
        sync_type: spec.sync_type,
        path: None,
        location: format!("/var/db/repos/{}", spec.name),
        priority: spec.priority,
        snapshot: None,
        revision: None,
    };
    check_pin_allowed(spec, pin)?;
    let uri = match (spec.sync_type, uri) {
        (SyncType::None, _) => return Ok(synced),
        (_, Some(uri)) => uri,
        (sync_type, None) => {
            return Err(UserError::new(format!(
                "repository `{}`: sync_type {} needs a uri",
                spec.name,
                sync_type_name(sync_type)
            ))
            .into());
        }
    };
    if spec.sync_type == SyncType::Local {
        let path = local_path(&spec.name, uri)?;
        synced.snapshot = SnapshotTime::of_tree(&path);
        synced.revision = git::local_revision(&path);
        synced.path = Some(path);
        return Ok(synced);
    }

    let key = format!("{}-{}", spec.name, short_hash(spec.sync_type, uri));
    let _lock = cache.lock(CACHE_KIND, &key)?;
    let store = Store::open(cache, &key)?;
    let usable = match pin {
        Some(pin) => store.find_pinned(pin),
        None if offline => store.current(),
        None => None,
    };
    if let Some((path, record)) = usable {
        printer.detail(&format!(
            "repository {} from the cache: {}",
            spec.name,
            path.display()
        ));
        store.hold(&record.id)?;
        return Ok(record.fill(synced, path));
    }
    if offline {
        return Err(UserError::with_hint(
            format!(
                "--offline: repository `{}` ({uri}{}) has not been synced into the cache {}",
                spec.name,
                pin.map(|p| format!(", pin {p}")).unwrap_or_default(),
                store.dir.display()
            ),
            "run once without --offline",
        ));
    }

    let label = format!("repository {} from {uri}", spec.name);
    let step = printer.step("Syncing", &label);
    let fetched = match spec.sync_type {
        SyncType::Git => git::fetch(uri, pin, spec.ca_certificate.as_deref(), &store, printer)?,
        SyncType::Rsync => rsync::fetch(uri, &store)?,
        SyncType::Webrsync => webrsync::fetch(uri, pin, spec, &key, &store, cache, printer)?,
        SyncType::Local | SyncType::None => unreachable_sync_type(spec.sync_type)?,
    };
    let (path, record) = store.commit(fetched, pin)?;
    store.hold(&record.id)?;
    step.finish("Synced", &label);
    Ok(record.fill(synced, path))
}

fn unreachable_sync_type(sync_type: SyncType) -> Result<Fetched> {
    anyhow::bail!("internal: sync type {sync_type:?} has no cached copy")
}

fn resolve_uri(spec: &RepoSpec) -> Result<Option<String>> {
    let default = match (spec.name.as_str(), spec.sync_type) {
        (MAIN_REPO, SyncType::Git) => Some(crate::gentoo::GIT_URI),
        (MAIN_REPO, SyncType::Rsync) => Some(crate::gentoo::RSYNC_URI),
        (MAIN_REPO, SyncType::Webrsync) => Some(crate::gentoo::MIRROR),
        _ => None,
    };
    Ok(spec
        .uri
        .clone()
        .filter(|u| !u.trim().is_empty())
        .or(default.map(str::to_string)))
}

fn check_pin_allowed(spec: &RepoSpec, pin: Option<&Pin>) -> Result<()> {
    let allowed = matches!(
        (spec.sync_type, pin),
        (_, None) | (SyncType::Git, Some(_)) | (SyncType::Webrsync, Some(Pin::Date(_)))
    );
    if !allowed {
        return Err(UserError::with_hint(
            format!(
                "repository `{}`: sync_type {} cannot be pinned to {}",
                spec.name,
                sync_type_name(spec.sync_type),
                spec.pin.as_deref().unwrap_or_default()
            ),
            "pin a date or a commit with sync_type git, or a date with webrsync",
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if !ok {
        return Err(UserError::new(format!(
            "`{name}` is not a valid repository name (letters, digits, - _ . +)"
        ))
        .into());
    }
    Ok(())
}

fn local_path(name: &str, uri: &str) -> Result<PathBuf> {
    let raw = uri.strip_prefix("file://").unwrap_or(uri);
    let path = Path::new(raw).canonicalize().map_err(|err| {
        UserError::new(format!(
            "repository `{name}`: the local directory {raw} cannot be used: {err}"
        ))
    })?;
    if !path.is_dir() {
        return Err(UserError::new(format!(
            "repository `{name}`: {} is not a directory",
            path.display()
        ))
        .into());
    }
    Ok(path)
}

fn sync_type_name(sync_type: SyncType) -> &'static str {
    match sync_type {
        SyncType::Git => "git",
        SyncType::Rsync => "rsync",
        SyncType::Webrsync => "webrsync",
        SyncType::Local => "local",
        SyncType::None => "none",
    }
}

/// 12 hex digits of SHA-256 over the sync type and uri: a new uri is a new cached copy.
fn short_hash(sync_type: SyncType, uri: &str) -> String {
    let digest = Sha256::digest(format!("{}\n{uri}", sync_type_name(sync_type)));
    hex::encode(&digest[..6])
}

/// A tree a backend made in the store's scratch space, not yet published.
struct Fetched {
    /// The repository tree (inside `scratch`, or `scratch` itself).
    tree: PathBuf,
    /// Removed after the tree is published.
    scratch: PathBuf,
    /// The snapshot's name in the store (a commit, a date); `None`: from its time.
    id: Option<String>,
    revision: Option<String>,
    /// When the tree says nothing of its time (git: the commit time).
    fallback_time: Option<SnapshotTime>,
}

/// What the store records beside each snapshot (`snap-<id>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotRecord {
    id: String,
    revision: Option<String>,
    snapshot: Option<SnapshotTime>,
    /// The pin this snapshot was made for, as `Pin::key`.
    pin: Option<String>,
}

impl SnapshotRecord {
    fn fill(self, mut synced: SyncedRepo, path: PathBuf) -> SyncedRepo {
        synced.path = Some(path);
        synced.snapshot = self.snapshot;
        synced.revision = self.revision;
        synced
    }
}

/// One repository's directory in the cache: immutable `snap-<id>/` trees, their records,
/// a `current` symlink and the backends' working state (a bare git repository).
struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open the entry (the caller holds its lock) and remove what a crashed sync left.
    fn open(cache: &Cache, key: &str) -> Result<Store> {
        let dir = cache.dir(CACHE_KIND)?.join(key);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                remove_any(&entry.path()).ok();
            }
        }
        Ok(Store { dir })
    }

    /// A fresh scratch directory beside the snapshots (same filesystem, for the rename).
    fn scratch(&self) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(&self.dir)
            .with_context(|| {
                format!(
                    "cannot create a scratch directory in {}",
                    self.dir.display()
                )
            })?;
        Ok(dir.keep())
    }

    fn current(&self) -> Option<(PathBuf, SnapshotRecord)> {
        let target = fs::read_link(self.dir.join("current")).ok()?;
        let id = target.to_str()?.strip_prefix("snap-")?.to_string();
        self.snapshot(&id)
    }

    fn snapshot(&self, id: &str) -> Option<(PathBuf, SnapshotRecord)> {
        let path = self.dir.join(format!("snap-{id}"));
        let text = fs::read(self.dir.join(format!("snap-{id}.json"))).ok()?;
        let record: SnapshotRecord = serde_json::from_slice(&text).ok()?;
        path.is_dir().then_some((path, record))
    }

    fn find_pinned(&self, pin: &Pin) -> Option<(PathBuf, SnapshotRecord)> {
        let entries = fs::read_dir(&self.dir).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name
                .strip_prefix("snap-")
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Some((path, record)) = self.snapshot(id) {
                let matches = record.pin.as_deref() == Some(pin.key().as_str())
                    || matches!(pin, Pin::Commit(c)
                        if record.revision.as_deref().is_some_and(|r| r.starts_with(c.as_str())));
                if matches {
                    return Some((path, record));
                }
            }
        }
        None
    }

    /// Publish a fetched tree as `snap-<id>` (keeping an identical one already there), make
    /// it `current`, and remove all snapshots but it and the one it replaces.
    fn commit(&self, fetched: Fetched, pin: Option<&Pin>) -> Result<(PathBuf, SnapshotRecord)> {
        let snapshot = SnapshotTime::of_tree(&fetched.tree).or(fetched.fallback_time.clone());
        let id = fetched
            .id
            .clone()
            .or_else(|| snapshot.as_ref().map(SnapshotTime::id))
            .unwrap_or_else(unique_id);
        let record = SnapshotRecord {
            id: id.clone(),
            revision: fetched.revision.clone(),
            snapshot,
            pin: pin.map(Pin::key),
        };
        let path = self.dir.join(format!("snap-{id}"));
        if path.is_dir() {
            remove_any(&fetched.scratch).ok();
        } else {
            fs::rename(&fetched.tree, &path).with_context(|| {
                format!(
                    "cannot move {} to {}",
                    fetched.tree.display(),
                    path.display()
                )
            })?;
            remove_any(&fetched.scratch).ok();
        }
        let record_path = self.dir.join(format!("snap-{id}.json"));
        let tmp_record = self.dir.join(format!(".tmp-snap-{id}.json"));
        fs::write(&tmp_record, serde_json::to_vec_pretty(&record)?)
            .with_context(|| format!("cannot write {}", tmp_record.display()))?;
        fs::rename(&tmp_record, &record_path)
            .with_context(|| format!("cannot write {}", record_path.display()))?;

        let previous = fs::read_link(self.dir.join("current")).ok();
        let link_tmp = self.dir.join(".tmp-current");
        remove_any(&link_tmp).ok();
        std::os::unix::fs::symlink(format!("snap-{id}"), &link_tmp)
            .with_context(|| format!("cannot create {}", link_tmp.display()))?;
        fs::rename(&link_tmp, self.dir.join("current"))
            .with_context(|| format!("cannot update {}/current", self.dir.display()))?;
        self.remove_old(&format!("snap-{id}"), previous.as_deref());
        Ok((path, record))
    }

    /// Remove the snapshots other than `current` and `previous` that no gib process holds.
    fn remove_old(&self, current: &str, previous: Option<&Path>) {
        let keep_previous = previous.and_then(Path::to_str).unwrap_or_default();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_tree = name.starts_with("snap-") && !name.contains('.') && entry.path().is_dir();
            if !is_tree || name == current || name == keep_previous {
                continue;
            }
            let lock_path = self.dir.join(format!("{name}.lock"));
            let unused = fs::File::open(&lock_path)
                .map(|file| file.try_lock().is_ok())
                .unwrap_or(true);
            if unused {
                remove_any(&entry.path()).ok();
                remove_any(&self.dir.join(format!("{name}.json"))).ok();
                remove_any(&lock_path).ok();
            }
        }
    }

    /// Hold snapshot `id` (a shared lock on `snap-<id>.lock`) until this process exits, so
    /// that another gib's sync never removes a tree this one has bound into its builders.
    /// Called under the entry lock, as `remove_old` is, so the two never race.
    fn hold(&self, id: &str) -> Result<()> {
        static HELD: Mutex<Vec<fs::File>> = Mutex::new(Vec::new());
        let path = self.dir.join(format!("snap-{id}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.lock_shared()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        HELD.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(file);
        Ok(())
    }
}

/// A snapshot id when the tree has no time: the wall clock, only to be unique.
fn unique_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("t{}{:09}", now.as_secs(), now.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_depends_on_the_uri() {
        let a = short_hash(SyncType::Git, "https://a.example/r.git");
        let b = short_hash(SyncType::Git, "https://b.example/r.git");
        assert_ne!(a, b);
        assert_eq!(a.len(), 12);
    }

    #[test]
    fn names_cannot_escape_the_cache() {
        assert!(check_name("gentoo").is_ok());
        assert!(check_name("my_overlay-2").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn only_git_and_webrsync_take_a_pin() {
        let mut spec = RepoSpec {
            name: "gentoo".into(),
            sync_type: SyncType::Rsync,
            uri: None,
            pin: Some("2026-11-20".into()),
            ca_certificate: None,
            priority: None,
            trust: Trust::gentoo(),
        };
        let date = Pin::parse("2026-11-20").unwrap();
        assert!(check_pin_allowed(&spec, Some(&date)).is_err());
        spec.sync_type = SyncType::Webrsync;
        assert!(check_pin_allowed(&spec, Some(&date)).is_ok());
        let commit = Pin::parse("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert!(check_pin_allowed(&spec, Some(&commit)).is_err());
        spec.sync_type = SyncType::Git;
        assert!(check_pin_allowed(&spec, Some(&commit)).is_ok());
    }

    /// Publish a tree holding one file `f` with `id` in it, as snapshot `id`.
    fn commit_tree(store: &Store, id: &str) -> PathBuf {
        let scratch = store.scratch().unwrap();
        fs::write(scratch.join("f"), id).unwrap();
        let fetched = Fetched {
            tree: scratch.clone(),
            scratch,
            id: Some(id.into()),
            revision: None,
            fallback_time: None,
        };
        store.commit(fetched, None).unwrap().0
    }

    #[test]
    fn a_held_snapshot_is_not_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let store = Store::open(&cache, "r-2").unwrap();
        let mut paths = Vec::new();
        for id in ["x", "y", "z"] {
            paths.push(commit_tree(&store, id));
            if id == "x" {
                store.hold("x").unwrap();
            }
        }
        assert!(paths[0].exists(), "x is held by this process");
    }

    #[test]
    fn a_repository_is_synced_once_per_run() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(&tmp.path().join("cache"))).unwrap();
        let tree = tmp.path().join("overlay");
        fs::create_dir(&tree).unwrap();
        let spec = RepoSpec {
            name: "once".into(),
            sync_type: SyncType::Local,
            uri: Some(tree.display().to_string()),
            pin: None,
            ca_certificate: None,
            priority: Some(7),
            trust: Trust::gentoo(),
        };
        let printer = Printer::new(false);
        let first = sync(&spec, &cache, false, &printer).unwrap();
        assert_eq!(first.priority, Some(7));
        fs::remove_dir(&tree).unwrap();
        // The second call does not look again: the tree is gone, the answer is the same.
        assert_eq!(sync(&spec, &cache, false, &printer).unwrap(), first);
    }

    #[test]
    fn a_commit_makes_a_new_snapshot_and_keeps_the_previous_one() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(Some(tmp.path())).unwrap();
        let store = Store::open(&cache, "r-1").unwrap();
        let mut paths = Vec::new();
        for id in ["a", "b", "c"] {
            paths.push(commit_tree(&store, id));
        }
        assert!(!paths[0].exists());
        assert!(paths[1].exists());
        assert!(!store.dir.join("snap-a.json").exists());
        assert_eq!(fs::read_to_string(paths[2].join("f")).unwrap(), "c");
        assert_eq!(store.current().unwrap().0, paths[2]);
    }
}
