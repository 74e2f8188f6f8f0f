//! The inputs every packages image is built from — the stage3 and the ebuild repositories —
//! resolved once per run through gib.lock (`crate::lock`).
//!
//! An input gib.lock names for what gib.yaml says is taken as the lock says, with no network:
//! its identity (the stage3's SHA-512, a repository's commit or snapshot) goes into the input
//! keys at once, and the stage3 is fetched or the repository synced only when an image is
//! really built — at exactly that file or snapshot. An input the lock does not name (no lock
//! yet, or gib.yaml changed it) is resolved now and written into the lock, unless the run is
//! `--locked`; `gib update` resolves the inputs it names afresh. A `path:` stage3 is the
//! user's own file: its SHA-512 is read every run and the lock follows it (saying so).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result};

use super::BuildContext;
use crate::config::{Stage3, SyncType};
use crate::lock::{Lock, LockArch, LockedBinhost, LockedRepository, LockedStage3};
use crate::oci::spec::Platform;
use crate::printer::{Hint, UserError};
use crate::repository::{self, RepoSpec, SnapshotTime, SyncedRepo};
use crate::stage3::{self, Stage3Root};

/// How a run treats gib.lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LockMode {
    /// Use what it names; resolve and add what it lacks (the default).
    #[default]
    Follow,
    /// `--locked`: fail when gib.yaml asks for an input the lock does not name; never write.
    Locked,
    /// `gib update`: resolve these inputs afresh (the rest as `Follow`).
    Update(UpdateSelection),
}

/// What `gib update` moves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSelection {
    pub stage3: bool,
    /// Repositories by name; every repository when `all_repositories`.
    pub repositories: Vec<String>,
    pub all_repositories: bool,
    /// The binary package host's index.
    pub binhost: bool,
}

/// The lock of one run: its platform's entries as read, and as this run resolved them.
pub(super) struct RunLock {
    path: std::path::PathBuf,
    read: Option<Lock>,
    current: Mutex<Lock>,
    mode: LockMode,
    /// The stage3 entry this run settled on: resolved (a `path:` stage3 hashed) once.
    stage3: OnceLock<Option<LockedStage3>>,
    /// The architecture whose entries this run uses, and the lock's own (whose entries are
    /// the top-level ones).
    arch: Option<LockArch>,
    own: Option<LockArch>,
    /// The run's platform, named in errors when gib.lock keeps inputs per platform.
    platform: Option<Platform>,
    /// Whether gib.lock had entries of this platform's own (else what it read is the
    /// top-level entries, another platform's, and what this run locks is told as new).
    had_own: bool,
}

impl RunLock {
    /// The lock as this run has resolved it so far (image threads share it).
    fn current(&self) -> MutexGuard<'_, Lock> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock of `plan`'s file, as the entries of the platform `plan` builds.
    pub(super) fn open(plan: &crate::plan::Plan, mode: LockMode) -> Result<RunLock> {
        let path = Lock::path_for(&plan.file);
        let (arch, own) = lock_arches(plan);
        let file = Lock::read(&path)?;
        let had_own = file.as_ref().is_some_and(|l| {
            arch == own || arch.as_ref().is_none_or(|a| l.platforms.contains_key(a))
        });
        let read = file.map(|l| l.of_arch(arch.as_ref()));
        let current = Mutex::new(read.clone().unwrap_or_default());
        let platform = (plan.lock_platform.is_some() || arch != own).then(|| plan.platform());
        Ok(RunLock {
            path,
            read,
            current,
            mode,
            stage3: Default::default(),
            arch,
            own,
            platform,
            had_own,
        })
    }

    /// ` for linux/arm64` when gib.lock keeps inputs per platform, else nothing.
    fn for_platform(&self) -> String {
        self.platform
            .as_ref()
            .map(|p| format!(" for {p}"))
            .unwrap_or_default()
    }
}

/// The architecture whose gib.lock entries `plan` builds with, and the lock's own one (gib.yaml's
/// first `platforms:`, else the host's).
fn lock_arches(plan: &crate::plan::Plan) -> (Option<LockArch>, Option<LockArch>) {
    let own = plan.lock_platform.clone().unwrap_or_else(Platform::host);
    (LockArch::of(&plan.platform()), LockArch::of(&own))
}

