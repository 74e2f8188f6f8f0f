//! `gib.lock`: the inputs a build resolved, written beside gib.yaml so that the next build
//! uses exactly them: the stage3 file with its SHA-512 (and, for a flavor, the build and the
//! key that signed it), and the commit or snapshot of every synced repository.
//!
//! The lock is what builds use, by default: `gib build` writes it when it is missing (or when
//! gib.yaml asks for another input than the one it names: each entry records the gib.yaml
//! text it was resolved for, its `source`), and otherwise builds what it says, without asking
//! any server whether something newer exists. Only `gib update` moves it. `--locked` (for CI)
//! refuses to build when gib.yaml and the lock disagree, and never writes it.
//!
//! Per platform: the stage3 (and what depends on it: the official binhost's index, a main
//! repository that is the stage3's own tree) differs by architecture. The top-level entries
//! are those of the lock's own platform (gib.yaml's first `platforms:`, else the host's: a
//! file without `platforms:` has only these, in the format it always had); every other
//! architecture has a `platforms: {arm64: …}` entry holding what differs from them. Keyed by
//! Gentoo's architecture name, so the file reads the same on every runner.
//!
//! Not here: resolving an input (fetching, syncing: `build::inputs`), what an input is
//! (`stage3`, `repository`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::printer::{Hint, UserError};

/// The format of the file, written into it.
pub const VERSION: u32 = 1;

const HEADER: &str = "\
# gib.lock: the stage3 and ebuild repository snapshots gib.yaml resolved to.
# Written by gib; `gib update` moves it; `gib build --locked` refuses to build without it.
# Commit it beside gib.yaml. Do not edit it by hand.
";

/// The whole lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The format of the file ([`VERSION`]).
    pub version: u32,
    /// The gib that wrote it.
    pub gib: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage3: Option<LockedStage3>,
    /// The main repository first, then the overlays in gib.yaml's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<LockedRepository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binhost: Option<LockedBinhost>,
    /// The other architectures' entries, each only what differs from the top-level ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<LockArch, LockedPlatform>,
}

/// A key of `platforms:`: an architecture gib builds for, by Gentoo's name (`arm64`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct LockArch(String);

impl LockArch {
    /// The key of `platform`; `None` for a platform gib has no stage3 for.
    pub fn of(platform: &crate::oci::spec::Platform) -> Option<LockArch> {
        crate::stage3::arch::of(platform).map(|a| LockArch(a.gentoo.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for LockArch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        let known: Vec<&str> = crate::stage3::arch::ARCHES
            .iter()
            .map(|a| a.gentoo)
            .collect();
        if !known.contains(&name.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "`platforms` names the architecture `{name}`, which gib does not build for (it knows {})",
                known.join(", ")
            )));
        }
        Ok(LockArch(name))
    }
}

/// One architecture's entries in `platforms:`: those that differ from the top-level ones
/// (an entry left out is the top-level one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlatform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage3: Option<LockedStage3>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<LockedRepository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binhost: Option<LockedBinhost>,
}

/// The binary package host's index (`Packages`) when the lock was written: which binary
/// packages emerge could take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBinhost {
    /// What gib.yaml's `binhost:` says (the official binhost: its URL), as text.
    pub source: String,
    /// sha256 of the `Packages` index, lowercase hex.
    pub index_sha256: String,
}

/// The stage3 a build uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedStage3 {
    /// What gib.yaml's `stage3:` says, as text: another text resolves the stage3 again.
    pub source: String,
    /// The tarball's file name.
    pub file: String,
    /// A flavor's build (its timestamp, e.g. `20261117T170000Z`): what is downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Lowercase hex.
    pub sha512: String,
    /// The fingerprint of the key whose signature was checked (a flavor's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// One ebuild repository's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedRepository {
    pub name: String,
    /// What gib.yaml says of it, as text: another text resolves it again.
    pub source: String,
    /// The git commit (full), for git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The snapshot's date, `YYYYMMDD` (UTC): what webrsync downloads, the tag rule's date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The snapshot's time, seconds since the epoch: the build's default SOURCE_DATE_EPOCH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
    /// The fingerprint of the key whose signature was checked (a webrsync snapshot's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

