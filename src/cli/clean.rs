//! `gib clean`: remove builder roots, binary packages, distfiles or the whole cache, and say
//! how much was freed.
//!
//! Trees a sandbox wrote hold files with subordinate ids, which only a user namespace can
//! remove: every removal goes through `sandbox::remove_tree`. An entry another gib is using
//! (its lock is held) is left alone and named; so are temp files without a lock of their own
//! while another gib runs (when none does, opening the cache swept them). Sizes are measured before removal by walking
//! the tree as the calling user; a directory it cannot read (a 0700 one owned by a
//! subordinate id, rootless) counts as empty, so the figure is a lower bound there. The
//! summary (`freed 1.2 GiB`) goes to stderr; for scripts, the bytes freed also go to stdout
//! as a plain number, unless stdout is a terminal, where a person reads the summary.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::CleanArgs;
use crate::cache::{Cache, EntryLock};
use crate::printer::{Printer, UserError, human_bytes};
use crate::sandbox::{remove_tree, retire_tree};

pub fn run(args: CleanArgs) -> Result<ExitCode> {
    let printer = Printer::new(false);
    // Opening the cache swept the temp files of killed runs, unless another gib is running.
    let cache = Cache::open(args.cache_dir.as_deref())?;
    cache.remove_leftovers()?;
    let kinds: Vec<String> = if args.all {
        top_level_kinds(&cache)?
    } else {
        let mut kinds = Vec::new();
        if args.builders {
            kinds.extend(
                crate::cache::KINDS
                    .iter()
                    .filter(|k| k.builder)
                    .map(|k| k.name.to_string()),
            );
        }
        if args.binpkgs {
            kinds.push("binpkgs".into());
        }
        if args.distfiles {
            kinds.push("distfiles".into());
        }
        kinds
    };
    if kinds.is_empty() {
        return Err(UserError::with_hint(
            "gib clean needs to know what to remove",
            "pass --builders, --binpkgs, --distfiles or --all",
        ));
    }

    let mut freed = 0u64;
    let mut busy = Vec::new();
    for kind in &kinds {
        let dir = cache.root().join(kind);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Held while a gib builds or reuses the entry; dropped after the removal.
            let claim = claim(&cache, kind, &name, &path)?;
            if let Claim::Busy = claim {
                busy.push(path);
                continue;
            }
            freed += disk_usage(&path);
            if name.starts_with('.') {
                remove_tree(&path)?;
            } else {
                // Out of sight first: a clean cut short leaves no entry that looks whole.
                retire_tree(&path)?;
            }
            drop(claim);
        }
    }
    for path in &busy {
        printer.warn(&format!(
            "{} is in use by another gib; kept",
            path.display()
        ));
    }
    printer.status(
        "Cleaned",
        &format!(
            "{} in {}: freed {}",
            kinds.join(", "),
            cache.root().display(),
            human_bytes(freed)
        ),
    );
    if !std::io::stdout().is_terminal() {
        println!("{freed}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Every directory of the cache but `locks/`, which running gibs hold open.
fn top_level_kinds(cache: &Cache) -> Result<Vec<String>> {
    let mut kinds = Vec::new();
    let entries = std::fs::read_dir(cache.root())
        .with_context(|| format!("cannot read {}", cache.root().display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", cache.root().display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != "locks" && entry.path().is_dir() {
            kinds.push(name);
        }
    }
    kinds.sort();
    Ok(kinds)
}

/// What keeps a running gib's entry from being removed under it: image entries, stage3,
/// rootfs and pulled trees have entry locks (held shared by every gib that uses them until
/// it ends), scratch dirs (`.tmp-*`) a lock file of their own.
enum Claim {
    /// Nothing guards the entry.
    Free,
    Entry(#[allow(dead_code)] EntryLock),
    Scratch(#[allow(dead_code)] std::fs::File),
    /// Another gib holds it (or a scratch dir is still being made).
    Busy,
}

fn claim(cache: &Cache, kind: &str, name: &str, path: &Path) -> Result<Claim> {
    if name.starts_with(".tmp-") {
        let lock_path = path.join("lock");
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(&lock_path) else {
            // Scratch dirs of whole entries have no lock file of their own: their entry's
            // lock is held while they exist. A stage3's is named after its digest.
            return Ok(match (kind, name.strip_prefix(".tmp-")) {
                ("stage3", Some(digest)) => match cache.try_lock("stage3", digest)? {
                    Some(lock) => Claim::Entry(lock),
                    None => Claim::Busy,
                },
                _ => Claim::Busy,
            });
        };
        return Ok(match file.try_lock() {
            Ok(()) => Claim::Scratch(file),
            Err(_) => Claim::Busy,
        });
    }
    let Some(lock_kind) = crate::cache::kind_named(kind).and_then(|k| k.entry_lock) else {
        return Ok(Claim::Free);
    };
    Ok(match cache.try_lock(lock_kind, name)? {
        Some(lock) => Claim::Entry(lock),
        None => Claim::Busy,
    })
}

/// Bytes a tree takes on disk (hard links counted once).
fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
    }
    total
}