/// What the inputs resolved to, for input keys and the tag rule.
#[derive(Debug, Clone)]
pub(super) struct ResolvedInputs {
    /// One line per input: the stage3's SHA-512, each repository's snapshot.
    pub identity: String,
    /// The same inputs as entries: the stage3, every repository (a `local` one as it is
    /// now), the binhost's index; what an image's provenance names.
    pub entries: Lock,
}

impl BuildContext<'_> {
    /// The repositories synced so far, by name.
    fn synced(&self) -> MutexGuard<'_, std::collections::BTreeMap<String, SyncedRepo>> {
        self.synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The stage3 and the repositories, prepared once per run: images built side by side
    /// wait for the first to prepare them rather than fetching and unpacking them twice.
    /// Something runs in the stage3 now, so it must be one this machine runs (reading its
    /// tree, as a join does, needs no such check).
    pub(super) fn sources(&self) -> Result<(&Stage3Root, &[SyncedRepo])> {
        if let (Some(stage3), Some(repos), Some(())) = (
            self.stage3.get(),
            self.repositories.get(),
            self.stage3_runs.get(),
        ) {
            return Ok((stage3, repos));
        }
        let _preparing = self
            .preparing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stage3 = self.stage3()?;
        if self.stage3_runs.get().is_none() {
            stage3::check_runs_here(stage3)?;
            let _ = self.stage3_runs.set(());
        }
        Ok((stage3, self.repositories()?))
    }

    /// The inputs, resolved through gib.lock (once per run); the lock is written when this
    /// run changed it.
    pub(super) fn inputs(&self) -> Result<&ResolvedInputs> {
        if let Some(inputs) = self.inputs.get() {
            return Ok(inputs);
        }
        // Images built side by side ask at once: one resolves, the others wait for it.
        let _resolving = self
            .resolving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(inputs) = self.inputs.get() {
            return Ok(inputs);
        }
        let mut identity = String::new();
        let mut entries = Lock::new();
        entries.stage3 = self.locked_stage3()?;
        if let Some(stage3) = &entries.stage3 {
            identity.push_str(&stage3.sha512);
        }
        for spec in self.repo_specs() {
            let line = match spec.sync_type {
                SyncType::Local => {
                    // The user's own tree: its identity is what it holds now.
                    let synced = repository::sync(&spec, self.cache, self.offline, self.printer)?;
                    entries.repositories.push(LockedRepository {
                        name: spec.name.clone(),
                        source: repository::describe(&spec),
                        revision: synced.revision.clone(),
                        snapshot: synced.snapshot.as_ref().map(|s| s.date.clone()),
                        time: synced.snapshot.as_ref().map(|s| s.epoch),
                        signed_by: None,
                    });
                    let line = format!("{} {:?} {:?}", spec.name, synced.revision, synced.snapshot);
                    self.synced().insert(spec.name.clone(), synced);
                    line
                }
                _ => match self.locked_repository(&spec)? {
                    Some(locked) => {
                        let line = format!(
                            "{} {:?} {:?}",
                            locked.name, locked.revision, locked.snapshot
                        );
                        entries.repositories.push(locked);
                        line
                    }
                    None => String::new(),
                },
            };
            identity.push('\n');
            identity.push_str(&line);
        }
        entries.binhost = self.locked_binhost()?;
        if let Some(binhost) = &entries.binhost {
            identity.push_str(&format!("\nbinhost {}", binhost.index_sha256));
        }
        self.save_lock()?;
        Ok(self
            .inputs
            .get_or_init(|| ResolvedInputs { identity, entries }))
    }

    /// Resolve every input now (`gib update`, and `gib build` before its first image).
    pub fn resolve_inputs(&self) -> Result<()> {
        self.inputs().map(|_| ())
    }

    /// Write gib.lock when this run changed it (never with `--locked`).
    fn save_lock(&self) -> Result<()> {
        if self.lock.mode == LockMode::Locked {
            return Ok(());
        }
        let lock = self.lock.current();
        if self.lock.read.as_ref() == Some(&*lock) {
            return Ok(());
        }
        let before = self.lock.read.as_ref().filter(|_| self.lock.had_own);
        let changes = lock.changes_from(before);
        let saved = Lock::save_arch(
            &self.lock.path,
            self.lock.arch.as_ref(),
            &lock,
            self.lock.own.as_ref(),
        );
        if let Err(err) = saved {
            if matches!(self.lock.mode, LockMode::Update(_)) {
                return Err(err);
            }
            // A build in a checkout it may not write to still builds, saying what it pinned.
            self.printer.warn(&format!(
                "{err:#}: the next build resolves the inputs again ({})",
                changes.join("; ")
            ));
            return Ok(());
        }
        let verb = if before.is_some() {
            "Updated"
        } else {
            "Locked"
        };
        let platform = self.lock.for_platform();
        for change in &changes {
            self.printer.status(
                verb,
                &format!("{change}{platform} ({})", self.lock.path.display()),
            );
        }
        Ok(())
    }

    /// Whether `gib update` resolves the stage3 afresh.
    fn refresh_stage3(&self) -> bool {
        matches!(&self.lock.mode, LockMode::Update(s) if s.stage3)
    }

    fn refresh_repository(&self, name: &str) -> bool {
        matches!(&self.lock.mode, LockMode::Update(s)
            if s.all_repositories || s.repositories.iter().any(|r| r == name))
    }

    /// The lock's stage3 entry for gib.yaml's `stage3:`, resolved (and recorded) when the
    /// lock has none for it, once per run; `None` when gib.yaml has no stage3.
    fn locked_stage3(&self) -> Result<Option<LockedStage3>> {
        if let Some(entry) = self.lock.stage3.get() {
            return Ok(entry.clone());
        }
        let entry = self.settle_stage3()?;
        Ok(self.lock.stage3.get_or_init(|| entry).clone())
    }

    fn settle_stage3(&self) -> Result<Option<LockedStage3>> {
        let Some(source) = self.plan.stage3.as_ref() else {
            return Ok(None);
        };
        let described = describe_stage3(source, &self.plan.file);
        let known = self
            .lock
            .current()
            .stage3
            .clone()
            .filter(|s| s.source == described);
        if let Stage3::Path { path, .. } = source {
            // The user's own file: what it is now is what the lock says.
            let sha512 = stage3::sha512_of_file(path)?;
            if let Some(known) = known.filter(|k| k.sha512 == sha512) {
                return Ok(Some(known));
            }
            self.refuse_when_locked("the stage3", &described)?;
            let entry = LockedStage3 {
                source: described,
                file: file_name(&path.display().to_string()),
                build: None,
                sha512,
                signed_by: None,
            };
            self.lock.current().stage3 = Some(entry.clone());
            return Ok(Some(entry));
        }
        if let Some(known) = known
            && !self.refresh_stage3()
        {
            return Ok(Some(known));
        }
        self.refuse_when_locked("the stage3", &described)?;
        let (root, entry) = self.resolve_stage3(source, described)?;
        self.stage3.get_or_init(|| root);
        self.lock.current().stage3 = Some(entry.clone());
        Ok(Some(entry))
    }

    /// Fetch gib.yaml's stage3 as it says (a flavor's newest build unless pinned) and
    /// unpack it; its lock entry.
    fn resolve_stage3(
        &self,
        source: &Stage3,
        described: String,
    ) -> Result<(Stage3Root, LockedStage3)> {
        match source {
            Stage3::Flavor {
                flavor,
                mirror,
                pin,
            } => {
                let (tarball, root) = self.fetch_flavor(flavor, mirror, pin.as_deref())?;
                Ok((
                    root,
                    LockedStage3 {
                        source: described,
                        file: tarball.name,
                        build: Some(tarball.timestamp),
                        sha512: tarball.sha512,
                        signed_by: Some(self.plan.trust.releng.fingerprint.clone()),
                    },
                ))
            }
            Stage3::Url { url, sha512 } => {
                let root = if self.refresh_stage3() {
                    stage3::prepare_url_afresh(url, sha512.as_deref(), self.cache, self.printer)?
                } else {
                    stage3::prepare(source, self.cache, self.printer)?
                };
                let entry = LockedStage3 {
                    source: described,
                    file: file_name(url),
                    build: None,
                    sha512: root.digest.clone(),
                    signed_by: None,
                };
                Ok((root, entry))
            }
            // Read, not resolved: see `settle_stage3`.
            Stage3::Path { .. } => anyhow::bail!("gib bug: a `path:` stage3 is not resolved"),
        }
    }

    /// Fetch and verify the flavor's build `build` (the newest when `None`) and unpack it.
    fn fetch_flavor(
        &self,
        flavor: &str,
        mirror: &str,
        build: Option<&str>,
    ) -> Result<(stage3::flavor::VerifiedTarball, Stage3Root)> {
        let tarball = stage3::flavor::fetch(
            flavor,
            mirror,
            build,
            self.cache,
            self.offline,
            &self.plan.trust,
            self.printer,
        )?;
        let verified = Stage3::Path {
            path: tarball.path.clone(),
            sha512: Some(tarball.sha512.clone()),
        };
        let root = stage3::prepare(&verified, self.cache, self.printer)?;
        Ok((tarball, root))
    }

    /// The unpacked stage3, prepared on first use (only images that emerge need it): the
    /// file gib.lock names.
    pub(super) fn stage3(&self) -> Result<&Stage3Root> {
        if let Some(root) = self.stage3.get() {
            return Ok(root);
        }
        let source = self.plan.stage3.as_ref().ok_or_else(|| {
            UserError::new(format!(
                "{}: images that emerge packages need a `stage3:`",
                self.plan.file.display()
            ))
        })?;
        let locked = self
            .locked_stage3()?
            .context("gib bug: gib.yaml has a stage3 but the lock names none")?;
        if let Some(root) = self.stage3.get() {
            return Ok(root);
        }
        let root = match source {
            Stage3::Flavor { flavor, mirror, .. } => {
                let (tarball, root) = self.fetch_flavor(flavor, mirror, locked.build.as_deref())?;
                if tarball.sha512 != locked.sha512 {
                    return Err(UserError::new(format!(
                        "the stage3 {} has sha512 {}, but gib.lock expects {}",
                        tarball.name, tarball.sha512, locked.sha512
                    ))
                    .hint("the mirror serves another file under that name; run `gib update --stage3` if it is meant"));
                }
                root
            }
            other => stage3::prepare_locked(other, &locked.sha512, self.cache, self.printer)?,
        };
        Ok(self.stage3.get_or_init(|| root))
    }

    /// The lock's binhost entry for gib.yaml's `binhost:`, its index fetched (and recorded)
    /// when the lock has none for it; `None` without a binhost.
    fn locked_binhost(&self) -> Result<Option<LockedBinhost>> {
        let Some((described, index)) = binhost_index(self.plan)? else {
            self.lock.current().binhost = None;
            return Ok(None);
        };
        let known = self
            .lock
            .current()
            .binhost
            .clone()
            .filter(|b| b.source == described);
        let refresh = matches!(&self.lock.mode, LockMode::Update(s) if s.binhost);
        if let Some(known) = known
            && !refresh
        {
            return Ok(Some(known));
        }
        self.refuse_when_locked("the binhost", &described)?;
        // A binhost that cannot be read is a cache miss (emerge compiles, and says so): the
        // lock then names none, and the next build tries again.
        let index_sha256 = match self.binhost_index_sha256(&index) {
            Ok(sha256) => sha256,
            Err(err) => {
                self.printer
                    .detail(&format!("the binhost is not locked: {err:#}"));
                self.lock.current().binhost = None;
                return Ok(None);
            }
        };
        let entry = LockedBinhost {
            source: described,
            index_sha256,
        };
        self.lock.current().binhost = Some(entry.clone());
        Ok(Some(entry))
    }

    /// sha256 of the binhost index at `index` (a URL, or a file of a directory binhost).
    fn binhost_index_sha256(&self, index: &str) -> Result<String> {
        use sha2::{Digest, Sha256};
        let bytes = match index.strip_prefix("file://") {
            Some(path) => std::fs::read(path)
                .with_context(|| format!("cannot read the binhost index {path}"))?,
            None => {
                if self.offline {
                    return Err(UserError::new(format!(
                        "--offline: the binhost index {index} is not in gib.lock"
                    ))
                    .hint("run once without --offline"));
                }
                let client = crate::download::Client::new(None)?;
                let limit = client.max_size();
                client
                    .get_small(index, limit)
                    .with_context(|| format!("cannot fetch the binhost index {index}"))?
            }
        };
        Ok(hex::encode(Sha256::digest(&bytes)))
    }

    /// Before an image is built on the binhost: say so when its index is no longer the one
    /// gib.lock names (emerge may then take binary packages the lock did not see).
    pub(super) fn check_binhost(&self) -> Result<()> {
        if self.binhost_checked.get().is_some() || self.offline {
            return Ok(());
        }
        self.binhost_checked.get_or_init(|| ());
        let (Some(locked), Some((_, index))) = (
            self.lock.current().binhost.clone(),
            binhost_index(self.plan)?,
        ) else {
            return Ok(());
        };
        match self.binhost_index_sha256(&index) {
            Ok(now) if now != locked.index_sha256 => self.printer.warn(&format!(
                "the binhost index {index} changed since gib.lock was written: emerge may take \
                 binary packages it did not list (`gib update --binhost` records the new index)"
            )),
            Ok(_) => {}
            Err(err) => self
                .printer
                .warn(&format!("cannot check the binhost index: {err:#}")),
        }
        Ok(())
    }

    /// The main repository and the overlays as gib.yaml says.
    fn repo_specs(&self) -> Vec<RepoSpec> {
        repo_specs(self.plan)
    }

    /// The lock's entry of the synced repository `spec` (git, rsync, webrsync) or of the main
    /// repository in the stage3 (`none`), resolved and recorded when it has none.
    fn locked_repository(&self, spec: &RepoSpec) -> Result<Option<LockedRepository>> {
        let stage3 = match spec.sync_type {
            SyncType::None => self.locked_stage3()?.map(|s| s.sha512),
            _ => None,
        };
        let described = describe_repository(spec, stage3.as_deref());
        let known = self
            .lock
            .current()
            .repository(&spec.name)
            .filter(|r| r.source == described)
            .cloned();
        if let Some(known) = known
            && !self.refresh_repository(&spec.name)
        {
            return Ok(Some(known));
        }
        self.refuse_when_locked(&format!("repository `{}`", spec.name), &described)?;
        let (revision, snapshot) = if spec.sync_type == SyncType::None {
            // The stage3's own tree: its time is the snapshot's.
            let root = self.stage3()?;
            let time = SnapshotTime::of_tree(&root.path.join("var/db/repos/gentoo"));
            (None, time)
        } else {
            let synced = repository::sync(spec, self.cache, self.offline, self.printer)?;
            let found = (synced.revision.clone(), synced.snapshot.clone());
            self.synced().insert(spec.name.clone(), synced);
            found
        };
        let entry = LockedRepository {
            name: spec.name.clone(),
            source: described,
            revision,
            snapshot: snapshot.as_ref().map(|s| s.date.clone()),
            time: snapshot.map(|s| s.epoch),
            signed_by: (spec.sync_type == SyncType::Webrsync)
                .then(|| spec.trust.snapshots.fingerprint.clone()),
        };
        let names: Vec<String> = self.repo_specs().into_iter().map(|s| s.name).collect();
        self.lock.current().set_repository(entry.clone(), &names);
        Ok(Some(entry))
    }

    /// The main ebuild repository and the overlays, synced once per run at the snapshots
    /// gib.lock names.
    pub(super) fn repositories(&self) -> Result<&[SyncedRepo]> {
        if let Some(repos) = self.repositories.get() {
            return Ok(repos);
        }
        self.inputs()?;
        self.check_binhost()?;
        let mut repos = Vec::new();
        for mut spec in self.repo_specs() {
            if let Some(done) = self.synced().get(&spec.name) {
                repos.push(done.clone());
                continue;
            }
            let locked = match spec.sync_type {
                SyncType::Git | SyncType::Rsync | SyncType::Webrsync => {
                    self.locked_repository(&spec)?
                }
                SyncType::Local | SyncType::None => None,
            };
            if let Some(locked) = &locked {
                match spec.sync_type {
                    SyncType::Git => spec.pin = locked.revision.clone(),
                    SyncType::Webrsync => spec.pin = locked.snapshot.clone(),
                    _ => {}
                }
            }
            let synced = repository::sync(&spec, self.cache, self.offline, self.printer)?;
            if let Some(locked) = &locked
                && locked.snapshot.is_some()
                && synced.snapshot.as_ref().map(|s| &s.date) != locked.snapshot.as_ref()
            {
                return Err(UserError::new(format!(
                    "repository `{}`: the snapshot synced now ({}) is not the one gib.lock names ({})",
                    spec.name,
                    synced.snapshot.as_ref().map_or("none", |s| s.date.as_str()),
                    locked.snapshot.as_deref().unwrap_or_default()
                ))
                .hint("an rsync mirror serves only its newest snapshot: run `gib update --repos` to build on it"));
            }
            repos.push(synced);
        }
        Ok(self.repositories.get_or_init(|| repos))
    }

    /// With `--locked`, an input the lock does not name for what gib.yaml says is an error.
    fn refuse_when_locked(&self, what: &str, described: &str) -> Result<()> {
        if self.lock.mode != LockMode::Locked {
            return Ok(());
        }
        let path = self.lock.path.display();
        let platform = self.lock.for_platform();
        let message = if self.lock.read.is_none() {
            format!("--locked: there is no {path}, so {what}{platform} ({described}) is not locked")
        } else {
            format!(
                "--locked: {path} does not name {what}{platform} as gib.yaml gives it ({described})"
            )
        };
        let hint = match &self.lock.platform {
            Some(p) => format!(
                "run `gib update --platform {p}` (or `gib build --platform {p}` without --locked) and commit gib.lock"
            ),
            None => {
                "run `gib update` (or a build without --locked) and commit gib.lock".to_string()
            }
        };
        Err(UserError::new(message).hint(hint))
    }

    /// The main repository's snapshot time: the lock's (or this run's sync's); `None` when
    /// neither says.
    pub(super) fn snapshot_time(&self) -> Option<SnapshotTime> {
        if let Some(repos) = self.repositories.get()
            && let Some(time) = repos
                .iter()
                .find(|r| r.name == repository::MAIN_REPO)
                .and_then(|r| r.snapshot.as_ref())
        {
            return Some(time.clone());
        }
        if let Some(time) = self
            .synced()
            .get(repository::MAIN_REPO)
            .and_then(|r| r.snapshot.clone())
        {
            return Some(time);
        }
        let lock = self.lock.current();
        let main = lock.repository(repository::MAIN_REPO)?;
        SnapshotTime::from_epoch(main.time?)
    }
}