impl Lock {
    /// An empty lock written by this gib.
    pub fn new() -> Lock {
        Lock {
            version: VERSION,
            gib: env!("CARGO_PKG_VERSION").to_string(),
            stage3: None,
            repositories: Vec::new(),
            binhost: None,
            platforms: BTreeMap::new(),
        }
    }

    /// The entries of architecture `arch` (the top-level ones for `None`, or for the lock's
    /// own architecture): the top-level ones with its `platforms:` entry over them, as a lock
    /// of that platform alone.
    pub fn of_arch(&self, arch: Option<&LockArch>) -> Lock {
        let mut view = Lock {
            platforms: BTreeMap::new(),
            ..self.clone()
        };
        let Some(own) = arch.and_then(|a| self.platforms.get(a)) else {
            return view;
        };
        if own.stage3.is_some() {
            view.stage3 = own.stage3.clone();
        }
        if own.binhost.is_some() {
            view.binhost = own.binhost.clone();
        }
        for repo in &own.repositories {
            match view.repositories.iter_mut().find(|r| r.name == repo.name) {
                Some(top) => *top = repo.clone(),
                None => view.repositories.push(repo.clone()),
            }
        }
        view
    }

    /// Set architecture `arch`'s entries to those of `entries` (a lock of one platform),
    /// keeping every other architecture's: `own` is the lock's own architecture, whose
    /// entries are the top-level ones (`arch` `None` is it too).
    pub fn set_arch(&mut self, arch: Option<&LockArch>, entries: &Lock, own: Option<&LockArch>) {
        let top_level = |a: Option<&LockArch>| a.is_none() || a == own;
        // Every architecture's entries as they are now, before the top-level ones move.
        let mut views: BTreeMap<LockArch, Lock> = self
            .platforms
            .keys()
            .filter(|a| !top_level(Some(a)))
            .map(|a| (a.clone(), self.of_arch(Some(a))))
            .collect();
        // The own architecture apart: gib.yaml's first platform changed, and the top-level
        // entries are those of the one architecture without an entry of its own.
        if let Some(own) = own.filter(|o| self.platforms.contains_key(*o)) {
            let mut others = crate::stage3::arch::ARCHES
                .iter()
                .map(|a| LockArch(a.gentoo.to_string()))
                .filter(|a| a != own && !self.platforms.contains_key(a));
            if let (Some(former), None) = (others.next(), others.next()) {
                views.insert(former, self.of_arch(None));
            }
        }
        let mut top = self.of_arch(own);
        match arch {
            Some(a) if !top_level(Some(a)) => {
                views.insert(a.clone(), entries.clone());
            }
            _ => top = entries.clone(),
        }
        self.stage3 = top.stage3.clone();
        self.repositories = top.repositories.clone();
        self.binhost = top.binhost.clone();
        self.platforms = views
            .into_iter()
            .map(|(a, view)| (a, view.differences_from(&top)))
            .filter(|(_, p)| *p != LockedPlatform::default())
            .collect();
    }

    /// This lock's entries that are not `top`'s, as a `platforms:` entry.
    fn differences_from(&self, top: &Lock) -> LockedPlatform {
        LockedPlatform {
            stage3: self
                .stage3
                .clone()
                .filter(|s| top.stage3.as_ref() != Some(s)),
            repositories: self
                .repositories
                .iter()
                .filter(|r| top.repository(&r.name) != Some(*r))
                .cloned()
                .collect(),
            binhost: self
                .binhost
                .clone()
                .filter(|b| top.binhost.as_ref() != Some(b)),
        }
    }

    /// Write architecture `arch`'s entries into the lock at `path` as it is now (another run,
    /// or another platform's leg of this one, may have written it since it was read), keeping
    /// every other architecture's.
    pub fn save_arch(
        path: &Path,
        arch: Option<&LockArch>,
        entries: &Lock,
        own: Option<&LockArch>,
    ) -> Result<()> {
        let mut lock = Lock::read(path)?.unwrap_or_default();
        lock.set_arch(arch, entries, own);
        lock.write(path)
    }

