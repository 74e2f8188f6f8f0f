//! The lint of a finished image: does what it ships run? Looks at the merged view of the
//! image's layer trees (its own and its parents') for ELF files whose program interpreter or
//! `DT_NEEDED` libraries no file of the image provides, symlinks that lead nowhere, scripts
//! whose `#!` interpreter is missing, files of no package, world-writable files and
//! setuid/setgid files.
//!
//! Runs as the `lint_layers` job (gib's user namespace: a rootless build's trees hold
//! directories only the image's users may read). Every read is bounded and every link is
//! followed inside the image only; a file that cannot be read is a finding, never an abort.
//!
//! Not for: deciding whether a finding fails the build (`build`), the package database
//! (`gentoo::vdb`: the caller hands over the paths the packages own).

pub mod elf;
mod libpath;
pub mod merged;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use elf::Abi;
use merged::{Lookup, MergedTree, Visible, read_prefix};

/// ELF files bigger than this are not read (and said so).
pub const MAX_ELF_BYTES: u64 = 512 * 1024 * 1024;
/// Bytes of a script read for its `#!` line (the kernel reads 256).
const SHEBANG_BYTES: u64 = 256;
/// Where a container runtime mounts its own filesystems: links into them (`/etc/mtab`) are
/// not dangling.
const RUNTIME_DIRS: [&str; 3] = ["proc", "sys", "dev"];
/// Files every Gentoo image has and no package lists, because the build writes them: Portage's
/// env-update (from /etc/env.d), and finish-root.sh and `accounts:` (the base accounts,
/// os-release). Not worth a warning in every image.
const WRITTEN_BY_THE_BUILD: [&str; 11] = [
    "etc/ld.so.cache",
    "etc/ld.so.conf",
    "etc/profile.env",
    "etc/csh.env",
    "etc/environment.d/10-gentoo-env.conf",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "etc/os-release",
    "usr/lib/os-release",
];
/// Where `#!/usr/bin/env NAME` looks for NAME: the PATH a container gets when its image sets
/// none.
const DEFAULT_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// What the lint found in one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Sorted by kind, then path.
    pub findings: Vec<Finding>,
    pub checked: Checked,
    /// Findings left out by the image's `lint.ignore`.
    #[serde(default)]
    pub ignored: u64,
}

/// How much was looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub files: u64,
    pub elf_files: u64,
    pub scripts: u64,
    pub symlinks: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    pub severity: Severity,
    /// The file, absolute inside the image.
    pub path: String,
    /// What is wrong with it: the missing soname, the interpreter, the link's target, the mode.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A `DT_NEEDED` soname no file of the image provides.
    MissingLibrary,
    /// A library's `DT_NEEDED` soname that is in the image only outside the search path:
    /// found when the program that loads the library has loaded it already (a JVM's
    /// libjvm.so, systemd's private libraries), which the lint cannot know.
    UnsearchedLibrary,
    /// An ELF `PT_INTERP` that is not in the image.
    MissingInterpreter,
    /// A `#!` interpreter that is not in the image.
    MissingScriptInterpreter,
    DanglingSymlink,
    /// An ELF file that could not be read (malformed, too big).
    Unreadable,
    /// A file no package's CONTENTS lists.
    Unowned,
    /// Writable by anyone, and not a sticky directory.
    WorldWritable,
    /// setuid or setgid.
    SetId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Fails the build (unless the image's `lint.fail` is false).
    Error,
    Warning,
    /// Listed only.
    Note,
}

impl Kind {
    /// What a finding of this kind is when gib.yaml says nothing: an image whose programs
    /// cannot start fails; a script's interpreter only warns, as packages install helper
    /// scripts (glibc's `ldd`) that a distroless image never runs.
    pub fn default_severity(self) -> Severity {
        match self {
            Kind::MissingLibrary | Kind::MissingInterpreter => Severity::Error,
            Kind::SetId => Severity::Note,
            _ => Severity::Warning,
        }
    }