/// A repository as one line for gib.lock. The main repository with `sync_type: none` is the
/// stage3's own tree: its entry holds only while the stage3 is the same file.
fn describe_repository(spec: &RepoSpec, stage3_sha512: Option<&str>) -> String {
    let described = repository::describe(spec);
    match (spec.sync_type, stage3_sha512) {
        (SyncType::None, Some(sha512)) => format!(
            "{described}: the tree of the stage3 with sha512 {}",
            &sha512[..sha512.len().min(16)]
        ),
        _ => described,
    }
}

/// gib.yaml's binhost as one line for gib.lock, and where its `Packages` index is (a URL, or
/// `file://` for a directory); `None` without a binhost.
fn binhost_index(plan: &crate::plan::Plan) -> Result<Option<(String, String)>> {
    binhost_index_on(plan, plan.stage3.as_ref())
}

/// [`binhost_index`] of a build in `stage3`: the official binhost is its architecture's.
fn binhost_index_on(
    plan: &crate::plan::Plan,
    stage3: Option<&Stage3>,
) -> Result<Option<(String, String)>> {
    use crate::config::Binhost;
    let index = |base: &str| format!("{}/Packages", base.trim_end_matches('/'));
    Ok(match &plan.binhost {
        Binhost::None => None,
        Binhost::Official => {
            let (mirror, flavor) = crate::plan::official_flavor(stage3, &plan.platform());
            let repo = crate::gentoo::portage_conf::official_binrepo(mirror, flavor)?;
            Some((format!("official {}", repo.uri), index(&repo.uri)))
        }
        Binhost::Url { uri, .. } => Some((format!("url {uri}"), index(uri))),
        Binhost::Directory { path, .. } => Some((
            format!("directory {}", beside_config(path, &plan.file)),
            format!("file://{}", index(&path.display().to_string())),
        )),
    })
}

