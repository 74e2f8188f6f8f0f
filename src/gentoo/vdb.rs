//! The installed-package database, `/var/db/pkg/<category>/<PF>/` (the "VDB"), read from a
//! root: what is installed, its metadata and the files it owns (`CONTENTS`).
//!
//! For the size report, the SBOM and image tags. Read-only: gib never writes the VDB (Portage
//! does), and trimming it for the image belongs to `rootfs`. Keys are read from the per-key
//! files Portage writes; the consolidated `metadata` file of newer Portage versions is only a
//! fallback for keys whose file is missing.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::version::{Version, split_pvr};
use crate::sandbox::safe_fs::{NodeKind, TreeDir};

/// Where the database lives inside a root.
pub const VDB_DIR: &str = "var/db/pkg";

/// One installed package, e.g. `dev-lang/python-3.12.7-r1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledPackage {
    pub category: String,
    /// PN, e.g. `python`.
    pub name: String,
    /// PV: the version without the revision, e.g. `3.12.7` (what image tags use).
    pub version: String,
    /// PVR: the version with the revision when there is one, e.g. `3.12.7-r1`.
    pub full_version: String,
    /// SLOT as recorded, possibly with a sub-slot (`3.12/3.12`).
    pub slot: Option<String>,
    /// The Gentoo LICENSE expression (`|| ( MIT Apache-2.0 ) ssl? ( openssl )`).
    pub license: Option<String>,
    /// USE: every flag enabled when the package was built (includes arch and USE_EXPAND flags).
    pub use_flags: Vec<String>,
    /// IUSE without the `+`/`-` default markers.
    pub iuse: Vec<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
    pub description: Option<String>,
    /// SIZE: installed bytes as Portage counted them.
    pub size: Option<u64>,
    /// SRC_URI when recorded (in `environment.bz2`, which trimmed databases drop).
    pub src_uri: Option<String>,
    /// COUNTER: the merge order, when recorded.
    pub counter: Option<u64>,
    pub contents: Vec<ContentsEntry>,
}

impl InstalledPackage {
    /// `category/name`, e.g. `dev-lang/python`.
    pub fn cp(&self) -> String {
        format!("{}/{}", self.category, self.name)
    }

    /// `category/name-PVR`, e.g. `dev-lang/python-3.12.7-r1`.
    pub fn cpv(&self) -> String {
        format!("{}/{}-{}", self.category, self.name, self.full_version)
    }

    /// The enabled USE flags the package itself declares (USE minus arch and profile flags).
    pub fn enabled_iuse(&self) -> Vec<&str> {
        self.iuse
            .iter()
            .filter(|flag| self.use_flags.contains(flag))
            .map(String::as_str)
            .collect()
    }
}

/// One line of CONTENTS. Paths are absolute inside the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ContentsEntry {
    Dir {
        path: String,
    },
    Obj {
        path: String,
        md5: String,
        mtime: u64,
    },
    Sym {
        path: String,
        target: String,
        mtime: u64,
    },
    Dev {
        path: String,
    },
    Fif {
        path: String,
    },
}

impl ContentsEntry {
    pub fn path(&self) -> &str {
        match self {
            ContentsEntry::Dir { path }
            | ContentsEntry::Obj { path, .. }
            | ContentsEntry::Sym { path, .. }
            | ContentsEntry::Dev { path }
            | ContentsEntry::Fif { path } => path,
        }
    }
}

