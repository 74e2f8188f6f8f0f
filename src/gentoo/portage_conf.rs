//! The Portage configuration files gib writes into the builder root, as exact text.
//!
//! The make.conf fragment is appended to the stage3's own make.conf, so COMMON_FLAGS, CHOST
//! and the profile stay the stage3's; it only adds. Everything here is a pure function of the
//! configuration so that `gib plan` can show the files and tests can pin them byte for byte.
//! It takes plain data (flags, mirrors, repository names, a binary package host): reading
//! gib.yaml's sections into that is the plan's job (`plan::portage`), writing the files into
//! a root is the builder's; neither is this module's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;

use crate::printer::UserError;

/// Where each file goes in the builder root.
pub const MAKE_CONF_PATH: &str = "/etc/portage/make.conf";
pub const PACKAGE_USE_PATH: &str = "/etc/portage/package.use/zz-gib";
pub const PACKAGE_ACCEPT_KEYWORDS_PATH: &str = "/etc/portage/package.accept_keywords/zz-gib";
pub const PACKAGE_LICENSE_PATH: &str = "/etc/portage/package.license/zz-gib";
pub const REPOS_CONF_PATH: &str = "/etc/portage/repos.conf/zz-gib.conf";
pub const BINREPOS_CONF_PATH: &str = "/etc/portage/binrepos.conf/gib.conf";

/// Where repositories are bound (read-only) in the builder.
pub const REPOS_DIR: &str = "/var/db/repos";
/// Binary packages and source tarballs: Portage's defaults, bound to gib's cache.
pub const PKGDIR: &str = "/var/cache/binpkgs";
pub const DISTDIR: &str = "/var/cache/distfiles";
/// Where a directory binhost is bound (read-only) in the builder.
/// Not under /var/cache/binhost/: Portage keeps a binrepo's downloads in
/// `/var/cache/binhost/<name>` unless told otherwise.
pub const BINHOST_DIR: &str = "/var/cache/gib-binhost";
/// Gentoo's binary packages live under `releases/<arch>/binpackages/<profile version>/<ABI>/`
/// on every Gentoo mirror (gentoo.md §3; catalyst's releng `binrepo_path`).
pub const OFFICIAL_BINHOST_MIRROR: &str = super::MIRROR;

/// Emerge without privileges inside a user namespace: the ptrace/LD_PRELOAD sandbox cannot
/// work there (and the namespace already isolates the build); build binary packages so that
/// rebuilds and child images reuse them; no docs; no news items to read. No pid-sandbox:
/// gib's sandbox is already a PID namespace, and Portage's would mount a fresh /proc, which
/// the kernel refuses over gib's masked one (network- and ipc-sandbox still work).
pub const FEATURES: &str =
    "-sandbox -usersandbox -pid-sandbox buildpkg binpkg-multi-instance nodoc noinfo noman -news";

/// Files no distroless image wants. Headers, static libraries, pkgconfig and cmake files are
/// not masked: child images may build against them, and gib trims them from the layer later
/// unless keep_headers / keep_static_libs. /etc/env.d is kept: env-update derives
/// ld.so.conf from it.
pub const INSTALL_MASK: &[&str] = &[
    "/usr/share/doc",
    "/usr/share/man",
    "/usr/share/info",
    "/usr/share/gtk-doc",
    "/usr/share/help",
    "/usr/share/bash-completion",
    "/usr/share/zsh",
    "/usr/share/fish/vendor_completions.d",
    "/usr/share/lintian",
    "/usr/share/locale",
    // glibc reads locale.alias even in the C locale.
    "-/usr/share/locale/locale.alias",
    "/usr/lib/debug",
    "/usr/src",
];

/// The Portage files of a build, as exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortageFiles {
    /// Appended to the stage3's /etc/portage/make.conf.
    pub make_conf: String,
    pub package_use: String,
    pub package_accept_keywords: String,
    /// Licenses accepted per package beyond the profile's ACCEPT_LICENSE.
    pub package_license: String,
    pub repos_conf: String,
    /// Empty without a binhost; then emerge runs without `--getbinpkg`.
    pub binrepos_conf: String,
    /// A directory binhost on the host, bound read-only at [`BINHOST_DIR`].
    pub binhost_dir: Option<PathBuf>,
}