/// gib.lock as `gib plan` shows it: where it is, what it says, and which of its entries
/// gib.yaml no longer asks for (the next build resolves them again).
#[derive(Debug, serde::Serialize)]
pub struct LockStatus {
    pub path: std::path::PathBuf,
    pub lock: Option<Lock>,
    /// `stage3` and repository names whose entry is missing or was made for other gib.yaml
    /// text (for the platform this run builds).
    pub unlocked: Vec<String>,
    /// The same for each platform an image is built for (`linux/arm64` -> its unlocked
    /// inputs; empty: locked).
    pub unlocked_by_platform: std::collections::BTreeMap<String, Vec<String>>,
}

/// The lock of `plan`'s file and how it stands against gib.yaml.
pub fn lock_status(plan: &crate::plan::Plan) -> Result<LockStatus> {
    let path = Lock::path_for(&plan.file);
    let lock = Lock::read(&path)?;
    let (arch, _) = lock_arches(plan);
    let unlocked = unlocked_inputs(plan, plan.stage3.as_ref(), lock.as_ref(), arch.as_ref())?;
    let mut unlocked_by_platform = std::collections::BTreeMap::new();
    for (platform, stage3) in &plan.stage3_by_platform {
        let arch = LockArch::of(platform);
        let inputs = unlocked_inputs(plan, Some(stage3), lock.as_ref(), arch.as_ref())?;
        unlocked_by_platform.insert(platform.to_string(), inputs);
    }
    Ok(LockStatus {
        path,
        lock,
        unlocked,
        unlocked_by_platform,
    })
}