/// Every package installed in `root`, sorted by category, name and version. A root without
/// a database has no packages. The database is read relative to the root without following
/// any symlink (a tree gib did not make may plant one to a host file): a symlink in it is an
/// error naming it.
pub fn read_installed(root: &Path) -> Result<Vec<InstalledPackage>> {
    let root = TreeDir::open_root(root)?;
    let Some(vdb) = root.dir(Path::new(VDB_DIR), false)? else {
        return Ok(Vec::new());
    };
    let mut packages = Vec::new();
    for category in database_dirs(&vdb)? {
        let category_dir = vdb.dir(Path::new(&category), false)?.context("vanished")?;
        for pf in database_dirs(&category_dir)? {
            let package_dir = category_dir
                .dir(Path::new(&pf), false)?
                .context("vanished")?;
            packages.push(read_package(&package_dir, &category, &pf)?);
        }
    }
    packages.sort_by(|a, b| {
        (&a.category, &a.name)
            .cmp(&(&b.category, &b.name))
            .then_with(|| compare_versions(&a.full_version, &b.full_version))
    });
    Ok(packages)
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

fn read_package(dir: &TreeDir, category: &str, pf: &str) -> Result<InstalledPackage> {
    let (name, version, revision) = split_pvr(pf).with_context(|| {
        format!(
            "{}: `{pf}` is not a package name followed by a version",
            dir.path().display()
        )
    })?;
    let full_version = match revision {
        Some(r) => format!("{version}-{r}"),
        None => version.to_string(),
    };
    let metadata = read_metadata_file(dir)?;
    let key = |name: &str| read_key(dir, name, &metadata);
    let words = |value: Option<String>| -> Vec<String> {
        value
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    let number = |name: &str| -> Result<Option<u64>> {
        key(name)?
            .map(|v| {
                v.parse::<u64>().with_context(|| {
                    format!("{}: `{v}` is not a number", dir.path().join(name).display())
                })
            })
            .transpose()
    };
    let iuse = words(key("IUSE")?)
        .into_iter()
        .map(|flag| flag.trim_start_matches(['+', '-']).to_string())
        .collect();
    let src_uri = match key("SRC_URI")? {
        Some(uri) => Some(uri),
        None => src_uri_from_environment(dir)?,
    };
    let contents = match read_text(dir, "CONTENTS")? {
        Some(text) => parse_contents(&text, &dir.path().join("CONTENTS"))?,
        None => Vec::new(),
    };
    Ok(InstalledPackage {
        category: category.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        full_version,
        slot: key("SLOT")?,
        license: key("LICENSE")?,
        use_flags: words(key("USE")?),
        iuse,
        repository: key("repository")?,
        homepage: key("HOMEPAGE")?,
        description: key("DESCRIPTION")?,
        size: number("SIZE")?,
        src_uri,
        counter: number("COUNTER")?,
        contents,
    })
}

/// A key's value: its own file, else the `metadata` file; `None` when absent or empty.
fn read_key(
    dir: &TreeDir,
    name: &str,
    metadata: &BTreeMap<String, String>,
) -> Result<Option<String>> {
    let value = match read_text(dir, name)? {
        Some(text) => Some(text),
        None => metadata.get(name).cloned(),
    };
    Ok(value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty()))
}

/// The file `name` of a package's directory as text; `None` when it is not there.
fn read_text(dir: &TreeDir, name: &str) -> Result<Option<String>> {
    let Some(bytes) = dir.read(OsStr::new(name))? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("{} is not UTF-8", dir.path().join(name).display()))
}

/// The consolidated `metadata` file of Portage >= 3.0.82: `#format=1`, then `KEY=value` lines.
fn read_metadata_file(dir: &TreeDir) -> Result<BTreeMap<String, String>> {
    let Some(text) = read_text(dir, "metadata")? else {
        return Ok(BTreeMap::new());
    };
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// SRC_URI from the saved ebuild environment (`declare -- SRC_URI="…"`), when it was kept.
fn src_uri_from_environment(dir: &TreeDir) -> Result<Option<String>> {
    let Some(compressed) = dir.read(OsStr::new("environment.bz2"))? else {
        return Ok(None);
    };
    let mut text = String::new();
    bzip2::read::MultiBzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .with_context(|| {
            format!(
                "cannot decompress {}",
                dir.path().join("environment.bz2").display()
            )
        })?;
    Ok(declared_variable(&text, "SRC_URI"))
}

/// The value of `declare -- NAME="value"` in bash's `declare -p` output; the value may span
/// lines and holds no unescaped `"`.
fn declared_variable(environment: &str, name: &str) -> Option<String> {
    let prefix = format!("declare -- {name}=\"");
    let start = environment.find(&prefix)? + prefix.len();
    let rest = &environment[start..];
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let value = value.trim().to_string();
                return (!value.is_empty()).then_some(value);
            }
            '\\' => value.extend(chars.next()),
            c => value.push(c),
        }
    }
    None
}

/// Parse a CONTENTS file (`file` names it in errors).
pub fn parse_contents(text: &str, file: &Path) -> Result<Vec<ContentsEntry>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            parse_contents_line(line).with_context(|| {
                format!(
                    "{}:{}: malformed CONTENTS line `{line}`",
                    file.display(),
                    index + 1
                )
            })
        })
        .collect()
}