    /// What findings of this kind are, for the printed list.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::MissingLibrary => "missing libraries",
            Kind::UnsearchedLibrary => "libraries found only outside the search path",
            Kind::MissingInterpreter => "missing program interpreters",
            Kind::MissingScriptInterpreter => "scripts whose interpreter is missing",
            Kind::DanglingSymlink => "dangling symlinks",
            Kind::Unreadable => "files not read as ELF",
            Kind::Unowned => "files of no package",
            Kind::WorldWritable => "world-writable files",
            Kind::SetId => "setuid/setgid files",
        }
    }
}

/// What the lint is given besides the image's trees.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintInputs {
    /// The paths the image's packages list in their CONTENTS (files and symlinks, as Portage
    /// merged them). An image of no package at all (a `rootfs:` tree) has no owners to check.
    pub owned: BTreeSet<String>,
    /// The image's `LD_LIBRARY_PATH` (its `env:`), searched like ld.so.conf's directories.
    pub library_path: Vec<String>,
}

/// Lint the image made of `layer_dirs` (nearest first).
pub fn lint_layers(layer_dirs: &[PathBuf], inputs: &LintInputs) -> Result<Report> {
    let tree = MergedTree::new(layer_dirs);
    let owned = canonical_owned(&tree, &inputs.owned)?;
    let mut search_dirs: Vec<String> = inputs
        .library_path
        .iter()
        .filter(|d| d.starts_with('/'))
        .cloned()
        .collect();
    search_dirs.extend(libpath::search_dirs(&tree)?);
    let entries = tree.walk()?;
    let mut lint = Lint {
        tree: &tree,
        search_dirs,
        found_libraries: BTreeMap::new(),
        libraries_by_name: libraries_by_name(&entries),
        report: Report::default(),
    };
    for entry in &entries {
        lint.check(entry, &owned)?;
    }
    let mut report = lint.report;
    report.findings.sort_by(|a, b| {
        (a.severity, a.kind, &a.path, &a.detail).cmp(&(b.severity, b.kind, &b.path, &b.detail))
    });
    Ok(report)
}

struct Lint<'t, 'l> {
    tree: &'t MergedTree<'l>,
    /// ld.so.conf's directories, then the defaults.
    search_dirs: Vec<String>,
    /// Whether a soname is in `search_dirs` for an ABI, as already looked up.
    found_libraries: BTreeMap<(String, (bool, bool, u16)), bool>,
    /// Where each file or link whose name looks like a library is (`libjvm.so` ->
    /// `/usr/lib64/openjdk/lib/server/libjvm.so`), the first of each name.
    libraries_by_name: BTreeMap<std::ffi::OsString, String>,
    report: Report,
}

impl Lint<'_, '_> {
    fn add(&mut self, kind: Kind, path: &str, detail: impl Into<String>) {
        self.report.findings.push(Finding {
            kind,
            severity: kind.default_severity(),
            path: path.to_string(),
            detail: detail.into(),
        });
    }