impl PortageFiles {
    /// `(path in the builder root, text, appended?)`, in a fixed order; binrepos.conf only
    /// with a binhost.
    pub fn files(&self) -> Vec<(&'static str, &str, bool)> {
        let mut files = vec![
            (MAKE_CONF_PATH, self.make_conf.as_str(), true),
            (PACKAGE_USE_PATH, &self.package_use, false),
            (
                PACKAGE_ACCEPT_KEYWORDS_PATH,
                &self.package_accept_keywords,
                false,
            ),
            (PACKAGE_LICENSE_PATH, &self.package_license, false),
            (REPOS_CONF_PATH, &self.repos_conf, false),
        ];
        if !self.binrepos_conf.is_empty() {
            files.push((BINREPOS_CONF_PATH, &self.binrepos_conf, false));
        }
        files
    }
}

/// What the make.conf fragment says beyond gib's fixed settings.
#[derive(Debug, Clone, Copy)]
pub struct MakeConf<'a> {
    /// `MAKEOPTS=-j<threads>`.
    pub threads: u32,
    /// Parallel emerge jobs, and the load average that holds new ones back.
    pub jobs: u32,
    /// Global USE words, `-flag` for a removed one; none: no USE line.
    pub use_flags: &'a [String],
    /// GENTOO_MIRRORS; `None`: the stage3's own.
    pub gentoo_mirrors: Option<&'a [String]>,
}

/// An ebuild repository as repos.conf names it.
#[derive(Debug, Clone, Copy)]
pub struct RepoEntry<'a> {
    pub name: &'a str,
    pub priority: Option<i32>,
}

/// The binary package host binrepos.conf points emerge at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binrepo {
    /// `sync-uri`: http(s)/ftp/ssh, or `file://` for a directory bound into the builder.
    pub uri: String,
    pub verify_signature: bool,
}

const HEADER: &str = "# Written by gib from its configuration; changes here are overwritten.\n";

/// The lines gib appends to the stage3's make.conf.
pub fn make_conf_fragment(conf: &MakeConf) -> String {
    let MakeConf { threads, jobs, .. } = *conf;
    let mut out = String::from("\n# --- added by gib ---\n");
    out.push_str(&format!("MAKEOPTS=\"-j{threads}\"\n"));
    // --load-average keeps parallel emerge jobs from multiplying MAKEOPTS beyond the machine.
    out.push_str(&format!(
        "EMERGE_DEFAULT_OPTS=\"--jobs={jobs} --load-average={jobs}\"\n"
    ));
    if !conf.use_flags.is_empty() {
        // ${USE}: keep whatever the stage3's make.conf set before this fragment.
        out.push_str(&format!("USE=\"${{USE}} {}\"\n", conf.use_flags.join(" ")));
    }
    out.push_str(&format!("FEATURES=\"${{FEATURES}} {FEATURES}\"\n"));
    out.push_str(&format!("INSTALL_MASK=\"{}\"\n", INSTALL_MASK.join(" ")));
    out.push_str(&format!("PKGDIR=\"{PKGDIR}\"\n"));
    out.push_str(&format!("DISTDIR=\"{DISTDIR}\"\n"));
    // Portage asks these before any upstream URI of SRC_URI (and for every mirror:// one).
    if let Some(mirrors) = conf.gentoo_mirrors {
        out.push_str(&format!("GENTOO_MIRRORS=\"{}\"\n", mirrors.join(" ")));
    }
    out
}

/// `atom word...` lines, sorted by atom: package.use's flags, package.license's licenses.
pub fn package_use(flags: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::from(HEADER);
    for (atom, list) in flags {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{atom} {}\n", list.join(" ")));
    }
    out
}