/// The inputs of a build in `stage3` that `lock`'s entries of architecture `arch` do not pin.
fn unlocked_inputs(
    plan: &crate::plan::Plan,
    stage3: Option<&Stage3>,
    lock: Option<&Lock>,
    arch: Option<&LockArch>,
) -> Result<Vec<String>> {
    let view = lock.map(|l| l.of_arch(arch));
    let lock = view.as_ref();
    let mut unlocked = Vec::new();
    // The stage3 entry for what gib.yaml says: a main repository that is its tree is locked
    // only with it.
    let locked_stage3 = stage3.and_then(|source| {
        let described = describe_stage3(source, &plan.file);
        lock.and_then(|l| l.stage3.as_ref())
            .filter(|s| s.source == described)
    });
    if stage3.is_some() && locked_stage3.is_none() {
        unlocked.push("stage3".to_string());
    }
    for spec in repo_specs(plan) {
        if matches!(spec.sync_type, SyncType::Local) {
            continue;
        }
        let described = describe_repository(&spec, locked_stage3.map(|s| s.sha512.as_str()));
        let locked = lock.and_then(|l| l.repository(&spec.name));
        if locked.map(|r| &r.source) != Some(&described) {
            unlocked.push(spec.name.clone());
        }
    }
    if let Some((described, _)) = binhost_index_on(plan, stage3)?
        && lock.and_then(|l| l.binhost.as_ref()).map(|b| &b.source) != Some(&described)
    {
        unlocked.push("binhost".to_string());
    }
    Ok(unlocked)
}