    fn check(&mut self, entry: &Visible, owned: &BTreeSet<PathBuf>) -> Result<()> {
        let path = entry.image_path();
        let file_type = entry.meta.file_type();
        let mode = entry.meta.permissions().mode();
        if file_type.is_dir() {
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                self.add(
                    Kind::WorldWritable,
                    &path,
                    format!("mode {:04o}", mode & 0o7777),
                );
            }
            return Ok(());
        }
        self.report.checked.files += 1;
        if !owned.is_empty()
            && !owned.contains(&entry.rel)
            && !WRITTEN_BY_THE_BUILD
                .iter()
                .any(|p| entry.rel == Path::new(p))
            && !entry.rel.starts_with(crate::gentoo::vdb::VDB_DIR)
        {
            self.add(Kind::Unowned, &path, "");
        }
        if file_type.is_symlink() {
            self.report.checked.symlinks += 1;
            return self.check_symlink(entry, &path);
        }
        if mode & 0o002 != 0 {
            self.add(
                Kind::WorldWritable,
                &path,
                format!("mode {:04o}", mode & 0o7777),
            );
        }
        if !file_type.is_file() {
            return Ok(());
        }
        if mode & 0o6000 != 0 {
            let which = match (mode & 0o4000 != 0, mode & 0o2000 != 0) {
                (true, true) => "setuid, setgid",
                (true, false) => "setuid",
                _ => "setgid",
            };
            self.add(
                Kind::SetId,
                &path,
                format!("{which} (mode {:04o})", mode & 0o7777),
            );
        }
        let head = match read_prefix(&entry.host, SHEBANG_BYTES) {
            Ok(head) => head,
            Err(err) => {
                self.add(Kind::Unreadable, &path, format!("{err:#}"));
                return Ok(());
            }
        };
        if elf::is_elf(&head) {
            self.report.checked.elf_files += 1;
            return self.check_elf(entry, &path);
        }
        if mode & 0o111 != 0 && head.starts_with(b"#!") {
            self.report.checked.scripts += 1;
            self.check_script(&head, &path)?;
        }
        Ok(())
    }

    fn check_symlink(&mut self, entry: &Visible, path: &str) -> Result<()> {
        let target = std::fs::read_link(&entry.host).unwrap_or_default();
        let detail = format!("-> {}", target.display());
        match self.tree.lookup(&entry.rel, true)? {
            Lookup::Found(_) => {}
            Lookup::Missing => {
                if !into_runtime_dir(&entry.rel, &target) {
                    self.add(Kind::DanglingSymlink, path, detail);
                }
            }
            Lookup::TooManyLinks => self.add(
                Kind::DanglingSymlink,
                path,
                format!("{detail} (too many levels of symbolic links)"),
            ),
        }
        Ok(())
    }

    fn check_elf(&mut self, entry: &Visible, path: &str) -> Result<()> {
        if entry.meta.len() > MAX_ELF_BYTES {
            self.add(
                Kind::Unreadable,
                path,
                format!(
                    "{} bytes: bigger than the {} MiB gib reads of an ELF file",
                    entry.meta.len(),
                    MAX_ELF_BYTES >> 20
                ),
            );
            return Ok(());
        }
        let bytes = match read_prefix(&entry.host, MAX_ELF_BYTES) {
            Ok(bytes) => bytes,
            Err(err) => {
                self.add(Kind::Unreadable, path, format!("{err:#}"));
                return Ok(());
            }
        };
        let dynamic = match elf::read_dynamic(&bytes) {
            Ok(dynamic) => dynamic,
            Err(why) => {
                self.add(Kind::Unreadable, path, why);
                return Ok(());
            }
        };
        if let Some(interpreter) = &dynamic.interpreter
            && !self.tree.is_file(Path::new(interpreter))?
        {
            self.add(Kind::MissingInterpreter, path, interpreter.clone());
        }
        let origin = merged::image_path(entry.rel.parent().unwrap_or(Path::new("")));
        let own_dirs: Vec<String> = dynamic
            .search
            .iter()
            .filter_map(|e| elf::expand_search_entry(e, &origin, dynamic.abi))
            .collect();
        for soname in &dynamic.needed {
            if self.provides(soname, &origin, &own_dirs, dynamic.abi)? {
                continue;
            }
            // A library (no interpreter: nothing runs it directly) may rely on what its
            // program loaded before it.
            match self.libraries_by_name.get(std::ffi::OsStr::new(soname)) {
                Some(at) if dynamic.interpreter.is_none() => {
                    let detail = format!("{soname} (at {at})");
                    self.add(Kind::UnsearchedLibrary, path, detail);
                }
                _ => self.add(Kind::MissingLibrary, path, soname.clone()),
            }
        }
        Ok(())
    }

    /// Whether the loader would find `soname` for a file of `abi` whose own RUNPATH (or
    /// RPATH) is `own_dirs`.
    fn provides(
        &mut self,
        soname: &str,
        origin: &str,
        own_dirs: &[String],
        abi: Abi,
    ) -> Result<bool> {
        if soname.contains('/') {
            // A path, not a name: ld.so opens it as it is, its `$ORIGIN` expanded.
            return match elf::expand_search_entry(soname, origin, abi) {
                Some(path) => self.library_at(Path::new(&path), abi),
                None => Ok(false),
            };
        }
        for dir in own_dirs {
            if self.library_at(&Path::new(dir).join(soname), abi)? {
                return Ok(true);
            }
        }
        let key = (
            soname.to_string(),
            (abi.is_64, abi.little_endian, abi.machine),
        );
        if let Some(found) = self.found_libraries.get(&key) {
            return Ok(*found);
        }
        let mut found = false;
        for dir in self.search_dirs.clone() {
            if self.library_at(&Path::new(&dir).join(soname), abi)? {
                found = true;
                break;
            }
        }
        self.found_libraries.insert(key, found);
        Ok(found)
    }

    /// Whether `path` leads to an ELF file of `abi` (ld.so skips a library of another ABI
    /// and searches on).
    fn library_at(&self, path: &Path, abi: Abi) -> Result<bool> {
        let Lookup::Found(file) = self.tree.lookup(path, true)? else {
            return Ok(false);
        };
        if !file.meta.is_file() {
            return Ok(false);
        }
        let header = read_prefix(&file.host, elf::HEADER_BYTES).unwrap_or_default();
        Ok(elf::abi(&header).is_some_and(|found| found == abi))
    }

    fn check_script(&mut self, head: &[u8], path: &str) -> Result<()> {
        let line = head[2..].split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let Some(interpreter) = words.next() else {
            self.add(
                Kind::MissingScriptInterpreter,
                path,
                "`#!` names no interpreter",
            );
            return Ok(());
        };
        if !self.tree.is_file(Path::new(interpreter))? {
            self.add(
                Kind::MissingScriptInterpreter,
                path,
                interpreter.to_string(),
            );
            return Ok(());
        }
        // `#!/usr/bin/env NAME`: NAME is looked up in PATH when the script runs.
        if Path::new(interpreter)
            .file_name()
            .is_some_and(|n| n == "env")
            && let Some(command) = words.find(|w| !w.starts_with('-') && !w.contains('='))
        {
            let found = if command.contains('/') {
                self.tree.is_file(Path::new(command))?
            } else {
                let mut found = false;
                for dir in DEFAULT_PATH {
                    if self.tree.is_file(&Path::new(dir).join(command))? {
                        found = true;
                        break;
                    }
                }
                found
            };
            if !found {
                self.add(
                    Kind::MissingScriptInterpreter,
                    path,
                    format!("{interpreter} {command}"),
                );
            }
        }
        Ok(())
    }
}