/// `atom keyword...` lines, sorted by atom; an atom alone accepts the arch's testing keyword.
pub fn package_accept_keywords(keywords: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::from(HEADER);
    for (atom, list) in keywords {
        if list.is_empty() {
            out.push_str(&format!("{atom}\n"));
        } else {
            out.push_str(&format!("{atom} {}\n", list.join(" ")));
        }
    }
    out
}

/// repos.conf for the main repository and the overlays. gib syncs the repositories itself and
/// binds them read-only, so Portage must never sync: `sync-type` is empty ("never sync",
/// portage(5)) and `auto-sync = no`. `sync-uri` is emptied too: Portage's own repos.conf gives
/// `[gentoo]` one, and a sync-uri without a sync-type makes every emerge print "has sync-uri
/// attribute, but is missing sync-type attribute".
pub fn repos_conf(repositories: &[RepoEntry]) -> String {
    let mut out = String::from(HEADER);
    out.push_str("[DEFAULT]\nmain-repo = gentoo\n");
    let mut section = |name: &str, priority: Option<i32>| {
        out.push_str(&format!(
            "\n[{name}]\nlocation = {REPOS_DIR}/{name}\nsync-type =\nsync-uri =\nauto-sync = no\n"
        ));
        if let Some(priority) = priority {
            out.push_str(&format!("priority = {priority}\n"));
        }
    };
    section("gentoo", None);
    let mut sorted: Vec<&RepoEntry> = repositories.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    for repo in sorted {
        section(repo.name, repo.priority);
    }
    out
}

/// binrepos.conf for a binary package host, empty for none (portage(5) "binrepos.conf").
///
/// `location = PKGDIR`: Portage 3.0.83 otherwise keeps a binrepo's downloads apart, in
/// `/var/cache/binhost/<name>` (binrepo/config.py), which the throwaway builder would lose;
/// with PKGDIR it injects them into PKGDIR and its index (Binpkg.py, bintree.py
/// `get_local_repo_location`), gib's binpkgs cache, so they are reused offline and the
/// cache can serve the next machine in turn. Signatures: for
/// `verify-signature = true` Portage runs its trust helper (`PORTAGE_TRUST_HELPER`,
/// getuto) which builds the keyring `/etc/portage/gnupg` from the stage3's
/// `/usr/share/openpgp-keys/gentoo-release.asc`, and then refuses unsigned or badly signed
/// gpkg files (and any xpak). gib relies on the stage3 for both, as Gentoo's stage3s ship
/// getuto and the release keys with Portage (not checked here: the tests' mini stage3 has
/// neither, and no real stage3 is at hand).
pub fn binrepos_conf(binrepo: Option<&Binrepo>) -> String {
    let Some(Binrepo {
        uri,
        verify_signature,
    }) = binrepo
    else {
        return String::new();
    };
    let mut out = String::from(HEADER);
    // priority above any binrepos.conf the stage3 ships, so gib's choice is looked at first.
    out.push_str(&format!(
        "[gib]\npriority = 9999\nsync-uri = {uri}\nlocation = {PKGDIR}\n\
         verify-signature = {verify_signature}\n"
    ));
    out
}

/// Gentoo's signed binary packages for a stage3 flavor on `mirror` (None: Gentoo's own).
pub fn official_binrepo(mirror: Option<&str>, flavor: Option<&str>) -> Result<Binrepo> {
    let mirror = mirror.map_or(OFFICIAL_BINHOST_MIRROR, |m| m.trim_end_matches('/'));
    let path = official_binhost_path(flavor)?;
    Ok(Binrepo {
        uri: format!("{mirror}/releases/{path}/"),
        verify_signature: true,
    })
}

/// A directory of binary packages bound at [`BINHOST_DIR`]. Portage opens file:// indexes
/// and copies file:// packages itself (bintree.py, BinpkgFetcher.py), so no FETCHCOMMAND
/// is involved.
pub fn directory_binrepo(verify_signature: bool) -> Binrepo {
    Binrepo {
        uri: format!("file://{BINHOST_DIR}"),
        verify_signature,
    }
}