fn parse_contents_line(line: &str) -> Result<ContentsEntry> {
    let (kind, rest) = line.split_once(' ').context("expected `<type> <path> …`")?;
    let absolute = |path: &str| -> Result<String> {
        if !path.starts_with('/') {
            bail!("the path `{path}` is not absolute");
        }
        Ok(path.to_string())
    };
    let mtime = |text: &str| -> Result<u64> {
        text.parse()
            .with_context(|| format!("`{text}` is not an mtime"))
    };
    Ok(match kind {
        "dir" => ContentsEntry::Dir {
            path: absolute(rest)?,
        },
        "dev" => ContentsEntry::Dev {
            path: absolute(rest)?,
        },
        "fif" => ContentsEntry::Fif {
            path: absolute(rest)?,
        },
        "obj" => {
            // From the right: the path may contain spaces, the md5 and mtime cannot.
            let mut fields = rest.rsplitn(3, ' ');
            let (Some(time), Some(md5), Some(path)) = (fields.next(), fields.next(), fields.next())
            else {
                bail!("expected `obj <path> <md5> <mtime>`");
            };
            if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("`{md5}` is not an md5 digest");
            }
            ContentsEntry::Obj {
                path: absolute(path)?,
                md5: md5.to_string(),
                mtime: mtime(time)?,
            }
        }
        "sym" => {
            let (link, time) = rest
                .rsplit_once(' ')
                .context("expected `sym <path> -> <target> <mtime>`")?;
            let (path, target) = link
                .split_once(" -> ")
                .context("expected `sym <path> -> <target> <mtime>`")?;
            ContentsEntry::Sym {
                path: absolute(path)?,
                target: target.to_string(),
                mtime: mtime(time)?,
            }
        }
        other => bail!("unknown entry type `{other}`"),
    })
}