    /// The lock of the configuration file `config_file`: `gib.lock` for `gib.yaml` (the
    /// file's stem with `.lock`), in the same directory.
    pub fn path_for(config_file: &Path) -> PathBuf {
        let stem = config_file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "gib".to_string());
        config_file.with_file_name(format!("{stem}.lock"))
    }

    /// Read the lock at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lock>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
        };
        let redo = format!(
            "remove {} and run `gib update` to write it again",
            path.display()
        );
        // No source snippet: the error stays one line (it names the line and column).
        let options = serde_saphyr::options! {
            with_snippet: false,
        };
        let lock: Lock = serde_saphyr::from_str_with_options(&text, options).map_err(|err| {
            UserError::new(format!(
                "{}: {}",
                path.display(),
                one_line(&err.to_string())
            ))
            .hint(redo.clone())
        })?;
        if lock.version != VERSION {
            return Err(UserError::new(format!(
                "{}: lock format {} is not the one this gib reads ({VERSION})",
                path.display(),
                lock.version
            ))
            .hint(redo));
        }
        Ok(Some(lock))
    }

    /// The text of the file: the header, then the entries in a stable order.
    pub fn to_text(&self) -> Result<String> {
        let body = serde_saphyr::to_string(self).context("cannot write the lock as YAML")?;
        Ok(format!("{HEADER}{body}"))
    }

    /// Write the lock to `path`, atomically (beside it, then renamed), with the mode the
    /// umask gives a new file (a temp file's would be 0600).
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = self.to_text()?;
        let temp = path.with_file_name(format!(
            ".{}.{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, text.as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, path));
        if let Err(err) = written {
            std::fs::remove_file(&temp).ok();
            return Err(err).with_context(|| format!("cannot write {}", path.display()));
        }
        Ok(())
    }

    /// The entry of repository `name`.
    pub fn repository(&self, name: &str) -> Option<&LockedRepository> {
        self.repositories.iter().find(|r| r.name == name)
    }

    /// Set (or add) the entry of repository `entry.name`, keeping the order `names` gives.
    pub fn set_repository(&mut self, entry: LockedRepository, names: &[String]) {
        self.repositories.retain(|r| r.name != entry.name);
        self.repositories.push(entry);
        let rank = |name: &str| names.iter().position(|n| n == name).unwrap_or(usize::MAX);
        self.repositories.sort_by_key(|r| rank(&r.name));
    }

    /// What changed from `old` to `self`, one line per input (`stage3: a → b`).
    pub fn changes_from(&self, old: Option<&Lock>) -> Vec<String> {
        let mut changes = Vec::new();
        let old_stage3 = old.and_then(|l| l.stage3.as_ref());
        if old_stage3 != self.stage3.as_ref() {
            changes.push(format!(
                "stage3: {} → {}",
                old_stage3.map_or("(none)".to_string(), LockedStage3::short),
                self.stage3
                    .as_ref()
                    .map_or("(none)".to_string(), LockedStage3::short)
            ));
        }
        for repo in &self.repositories {
            let before = old.and_then(|l| l.repository(&repo.name));
            if before != Some(repo) {
                changes.push(format!(
                    "repository {}: {} → {}",
                    repo.name,
                    before.map_or("(none)".to_string(), LockedRepository::short),
                    repo.short()
                ));
            }
        }
        let old_binhost = old.and_then(|l| l.binhost.as_ref());
        if old_binhost != self.binhost.as_ref() {
            let short = |b: Option<&LockedBinhost>| {
                b.map_or("(none)".to_string(), |b| {
                    format!(
                        "index sha256 {}…",
                        &b.index_sha256[..b.index_sha256.len().min(12)]
                    )
                })
            };
            changes.push(format!(
                "binhost: {} → {}",
                short(old_binhost),
                short(self.binhost.as_ref())
            ));
        }
        for gone in old.map(|l| l.repositories.as_slice()).unwrap_or_default() {
            if self.repository(&gone.name).is_none() {
                changes.push(format!(
                    "repository {}: {} → (none)",
                    gone.name,
                    gone.short()
                ));
            }
        }
        changes
    }
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl LockedStage3 {
    /// `file (sha512 1234abcd…)`.
    pub fn short(&self) -> String {
        format!(
            "{} (sha512 {}…)",
            self.file,
            &self.sha512[..self.sha512.len().min(12)]
        )
    }
}

impl LockedRepository {
    /// `commit abc123…, 20261120` or `snapshot 20261120`.
    pub fn short(&self) -> String {
        let mut parts = Vec::new();
        if let Some(revision) = &self.revision {
            parts.push(format!("commit {}", &revision[..revision.len().min(12)]));
        }
        if let Some(snapshot) = &self.snapshot {
            parts.push(format!("snapshot {snapshot}"));
        }
        if parts.is_empty() {
            parts.push("(no snapshot)".to_string());
        }
        parts.join(", ")
    }
}

/// An error message of the YAML reader on one line, without its advice to the programmer.
fn one_line(text: &str) -> String {
    text.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            stage3: Some(LockedStage3 {
                source: "flavor amd64-openrc".into(),
                file: "stage3-amd64-openrc-20261117T170000Z.tar.xz".into(),
                build: Some("20261117T170000Z".into()),
                sha512: "ab".repeat(64),
                signed_by: Some("13EBBDBEDE7A12775DFDB1BABB572E0E2D182910".into()),
            }),
            repositories: vec![
                LockedRepository {
                    name: "gentoo".into(),
                    source: "git https://example.org/gentoo.git".into(),
                    revision: Some("1".repeat(40)),
                    snapshot: Some("20261120".into()),
                    time: Some(1_763_600_000),
                    signed_by: None,
                },
                LockedRepository {
                    name: "mine".into(),
                    source: "webrsync https://example.org".into(),
                    revision: None,
                    snapshot: Some("20261119".into()),
                    time: None,
                    signed_by: Some("DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D".into()),
                },
            ],
            ..Lock::new()
        }
    }

    #[test]
    fn a_lock_reads_back_as_written_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = Lock::path_for(&dir.path().join("gib.yaml"));
        assert_eq!(path, dir.path().join("gib.lock"));
        assert_eq!(Lock::read(&path).unwrap(), None);
        sample().write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# gib.lock:"), "{text}");
        assert_eq!(Lock::read(&path).unwrap(), Some(sample()));
        // Stable: writing the same lock again gives the same bytes.
        sample().write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_broken_or_foreign_lock_is_a_clear_user_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gib.lock");
        for (text, expected) in [
            ("version: 1\ngib: x\nstage3: [\n", "gib.lock:"),
            ("version: 1\ngib: x\nsurprise: 1\n", "surprise"),
            ("version: 9\ngib: x\n", "lock format 9"),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = Lock::read(&path).unwrap_err();
            assert!(crate::printer::user_error(&err).is_some(), "{err:#}");
            assert!(format!("{err:#}").contains(expected), "{err:#}");
            assert!(!format!("{err}").contains('\n'), "one line: {err}");
            assert_eq!(crate::printer::hints(&err).len(), 1);
        }
    }

    #[test]
    fn changes_name_each_moved_input() {
        let old = sample();
        let mut new = sample();
        new.repositories[0].revision = Some("2".repeat(40));
        new.repositories.pop();
        assert_eq!(
            new.changes_from(Some(&old)),
            [
                "repository gentoo: commit 111111111111, snapshot 20261120 → commit 222222222222, snapshot 20261120",
                "repository mine: snapshot 20261119 → (none)",
            ]
        );
        assert!(sample().changes_from(Some(&old)).is_empty());
        assert_eq!(sample().changes_from(None).len(), 3);
    }

    #[test]
    fn repositories_keep_gib_yaml_order() {
        let mut lock = sample();
        let names = ["gentoo".to_string(), "a".to_string(), "mine".to_string()];
        lock.set_repository(
            LockedRepository {
                name: "a".into(),
                source: "git x".into(),
                revision: None,
                snapshot: None,
                time: None,
                signed_by: None,
            },
            &names,
        );
        let order: Vec<&str> = lock.repositories.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(order, ["gentoo", "a", "mine"]);
    }

    fn arch(name: &str) -> LockArch {
        LockArch(name.to_string())
    }

    /// The entries of an arm64 leg of `sample()`: its own stage3, the main repository the
    /// same, the overlay another snapshot.
    fn arm64_entries() -> Lock {
        let mut lock = sample();
        lock.stage3 = Some(LockedStage3 {
            source: "flavor arm64-openrc".into(),
            file: "stage3-arm64-openrc-20261117T170000Z.tar.xz".into(),
            build: Some("20261117T170000Z".into()),
            sha512: "cd".repeat(64),
            signed_by: None,
        });
        lock.repositories[1].snapshot = Some("20261121".into());
        lock.binhost = Some(LockedBinhost {
            source: "official https://example.org/arm64".into(),
            index_sha256: "ef".repeat(32),
        });
        lock
    }

    #[test]
    fn a_lock_of_one_platform_keeps_the_format_it_always_had() {
        // What gib wrote before locks had platforms, byte for byte.
        let expected = "\
# gib.lock: the stage3 and ebuild repository snapshots gib.yaml resolved to.
# Written by gib; `gib update` moves it; `gib build --locked` refuses to build without it.
# Commit it beside gib.yaml. Do not edit it by hand.
version: 1
gib: \"9.9.9\"
stage3:
  source: path stage3.tar.xz
  file: stage3.tar.xz
  sha512: abab
repositories:
- name: gentoo
  source: none
  snapshot: \"20261120\"
  time: 1763600000
";
        let mut lock = Lock {
            gib: "9.9.9".into(),
            ..Lock::new()
        };
        let entries = Lock {
            stage3: Some(LockedStage3 {
                source: "path stage3.tar.xz".into(),
                file: "stage3.tar.xz".into(),
                build: None,
                sha512: "abab".into(),
                signed_by: None,
            }),
            repositories: vec![LockedRepository {
                name: "gentoo".into(),
                source: "none".into(),
                revision: None,
                snapshot: Some("20261120".into()),
                time: Some(1_763_600_000),
                signed_by: None,
            }],
            ..Lock::new()
        };
        // The lock's own platform, named or not, is the top level.
        lock.set_arch(Some(&arch("amd64")), &entries, Some(&arch("amd64")));
        assert_eq!(lock.to_text().unwrap(), expected);
        lock.set_arch(None, &entries, Some(&arch("arm64")));
        assert_eq!(lock.to_text().unwrap(), expected);
        assert_eq!(serde_saphyr::from_str::<Lock>(expected).unwrap(), lock);
    }

    #[test]
    fn each_architecture_keeps_its_entries_whichever_leg_came_first() {
        let amd64 = sample();
        let arm64 = arm64_entries();
        let own = Some(arch("amd64"));
        let mut arm_first = Lock::new();
        arm_first.set_arch(Some(&arch("arm64")), &arm64, own.as_ref());
        // Before the own platform's leg: the arm64 entries stand alone.
        assert_eq!(arm_first.stage3, None);
        assert_eq!(arm_first.of_arch(Some(&arch("arm64"))), arm64);
        arm_first.set_arch(Some(&arch("amd64")), &amd64, own.as_ref());
        let mut amd_first = Lock::new();
        amd_first.set_arch(Some(&arch("amd64")), &amd64, own.as_ref());
        amd_first.set_arch(Some(&arch("arm64")), &arm64, own.as_ref());
        assert_eq!(arm_first.to_text().unwrap(), amd_first.to_text().unwrap());
        let lock = amd_first;
        assert_eq!(lock.of_arch(None), amd64);
        assert_eq!(lock.of_arch(Some(&arch("amd64"))), amd64);
        assert_eq!(lock.of_arch(Some(&arch("arm64"))), arm64);
        // The arm64 entry holds only what differs: not the shared main repository.
        let apart = &lock.platforms[&arch("arm64")];
        assert_eq!(apart.stage3, arm64.stage3);
        assert_eq!(apart.binhost, arm64.binhost);
        let names: Vec<&str> = apart.repositories.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["mine"]);
        let text = lock.to_text().unwrap();
        assert!(
            text.contains("platforms:\n  arm64:\n    stage3:\n"),
            "{text}"
        );
        assert_eq!(
            serde_saphyr::from_str::<Lock>(&text[HEADER.len()..]).unwrap(),
            lock
        );

        // Moving the own platform's entries keeps arm64's as they were.
        let mut moved = sample();
        moved.repositories[0].revision = Some("3".repeat(40));
        let mut lock = lock;
        lock.set_arch(own.as_ref(), &moved, own.as_ref());
        assert_eq!(lock.of_arch(None), moved);
        assert_eq!(lock.of_arch(Some(&arch("arm64"))), arm64);
    }

    #[test]
    fn saving_a_platform_merges_into_the_lock_as_it_is_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gib.lock");
        let own = Some(arch("amd64"));
        // Two legs of one run: each read the file before the other wrote it.
        Lock::save_arch(&path, Some(&arch("arm64")), &arm64_entries(), own.as_ref()).unwrap();
        Lock::save_arch(&path, Some(&arch("amd64")), &sample(), own.as_ref()).unwrap();
        let lock = Lock::read(&path).unwrap().unwrap();
        assert_eq!(lock.of_arch(Some(&arch("arm64"))), arm64_entries());
        assert_eq!(lock.of_arch(Some(&arch("amd64"))), sample());
    }

    #[test]
    fn a_hostile_platforms_entry_is_a_clear_error_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gib.lock");
        let stage3 = "stage3: {source: s, file: f, sha512: ab}";
        for (text, expected) in [
            (
                format!("version: 1\ngib: x\nplatforms:\n  riscv:\n    {stage3}\n"),
                "architecture `riscv`",
            ),
            (
                format!(
                    "version: 1\ngib: x\nplatforms:\n  arm64:\n    {stage3}\n  arm64:\n    {stage3}\n"
                ),
                "duplicate mapping key: arm64 at line 6",
            ),
            (
                "version: 1\ngib: x\nplatforms: [arm64]\n".to_string(),
                "gib.lock:",
            ),
            (
                "version: 1\ngib: x\nplatforms:\n  arm64: 3\n".to_string(),
                "gib.lock:",
            ),
            (
                "version: 1\ngib: x\nplatforms:\n  arm64:\n    stage4: 1\n".to_string(),
                "stage4",
            ),
        ] {
            std::fs::write(&path, &text).unwrap();
            let err = Lock::read(&path).unwrap_err();
            let shown = format!("{err:#}");
            assert!(crate::printer::user_error(&err).is_some(), "{shown}");
            assert!(shown.contains(expected), "{text}: {shown}");
            assert!(shown.contains(&path.display().to_string()), "{shown}");
            assert!(shown.contains("line"), "no line: {shown}");
            assert!(!format!("{err}").contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn another_first_platform_keeps_every_architectures_entries() {
        // Written with arm64 first; gib.yaml now names amd64 first. (An entry a platform
        // lacks is the top-level one: each has a binhost here, as both do when gib.yaml
        // names one.)
        let amd64 = Lock {
            binhost: Some(LockedBinhost {
                source: "official https://example.org/amd64".into(),
                index_sha256: "01".repeat(32),
            }),
            ..sample()
        };
        let mut lock = Lock::new();
        lock.set_arch(Some(&arch("arm64")), &arm64_entries(), Some(&arch("arm64")));
        lock.set_arch(Some(&arch("amd64")), &amd64, Some(&arch("arm64")));
        assert_eq!(lock.stage3, arm64_entries().stage3);
        let own = Some(arch("amd64"));
        assert_eq!(lock.of_arch(own.as_ref()), amd64);
        let mut moved = amd64.clone();
        moved.repositories[0].revision = Some("3".repeat(40));
        lock.set_arch(own.as_ref(), &moved, own.as_ref());
        assert_eq!(lock.stage3, moved.stage3);
        assert_eq!(lock.of_arch(own.as_ref()), moved);
        assert_eq!(lock.of_arch(Some(&arch("arm64"))), arm64_entries());
    }
}