/// `<arch>/binpackages/23.0/<ABI>` of Gentoo's binhost for the stage3's flavor, or for the
/// host when the stage3 is a URL or a file (its flavor is not known before unpacking).
pub fn official_binhost_path(flavor: Option<&str>) -> Result<String> {
    let flavor = match flavor {
        Some(flavor) => flavor.to_string(),
        None => match std::env::consts::ARCH {
            "x86_64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            other => other.to_string(),
        },
    };
    let arch = flavor.split('-').next().unwrap_or_default();
    let musl = flavor.split('-').any(|w| w == "musl");
    let abi = match (arch, musl) {
        ("amd64", false) => "x86-64",
        ("amd64", true) => "x86-64_musl",
        ("arm64", false) => "arm64",
        _ => {
            return Err(UserError::with_hint(
                format!("Gentoo publishes no official binary packages for `{flavor}`"),
                "official binary packages exist for amd64 (glibc and musl) and arm64 (glibc); \
                 use a binhost of your own (a URL or a directory) or `binhost: none`",
            ));
        }
    };
    Ok(format!("{arch}/binpackages/23.0/{abi}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn make_conf_fragment_is_exact() {
        let use_flags = words(&["minimal", "-systemd", "-X"]);
        let mirrors = words(&["http://127.0.0.1:8080", "https://mirror.example.org/gentoo"]);
        let conf = MakeConf {
            threads: 12,
            jobs: 4,
            use_flags: &use_flags,
            gentoo_mirrors: Some(&mirrors),
        };
        assert_eq!(
            make_conf_fragment(&conf),
            "\n# --- added by gib ---\n\
             MAKEOPTS=\"-j12\"\n\
             EMERGE_DEFAULT_OPTS=\"--jobs=4 --load-average=4\"\n\
             USE=\"${USE} minimal -systemd -X\"\n\
             FEATURES=\"${FEATURES} -sandbox -usersandbox -pid-sandbox buildpkg binpkg-multi-instance nodoc noinfo noman -news\"\n\
             INSTALL_MASK=\"/usr/share/doc /usr/share/man /usr/share/info /usr/share/gtk-doc /usr/share/help \
             /usr/share/bash-completion /usr/share/zsh /usr/share/fish/vendor_completions.d /usr/share/lintian \
             /usr/share/locale -/usr/share/locale/locale.alias /usr/lib/debug /usr/src\"\n\
             PKGDIR=\"/var/cache/binpkgs\"\n\
             DISTDIR=\"/var/cache/distfiles\"\n\
             GENTOO_MIRRORS=\"http://127.0.0.1:8080 https://mirror.example.org/gentoo\"\n"
        );
    }

    #[test]
    fn the_stage3_keeps_its_mirrors_unless_the_file_names_some() {
        let mut conf = MakeConf {
            threads: 1,
            jobs: 1,
            use_flags: &[],
            gentoo_mirrors: None,
        };
        assert!(!make_conf_fragment(&conf).contains("GENTOO_MIRRORS"));
        conf.gentoo_mirrors = Some(&[]);
        assert!(make_conf_fragment(&conf).ends_with("GENTOO_MIRRORS=\"\"\n"));
    }

    #[test]
    fn no_use_line_without_flags() {
        let conf = MakeConf {
            threads: 2,
            jobs: 2,
            use_flags: &[],
            gentoo_mirrors: None,
        };
        assert!(!make_conf_fragment(&conf).contains("USE="));
    }

    #[test]
    fn headers_and_static_libs_are_not_masked() {
        let use_flags = words(&["minimal"]);
        let conf = MakeConf {
            threads: 1,
            jobs: 1,
            use_flags: &use_flags,
            gentoo_mirrors: None,
        };
        let text = make_conf_fragment(&conf);
        assert!(!text.contains("/usr/include"));
        assert!(!text.contains("*.a"));
    }

    #[test]
    fn package_files_are_sorted() {
        let package_use_flags = BTreeMap::from([
            (
                "dev-lang/python".to_string(),
                words(&["-ensurepip", "sqlite"]),
            ),
            ("app-misc/a".to_string(), words(&["x"])),
        ]);
        let accept_licenses = BTreeMap::from([(
            "app-misc/unfree".to_string(),
            words(&["gib-EULA", "@BINARY-REDISTRIBUTABLE"]),
        )]);
        let accept_keywords = BTreeMap::from([
            ("dev-lang/zig".to_string(), vec![]),
            ("=dev-libs/foo-1.0".to_string(), words(&["~amd64"])),
        ]);
        assert_eq!(
            package_use(&package_use_flags),
            format!("{HEADER}app-misc/a x\ndev-lang/python -ensurepip sqlite\n")
        );
        assert_eq!(
            package_use(&accept_licenses),
            format!("{HEADER}app-misc/unfree gib-EULA @BINARY-REDISTRIBUTABLE\n")
        );
        assert_eq!(
            package_accept_keywords(&accept_keywords),
            format!("{HEADER}=dev-libs/foo-1.0 ~amd64\ndev-lang/zig\n")
        );
    }

    #[test]
    fn repos_conf_never_syncs() {
        let repo = |name, priority| RepoEntry { name, priority };
        assert_eq!(
            repos_conf(&[repo("zeta", None), repo("mine", Some(60))]),
            format!(
                "{HEADER}[DEFAULT]\nmain-repo = gentoo\n\n\
                 [gentoo]\nlocation = /var/db/repos/gentoo\nsync-type =\nsync-uri =\nauto-sync = no\n\n\
                 [mine]\nlocation = /var/db/repos/mine\nsync-type =\nsync-uri =\nauto-sync = no\npriority = 60\n\n\
                 [zeta]\nlocation = /var/db/repos/zeta\nsync-type =\nsync-uri =\nauto-sync = no\n"
            )
        );
    }

    #[test]
    fn official_binhost_follows_the_stage3_flavor() {
        for (name, path) in [
            ("amd64-openrc", "amd64/binpackages/23.0/x86-64"),
            ("amd64-systemd", "amd64/binpackages/23.0/x86-64"),
            ("amd64-musl", "amd64/binpackages/23.0/x86-64_musl"),
            ("amd64-musl-hardened", "amd64/binpackages/23.0/x86-64_musl"),
            ("arm64-openrc", "arm64/binpackages/23.0/arm64"),
        ] {
            assert_eq!(official_binhost_path(Some(name)).unwrap(), path);
        }
        for none in ["riscv64-openrc", "arm64-musl", "i686-openrc"] {
            let err = official_binhost_path(Some(none)).unwrap_err();
            assert!(err.to_string().contains(none), "{err}");
        }
        let official = official_binrepo(
            Some("https://mirror.example.org/gentoo/"),
            Some("amd64-openrc"),
        )
        .unwrap();
        assert_eq!(
            binrepos_conf(Some(&official)),
            format!(
                "{HEADER}[gib]\npriority = 9999\n\
                 sync-uri = https://mirror.example.org/gentoo/releases/amd64/binpackages/23.0/x86-64/\n\
                 location = /var/cache/binpkgs\nverify-signature = true\n"
            )
        );
    }

    #[test]
    fn own_binhosts_by_url_or_directory() {
        assert_eq!(binrepos_conf(None), "");
        let url = Binrepo {
            uri: "http://cache.example.org/binpkgs/".into(),
            verify_signature: false,
        };
        assert_eq!(
            binrepos_conf(Some(&url)),
            format!(
                "{HEADER}[gib]\npriority = 9999\nsync-uri = http://cache.example.org/binpkgs/\n\
                 location = /var/cache/binpkgs\nverify-signature = false\n"
            )
        );
        assert!(
            binrepos_conf(Some(&directory_binrepo(true)))
                .contains("sync-uri = file:///var/cache/gib-binhost\nlocation = /var/cache/binpkgs\nverify-signature = true\n")
        );
    }
}