/// gib.yaml's `stage3:` as one line for gib.lock; a `path:` relative to gib.yaml's directory
/// when it is inside it, so that the lock reads the same in every checkout.
fn describe_stage3(source: &Stage3, config_file: &Path) -> String {
    match source {
        Stage3::Flavor {
            flavor,
            mirror,
            pin,
        } => {
            let mut text = format!("flavor {flavor} from {mirror}");
            if let Some(pin) = pin {
                text.push_str(&format!(" pin {pin}"));
            }
            text
        }
        Stage3::Url { url, sha512 } => match sha512 {
            Some(sha512) => format!("url {url} sha512 {sha512}"),
            None => format!("url {url}"),
        },
        Stage3::Path { path, .. } => format!("path {}", beside_config(path, config_file)),
    }
}

/// The main repository and the overlays of `plan`, as gib.yaml says.
fn repo_specs(plan: &crate::plan::Plan) -> Vec<RepoSpec> {
    let trust = &plan.trust;
    std::iter::once(RepoSpec::main(&plan.portage, trust))
        .chain(
            plan.repositories
                .iter()
                .map(|r| RepoSpec::overlay(r, trust)),
        )
        .collect()
}

/// `path` for gib.lock: relative to gib.yaml's directory when it is inside it, so that the
/// lock reads the same in every checkout.
fn beside_config(path: &Path, config_file: &Path) -> String {
    let base = config_file.parent().unwrap_or(Path::new("/"));
    path.strip_prefix(base)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The last segment of a path or URL.
fn file_name(text: &str) -> String {
    text.rsplit('/').next().unwrap_or(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage3_sources_read_the_same_in_every_checkout() {
        let file = Path::new("/home/me/project/gib.yaml");
        let inside = Stage3::Path {
            path: "/home/me/project/stage3/s.tar.xz".into(),
            sha512: None,
        };
        assert_eq!(describe_stage3(&inside, file), "path stage3/s.tar.xz");
        let outside = Stage3::Path {
            path: "/srv/s.tar.xz".into(),
            sha512: None,
        };
        assert_eq!(describe_stage3(&outside, file), "path /srv/s.tar.xz");
        let flavor = Stage3::Flavor {
            flavor: "amd64-openrc".into(),
            mirror: "https://mirror.example".into(),
            pin: Some("20261117T170000Z".into()),
        };
        assert_eq!(
            describe_stage3(&flavor, file),
            "flavor amd64-openrc from https://mirror.example pin 20261117T170000Z"
        );
        assert_eq!(file_name("https://x/y/stage3-a.tar.xz"), "stage3-a.tar.xz");
    }

    /// The legs of one run (one context per platform, as a multi-platform run makes them,
    /// both opened before either resolves): each writes its platform's entries into gib.lock
    /// as it is then, so neither loses the other's, and each then passes `--locked`.
    #[test]
    fn legs_of_one_run_keep_each_others_entries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("amd64.tar"), "amd64").unwrap();
        std::fs::write(dir.path().join("arm64.tar"), "arm64").unwrap();
        std::fs::create_dir_all(dir.path().join("repo/profiles")).unwrap();
        std::fs::write(dir.path().join("repo/profiles/repo_name"), "gentoo\n").unwrap();
        let file = dir.path().join("gib.yaml");
        std::fs::write(
            &file,
            "stage3:\n  path: {amd64: amd64.tar, arm64: arm64.tar}\nportage:\n  sync_type: local\n  \
             uri: repo\nplatforms: [linux/amd64, linux/arm64]\nimages:\n  base:\n    packages: sys-libs/glibc\n",
        )
        .unwrap();
        let config = crate::config::load(&file).unwrap();
        let plans: Vec<crate::plan::Plan> = ["linux/arm64", "linux/amd64"]
            .into_iter()
            .map(|platform| {
                let mut leg = config.clone();
                leg.keep_only_platform(platform).unwrap();
                crate::plan::Plan::resolve(&leg, &[]).unwrap()
            })
            .collect();
        let cache = crate::cache::Cache::open(Some(&dir.path().join("cache"))).unwrap();
        let store = crate::oci::blob::BlobStore::open(&cache.dir("blobs").unwrap()).unwrap();
        let printer = crate::printer::Printer::new(false);
        let context = |plan, lock| {
            let options = crate::build::BuildOptions {
                lock,
                ..Default::default()
            };
            BuildContext::new(plan, &cache, &store, &printer, options).unwrap()
        };
        let legs: Vec<BuildContext<'_>> = plans
            .iter()
            .map(|plan| context(plan, LockMode::Follow))
            .collect();
        for leg in &legs {
            leg.resolve_inputs().unwrap();
        }
        let lock = Lock::read(&dir.path().join("gib.lock")).unwrap().unwrap();
        assert_eq!(lock.stage3.as_ref().unwrap().file, "amd64.tar");
        let arm64: Vec<&str> = lock.platforms.keys().map(LockArch::as_str).collect();
        assert_eq!(arm64, ["arm64"]);
        let apart = lock.platforms.values().next().unwrap();
        assert_eq!(apart.stage3.as_ref().unwrap().file, "arm64.tar");
        for plan in &plans {
            context(plan, LockMode::Locked).resolve_inputs().unwrap();
        }
    }
}
