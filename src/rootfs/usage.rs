//! Where an image's bytes go: each installed package's share of a finished root, the files no
//! package owns (ld.so.cache, passwd, generated caches) and the biggest files.
//!
//! For `gib build --json` and `gib inspect`. It measures what is in the root, not what Portage
//! recorded (`SIZE` counts files that trimming removed). Not a layer planner.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::resolve::resolve_in_root;
use crate::gentoo::vdb::{ContentsEntry, InstalledPackage};

/// The size report of one root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UsageReport {
    /// Bytes of all regular files; hard links count once.
    pub total_bytes: u64,
    pub total_files: u64,
    /// Every package, largest share first.
    pub packages: Vec<PackageUsage>,
    /// Files that no package's CONTENTS lists, largest first.
    pub unowned: UnownedUsage,
    /// The biggest files of the root, largest first.
    pub largest_files: Vec<FileUsage>,
    /// Each layer dir's share (an image's own, then its ancestors'), for a treemap by layer
    /// and package; one for a single root.
    #[serde(default)]
    pub layers: Vec<LayerUsage>,
}

/// What one layer dir of an image holds, as the image shows it (files a nearer layer
/// replaced or removed left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LayerUsage {
    pub total_bytes: u64,
    pub total_files: u64,
    /// The packages whose files are in this layer, largest share first.
    pub packages: Vec<PackageUsage>,
    pub unowned_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PackageUsage {
    /// `category/name-version`.
    pub package: String,
    /// Bytes of the package's files that are still in the root and that no later package
    /// took over.
    pub bytes: u64,
    pub files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct UnownedUsage {
    pub bytes: u64,
    pub files: Vec<FileUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileUsage {
    /// Absolute inside the image.
    pub path: String,
    pub bytes: u64,
    /// `category/name-version`, or none for an unowned file.
    pub owner: Option<String>,
}

/// Measure `root` against its installed `packages`, listing the `largest` biggest files.
///
/// A file several packages list belongs to the last one merged (highest COUNTER, else the
/// later in `packages`), as in Portage, where the last merge owns a collided file.
pub fn usage_report(
    root: &Path,
    packages: &[InstalledPackage],
    largest: usize,
) -> Result<UsageReport> {
    usage_report_under(root, packages, largest, &mut BTreeSet::new())
}

/// [`usage_report`] of one layer tree of an image whose nearer layers hold the paths of
/// `shadowed` (a file there, or an overlay whiteout): those paths of `root` are not in the
/// image and are left out. Adds `root`'s own paths to `shadowed`, for the layers below.
pub fn usage_report_under(
    root: &Path,
    packages: &[InstalledPackage],
    largest: usize,
    shadowed: &mut BTreeSet<String>,
) -> Result<UsageReport> {
    let mut layer_paths = BTreeSet::new();
    let owners = file_owners(root, packages);
    let mut package_usage: Vec<PackageUsage> = packages
        .iter()
        .map(|p| PackageUsage {
            package: p.cpv(),
            bytes: 0,
            files: 0,
        })
        .collect();
    let mut unowned = Vec::new();
    let mut all_files = Vec::new();
    let mut seen_inodes = BTreeSet::new();
    let mut total_bytes = 0;
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.with_context(|| format!("cannot walk {}", root.display()))?;
        // overlayfs(5): a whiteout is a character device 0/0; it hides the path below.
        let is_whiteout = {
            use std::os::unix::fs::FileTypeExt;
            entry.file_type().is_char_device()
                && entry.metadata().is_ok_and(|meta| meta.rdev() == 0)
        };
        if !entry.file_type().is_file() && !is_whiteout {
            continue;
        }
        let path = image_path(root, entry.path());
        let hidden = Path::new(&path)
            .ancestors()
            .any(|p| shadowed.contains(p.to_string_lossy().as_ref()));
        layer_paths.insert(path.clone());
        if hidden || is_whiteout {
            continue;
        }
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot stat {}", entry.path().display()))?;
        // The first path of a hard-linked file carries its bytes; a layer stores it once.
        if meta.nlink() > 1 && !seen_inodes.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let bytes = meta.len();
        total_bytes += bytes;
        let owner = owners.get(entry.path()).copied();
        match owner {
            Some(index) => {
                package_usage[index].bytes += bytes;
                package_usage[index].files += 1;
            }
            None => unowned.push(FileUsage {
                path: path.clone(),
                bytes,
                owner: None,
            }),
        }
        all_files.push(FileUsage {
            path,
            bytes,
            owner: owner.map(|index| package_usage[index].package.clone()),
        });
    }
    shadowed.append(&mut layer_paths);
    let by_size = |a: &FileUsage, b: &FileUsage| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path));
    let total_files = all_files.len() as u64;
    all_files.sort_by(by_size);
    all_files.truncate(largest);
    unowned.sort_by(by_size);
    package_usage.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.package.cmp(&b.package)));
    let unowned_bytes = unowned.iter().map(|f| f.bytes).sum();
    let layer = LayerUsage {
        total_bytes,
        total_files,
        packages: package_usage
            .iter()
            .filter(|p| p.files > 0)
            .cloned()
            .collect(),
        unowned_bytes,
    };
    Ok(UsageReport {
        total_bytes,
        total_files,
        packages: package_usage,
        unowned: UnownedUsage {
            bytes: unowned_bytes,
            files: unowned,
        },
        largest_files: all_files,
        layers: vec![layer],
    })
}