/// The category or package directories of a database directory, sorted, without what Portage
/// keeps beside them (merge locks and temporary dirs such as `-MERGING-foo`, `.keep` files).
/// A symlink is an error naming it: it could lead to any file of the host.
fn database_dirs(dir: &TreeDir) -> Result<Vec<String>> {
    let mut dirs = Vec::new();
    for name in dir.names()? {
        let Some(text) = name.to_str().filter(|n| !n.starts_with(['-', '.'])) else {
            continue;
        };
        match dir.kind(&name)? {
            Some(NodeKind::Dir) => dirs.push(text.to_string()),
            Some(NodeKind::Symlink) => bail!(
                "{} is a symbolic link; the package database must not contain any",
                dir.path().join(&name).display()
            ),
            _ => {}
        }
    }
    Ok(dirs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Write a package directory with the given key files into `<root>/var/db/pkg`.
    pub(crate) fn write_package(root: &Path, cpf: &str, keys: &[(&str, &str)]) {
        let dir = root.join(VDB_DIR).join(cpf);
        std::fs::create_dir_all(&dir).unwrap();
        for (key, value) in keys {
            std::fs::write(dir.join(key), format!("{value}\n")).unwrap();
        }
    }

    #[test]
    fn reads_metadata_and_contents() {
        let root = tempfile::tempdir().unwrap();
        write_package(
            root.path(),
            "dev-lang/python-3.12.7-r1",
            &[
                ("SLOT", "3.12/3.12"),
                ("LICENSE", "PSF-2"),
                ("USE", "amd64 elibc_glibc ssl sqlite"),
                ("IUSE", "+ssl -sqlite tk"),
                ("repository", "gentoo"),
                ("HOMEPAGE", "https://www.python.org/"),
                ("DESCRIPTION", "An interpreted language"),
                ("SIZE", "12345"),
                ("COUNTER", "42"),
                (
                    "CONTENTS",
                    "dir /usr/lib/python3.12\n\
                     obj /usr/lib/python3.12/a file with spaces.py d41d8cd98f00b204e9800998ecf8427e 1700000000\n\
                     sym /usr/bin/python3 -> python3.12 1700000001\n\
                     fif /run/fifo\n\
                     dev /dev/null\n",
                ),
            ],
        );
        write_package(root.path(), "app-misc/hello-1.0", &[]);
        let packages = read_installed(root.path()).unwrap();
        assert_eq!(packages.len(), 2);
        let hello = &packages[0];
        assert_eq!(
            (hello.cpv().as_str(), hello.version.as_str()),
            ("app-misc/hello-1.0", "1.0")
        );
        assert_eq!((hello.slot.as_deref(), hello.contents.len()), (None, 0));

        let python = &packages[1];
        assert_eq!(python.cp(), "dev-lang/python");
        assert_eq!(python.version, "3.12.7");
        assert_eq!(python.full_version, "3.12.7-r1");
        assert_eq!(python.slot.as_deref(), Some("3.12/3.12"));
        assert_eq!(python.iuse, ["ssl", "sqlite", "tk"]);
        assert_eq!(python.enabled_iuse(), ["ssl", "sqlite"]);
        assert_eq!(python.size, Some(12345));
        assert_eq!(python.counter, Some(42));
        assert_eq!(python.src_uri, None);
        assert_eq!(
            python.contents,
            [
                ContentsEntry::Dir {
                    path: "/usr/lib/python3.12".into()
                },
                ContentsEntry::Obj {
                    path: "/usr/lib/python3.12/a file with spaces.py".into(),
                    md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
                    mtime: 1700000000
                },
                ContentsEntry::Sym {
                    path: "/usr/bin/python3".into(),
                    target: "python3.12".into(),
                    mtime: 1700000001
                },
                ContentsEntry::Fif {
                    path: "/run/fifo".into()
                },
                ContentsEntry::Dev {
                    path: "/dev/null".into()
                },
            ]
        );
    }

    #[test]
    fn sorts_by_name_then_version_and_skips_portage_temporaries() {
        let root = tempfile::tempdir().unwrap();
        write_package(root.path(), "sys-libs/zlib-1.10", &[]);
        write_package(root.path(), "sys-libs/zlib-1.9-r2", &[]);
        write_package(root.path(), "sys-libs/-MERGING-zlib-1.11", &[]);
        write_package(root.path(), "app-misc/a-1", &[]);
        let names: Vec<String> = read_installed(root.path())
            .unwrap()
            .iter()
            .map(InstalledPackage::cpv)
            .collect();
        assert_eq!(
            names,
            ["app-misc/a-1", "sys-libs/zlib-1.9-r2", "sys-libs/zlib-1.10"]
        );
    }

    #[test]
    fn falls_back_to_the_metadata_file() {
        let root = tempfile::tempdir().unwrap();
        write_package(
            root.path(),
            "app-misc/hello-2.1",
            &[(
                "metadata",
                "#format=1\nSLOT=0\nLICENSE=GPL-3+\n#dir_mtime=1",
            )],
        );
        let hello = &read_installed(root.path()).unwrap()[0];
        assert_eq!(hello.slot.as_deref(), Some("0"));
        assert_eq!(hello.license.as_deref(), Some("GPL-3+"));
    }

    #[test]
    fn reads_src_uri_from_the_saved_environment() {
        let root = tempfile::tempdir().unwrap();
        write_package(root.path(), "app-misc/hello-2.1", &[]);
        let environment = "declare -- PF=\"hello-2.1\"\n\
            declare -- SRC_URI=\"mirror://gnu/hello/hello-2.1.tar.gz\n\
            \thttps://example.org/hello-2.1.tar.gz\"\n";
        let mut compressed = Vec::new();
        std::io::Write::write_all(
            &mut bzip2::write::BzEncoder::new(&mut compressed, bzip2::Compression::fast()),
            environment.as_bytes(),
        )
        .unwrap();
        std::fs::write(
            root.path()
                .join(VDB_DIR)
                .join("app-misc/hello-2.1/environment.bz2"),
            compressed,
        )
        .unwrap();
        let hello = &read_installed(root.path()).unwrap()[0];
        assert_eq!(
            hello.src_uri.as_deref(),
            Some("mirror://gnu/hello/hello-2.1.tar.gz\n\thttps://example.org/hello-2.1.tar.gz")
        );
    }

    #[test]
    fn a_malformed_contents_line_names_the_file_and_line() {
        let root = tempfile::tempdir().unwrap();
        write_package(
            root.path(),
            "app-misc/hello-1.0",
            &[("CONTENTS", "dir /usr\nobj /usr/bin/hello 1700000000")],
        );
        let err = format!("{:#}", read_installed(root.path()).unwrap_err());
        assert!(
            err.contains("app-misc/hello-1.0/CONTENTS:2: malformed CONTENTS line"),
            "{err}"
        );
        for bad in [
            "sym /usr/bin/x 1",
            "obj relative d41d8cd98f00b204e9800998ecf8427e 1",
            "lnk /x",
        ] {
            assert!(parse_contents(bad, Path::new("C")).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_a_directory_that_is_no_package() {
        let root = tempfile::tempdir().unwrap();
        write_package(root.path(), "app-misc/noversion", &[]);
        let err = format!("{:#}", read_installed(root.path()).unwrap_err());
        assert!(err.contains("app-misc/noversion"), "{err}");
    }

    #[test]
    fn a_symlink_in_the_database_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("secret");
        std::fs::write(&secret, "password").unwrap();
        let root = tmp.path().join("root");
        write_package(&root, "app-misc/hello-1.0", &[]);
        let package = root.join(VDB_DIR).join("app-misc/hello-1.0");
        std::os::unix::fs::symlink(&secret, package.join("DESCRIPTION")).unwrap();
        let err = format!("{:#}", read_installed(&root).unwrap_err());
        assert!(
            err.contains("hello-1.0/DESCRIPTION is a symbolic link"),
            "{err}"
        );
        assert!(!err.contains("password"), "{err}");

        std::fs::remove_file(package.join("DESCRIPTION")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join(VDB_DIR).join("evil")).unwrap();
        let err = format!("{:#}", read_installed(&root).unwrap_err());
        assert!(err.contains("pkg/evil is a symbolic link"), "{err}");
    }
}