/// Files and links of the image named like a shared library, by name (the first of each).
fn libraries_by_name(entries: &[Visible]) -> BTreeMap<std::ffi::OsString, String> {
    let mut by_name = BTreeMap::new();
    for entry in entries {
        if entry.meta.is_dir() {
            continue;
        }
        if let Some(name) = entry.rel.file_name()
            && name.to_string_lossy().contains(".so")
        {
            by_name
                .entry(name.to_os_string())
                .or_insert_with(|| entry.image_path());
        }
    }
    by_name
}

/// The owned paths as the walk names them: each path's directory followed through the
/// image's symlinks (`/lib64/libc.so.6` is `usr/lib64/libc.so.6` where /lib64 is a link).
fn canonical_owned(tree: &MergedTree<'_>, owned: &BTreeSet<String>) -> Result<BTreeSet<PathBuf>> {
    let mut canonical = BTreeSet::new();
    let mut dirs: BTreeMap<PathBuf, Option<PathBuf>> = BTreeMap::new();
    for path in owned {
        let path = Path::new(path);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            continue;
        };
        let resolved = match dirs.get(dir) {
            Some(resolved) => resolved.clone(),
            None => {
                let resolved = match tree.lookup(dir, true)? {
                    Lookup::Found(found) => Some(found.rel),
                    _ => None,
                };
                dirs.insert(dir.to_path_buf(), resolved.clone());
                resolved
            }
        };
        if let Some(dir) = resolved {
            canonical.insert(dir.join(name));
        }
    }
    Ok(canonical)
}

/// Whether the link at `rel` points (lexically) into /proc, /sys or /dev, which the runtime
/// fills when the container starts.
fn into_runtime_dir(rel: &Path, target: &Path) -> bool {
    let base = if target.is_absolute() {
        PathBuf::new()
    } else {
        rel.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let mut parts: Vec<&std::ffi::OsStr> = base.iter().collect();
    for component in target.components() {
        match component {
            Component::Normal(name) => parts.push(name),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts
        .first()
        .is_some_and(|first| RUNTIME_DIRS.iter().any(|d| first == d))
}

#[cfg(test)]
mod tests;