/// Host path of every `obj` in the packages' CONTENTS -> index of its owning package.
fn file_owners(root: &Path, packages: &[InstalledPackage]) -> BTreeMap<PathBuf, usize> {
    let mut merge_order: Vec<usize> = (0..packages.len()).collect();
    merge_order.sort_by_key(|&i| packages[i].counter.unwrap_or(0));
    let mut owners = BTreeMap::new();
    for index in merge_order {
        for entry in &packages[index].contents {
            if let ContentsEntry::Obj { path, .. } = entry {
                // CONTENTS names files by the path Portage merged to; the root may reach it
                // through a symlinked directory (/lib64 -> usr/lib64). A path that cannot be
                // resolved inside the root names nothing the walk will find.
                if let Ok(host) = resolve_in_root(root, path, false) {
                    owners.insert(host, index);
                }
            }
        }
    }
    owners
}

fn image_path(root: &Path, host: &Path) -> String {
    let relative = host.strip_prefix(root).unwrap_or(host);
    format!("/{}", relative.display())
}

/// The usage of an image's layer dirs (its own first, then its ancestors'), each measured
/// against the packages whose database it holds, or else against `package_dbs` (roots holding
/// the `var/db/pkg` that `keep_package_db: false` kept aside); a file a child replaced is
/// counted in both layers, as the image's layers store it twice. Runs as the `measure_layers`
/// job: a rootless build's layer dirs hold directories only the image's users may read.
pub fn layers_usage(
    layer_dirs: &[PathBuf],
    package_dbs: &[PathBuf],
    largest: usize,
) -> Result<UsageReport> {
    // A layer without a package database of its own (`keep_package_db: false`) is read with
    // the databases gib kept aside for the image and its ancestors.
    let mut kept: Vec<crate::gentoo::vdb::InstalledPackage> = Vec::new();
    for db in package_dbs {
        for package in crate::gentoo::vdb::read_installed(db)? {
            if !kept.iter().any(|k| k.cpv() == package.cpv()) {
                kept.push(package);
            }
        }
    }
    let mut total: Option<UsageReport> = None;
    // Nearest layer first: a file a child rewrote (ld.so.cache) counts once, as the child's.
    let mut shadowed = BTreeSet::new();
    for layer in layer_dirs {
        let mut packages = crate::gentoo::vdb::read_installed(layer)?;
        if packages.is_empty() {
            packages = kept.clone();
        }
        let report = usage_report_under(layer, &packages, largest, &mut shadowed)
            .with_context(|| format!("cannot measure {}", layer.display()))?;
        total = Some(match total {
            None => report,
            Some(mut sum) => {
                sum.total_bytes += report.total_bytes;
                sum.total_files += report.total_files;
                sum.packages.extend(report.packages);
                sum.unowned.bytes += report.unowned.bytes;
                sum.unowned.files.extend(report.unowned.files);
                sum.largest_files.extend(report.largest_files);
                sum.layers.extend(report.layers);
                sum
            }
        });
    }
    let mut usage = total.context("the image has no layer dirs")?;
    // A package whose database a child's layer also carries is one package.
    let mut merged: Vec<PackageUsage> = Vec::new();
    for package in usage.packages.drain(..) {
        match merged.iter_mut().find(|p| p.package == package.package) {
            Some(known) => {
                known.bytes += package.bytes;
                known.files += package.files;
            }
            None => merged.push(package),
        }
    }
    usage.packages = merged;
    let by_size = |a: &FileUsage, b: &FileUsage| b.bytes.cmp(&a.bytes).then(a.path.cmp(&b.path));
    usage
        .packages
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.package.cmp(&b.package)));
    usage.unowned.files.sort_by(by_size);
    usage.largest_files.sort_by(by_size);
    usage.largest_files.truncate(largest);
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gentoo::vdb::{read_installed, tests::write_package};

    fn obj(path: &str) -> String {
        format!("obj {path} d41d8cd98f00b204e9800998ecf8427e 1")
    }

    #[test]
    fn attributes_files_to_their_last_owner() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib64")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", r.join("lib64")).unwrap();
        std::fs::write(r.join("usr/lib64/libc.so.6"), vec![0; 1000]).unwrap();
        std::fs::write(r.join("usr/bin/hello world"), vec![0; 300]).unwrap();
        std::fs::write(r.join("usr/bin/shared"), vec![0; 50]).unwrap();
        std::fs::hard_link(r.join("usr/bin/shared"), r.join("usr/bin/shared2")).unwrap();
        std::fs::write(r.join("etc/ld.so.cache"), vec![0; 20]).unwrap();
        write_package(
            r,
            "sys-libs/glibc-2.40-r5",
            &[
                ("COUNTER", "1"),
                (
                    "CONTENTS",
                    &[
                        obj("/lib64/libc.so.6"),
                        obj("/usr/bin/shared"),
                        obj("/usr/include/gone.h"),
                    ]
                    .join("\n"),
                ),
            ],
        );
        write_package(
            r,
            "app-misc/hello-1.0",
            &[
                ("COUNTER", "2"),
                (
                    "CONTENTS",
                    &[obj("/usr/bin/hello world"), obj("/usr/bin/shared")].join("\n"),
                ),
            ],
        );
        let packages = read_installed(r).unwrap();
        let report = usage_report(r, &packages, 2).unwrap();
        // The VDB's own files are unowned too.
        let vdb_bytes: u64 = walkdir::WalkDir::new(r.join("var"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.metadata().unwrap().len())
            .sum();
        assert_eq!(report.total_bytes, 1000 + 300 + 50 + 20 + vdb_bytes);
        assert_eq!(
            report.packages,
            [
                PackageUsage {
                    package: "sys-libs/glibc-2.40-r5".into(),
                    bytes: 1000,
                    files: 1
                },
                PackageUsage {
                    package: "app-misc/hello-1.0".into(),
                    bytes: 350,
                    files: 2
                },
            ]
        );
        assert_eq!(report.unowned.bytes, 20 + vdb_bytes);
        assert!(
            report
                .unowned
                .files
                .iter()
                .any(|f| f.path == "/etc/ld.so.cache" && f.bytes == 20)
        );
        assert_eq!(
            report.largest_files,
            [
                FileUsage {
                    path: "/usr/lib64/libc.so.6".into(),
                    bytes: 1000,
                    owner: Some("sys-libs/glibc-2.40-r5".into())
                },
                FileUsage {
                    path: "/usr/bin/hello world".into(),
                    bytes: 300,
                    owner: Some("app-misc/hello-1.0".into())
                },
            ]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["packages"][0]["bytes"], 1000);
    }

    #[test]
    fn a_file_a_nearer_layer_rewrote_counts_once_as_the_nearer_ones() {
        let parent = tempfile::tempdir().unwrap();
        let child = tempfile::tempdir().unwrap();
        for (root, size) in [(parent.path(), 20), (child.path(), 30)] {
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/ld.so.cache"), vec![0; size]).unwrap();
        }
        std::fs::write(parent.path().join("etc/passwd"), vec![0; 5]).unwrap();
        let mut shadowed = BTreeSet::new();
        let near = usage_report_under(child.path(), &[], 10, &mut shadowed).unwrap();
        let far = usage_report_under(parent.path(), &[], 10, &mut shadowed).unwrap();
        let paths = |r: &UsageReport| -> Vec<(String, u64)> {
            r.unowned
                .files
                .iter()
                .map(|f| (f.path.clone(), f.bytes))
                .collect()
        };
        assert_eq!(paths(&near), [("/etc/ld.so.cache".to_string(), 30)]);
        assert_eq!(paths(&far), [("/etc/passwd".to_string(), 5)]);
        assert_eq!((far.total_files, far.total_bytes), (1, 5));
    }
}
