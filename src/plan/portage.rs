//! gib.yaml's `build:`, `repositories:` and `stage3:` read as Portage configuration: the
//! plain data `gentoo::portage_conf` turns into the builder's files.
//!
//! Not here: the text of those files (`gentoo::portage_conf`), writing them (`emerge`).

use anyhow::Result;

use crate::config::{Binhost, Build, Repository, Stage3};
use crate::gentoo::portage_conf::{
    Binrepo, MakeConf, PortageFiles, RepoEntry, binrepos_conf, directory_binrepo,
    make_conf_fragment, official_binrepo, package_accept_keywords, package_use, repos_conf,
};

/// The Portage files of a build. `threads` and `jobs` are the resolved values (the build's or
/// the defaults); the stage3 chooses the official binhost's architecture and mirror.
pub fn portage_files(
    build: &Build,
    repositories: &[Repository],
    stage3: Option<&Stage3>,
    platform: &crate::oci::spec::Platform,
    threads: u32,
    jobs: u32,
) -> Result<PortageFiles> {
    let flags = &build.global_use_flags;
    let use_flags: Vec<String> = flags
        .add
        .iter()
        .cloned()
        .chain(flags.remove.iter().map(|f| format!("-{f}")))
        .collect();
    let make_conf = MakeConf {
        threads,
        jobs,
        use_flags: &use_flags,
        gentoo_mirrors: build.distfile_mirrors.as_deref(),
    };
    let repos: Vec<RepoEntry> = repositories
        .iter()
        .map(|r| RepoEntry {
            name: &r.name,
            priority: r.priority,
        })
        .collect();
    let binhost_dir = match &build.binhost {
        Binhost::Directory { path, .. } => Some(path.clone()),
        _ => None,
    };
    Ok(PortageFiles {
        make_conf: make_conf_fragment(&make_conf),
        package_use: package_use(&build.package_use_flags),
        package_accept_keywords: package_accept_keywords(&build.accept_keywords),
        package_license: package_use(&build.accept_licenses),
        repos_conf: repos_conf(&repos),
        binrepos_conf: binrepos_conf(binrepo(&build.binhost, stage3, platform)?.as_ref()),
        binhost_dir,
    })
}

/// The mirror and flavor of the official binhost for a build in `stage3` for `platform`: a
/// flavor's own, else (a stage3 given by URL or file, whose flavor is not known before
/// unpacking) the platform's architecture, which is not always the host's (an emulated leg).
pub fn official_flavor<'s>(
    stage3: Option<&'s Stage3>,
    platform: &crate::oci::spec::Platform,
) -> (Option<&'s str>, Option<&'s str>) {
    match stage3 {
        Some(Stage3::Flavor { mirror, flavor, .. }) => {
            (Some(mirror.as_str()), Some(flavor.as_str()))
        }
        _ => (None, crate::stage3::arch::of(platform).map(|a| a.gentoo)),
    }
}

/// `build.binhost` as the host binrepos.conf names; `None` for none.
fn binrepo(
    binhost: &Binhost,
    stage3: Option<&Stage3>,
    platform: &crate::oci::spec::Platform,
) -> Result<Option<Binrepo>> {
    Ok(match binhost {
        Binhost::None => None,
        Binhost::Official => {
            let (mirror, flavor) = official_flavor(stage3, platform);
            Some(official_binrepo(mirror, flavor)?)
        }
        Binhost::Url {
            uri,
            verify_signature,
        } => Some(Binrepo {
            uri: uri.clone(),
            verify_signature: *verify_signature,
        }),
        Binhost::Directory {
            verify_signature, ..
        } => Some(directory_binrepo(*verify_signature)),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::config::{Compression, SyncType, UseFlags};
    use crate::gentoo::portage_conf::BINREPOS_CONF_PATH;

    fn build() -> Build {
        Build {
            threads: Some(12),
            max_parallel_jobs: Some(4),
            parallel_images: None,
            global_use_flags: UseFlags {
                add: vec!["minimal".into()],
                remove: vec!["systemd".into(), "X".into()],
            },
            package_use_flags: BTreeMap::from([("app-misc/a".to_string(), vec!["x".to_string()])]),
            accept_keywords: BTreeMap::from([("dev-lang/zig".to_string(), vec![])]),
            compression: Compression::Gzip,
            keep_headers: false,
            keep_static_libs: false,
            keep_service_files: false,
            keep_package_db: true,
            accept_licenses: BTreeMap::from([(
                "app-misc/unfree".to_string(),
                vec!["gib-EULA".to_string()],
            )]),
            binhost: Binhost::None,
            distfile_mirrors: Some(vec!["http://127.0.0.1:8080".into()]),
            lint: Default::default(),
        }
    }

    #[test]
    fn the_build_section_becomes_portage_text() {
        let repo = Repository {
            name: "mine".into(),
            sync_type: SyncType::Git,
            uri: Some("https://example.org/x.git".into()),
            ca_certificate: None,
            priority: Some(60),
        };
        let files = portage_files(
            &build(),
            &[repo],
            None,
            &crate::oci::spec::Platform::host(),
            12,
            4,
        )
        .unwrap();
        assert!(
            files
                .make_conf
                .contains("MAKEOPTS=\"-j12\"\nEMERGE_DEFAULT_OPTS=\"--jobs=4 --load-average=4\"\nUSE=\"${USE} minimal -systemd -X\"\n"),
            "{}",
            files.make_conf
        );
        assert!(
            files
                .make_conf
                .ends_with("GENTOO_MIRRORS=\"http://127.0.0.1:8080\"\n")
        );
        assert!(files.package_use.ends_with("\napp-misc/a x\n"));
        assert!(files.package_accept_keywords.ends_with("\ndev-lang/zig\n"));
        assert!(
            files
                .package_license
                .ends_with("\napp-misc/unfree gib-EULA\n")
        );
        assert!(files.repos_conf.contains("\n[mine]\n"));
        assert!(files.repos_conf.ends_with("priority = 60\n"));
        // No binhost, no binrepos.conf (and so no --getbinpkg).
        assert!(files.files().iter().all(|f| f.0 != BINREPOS_CONF_PATH));
    }

    #[test]
    fn official_binhost_follows_the_stage3_flavor_and_mirror() {
        let stage3 = Stage3::Flavor {
            flavor: "amd64-musl".into(),
            mirror: "https://mirror.example.org/gentoo/".into(),
            pin: None,
        };
        assert_eq!(
            binrepo(
                &Binhost::Official,
                Some(&stage3),
                &crate::oci::spec::Platform::host()
            )
            .unwrap(),
            Some(Binrepo {
                uri:
                    "https://mirror.example.org/gentoo/releases/amd64/binpackages/23.0/x86-64_musl/"
                        .into(),
                verify_signature: true,
            })
        );
        let stage3 = Stage3::Flavor {
            flavor: "riscv64-openrc".into(),
            mirror: "https://mirror.example.org/gentoo/".into(),
            pin: None,
        };
        let err = binrepo(
            &Binhost::Official,
            Some(&stage3),
            &crate::oci::spec::Platform::host(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("riscv64-openrc"), "{err}");
    }

    /// A stage3 by path has no flavor: the official binhost is the build's platform's, which
    /// an emulated leg does not share with the host.
    #[test]
    fn official_binhost_of_a_stage3_file_is_the_platforms() {
        let stage3 = Stage3::Path {
            path: "/x/stage3.tar.xz".into(),
            sha512: None,
        };
        for (platform, path) in [
            ("linux/arm64", "releases/arm64/binpackages/23.0/arm64/"),
            ("linux/amd64", "releases/amd64/binpackages/23.0/x86-64/"),
        ] {
            let platform = crate::oci::spec::Platform::parse(platform).unwrap();
            let repo = binrepo(&Binhost::Official, Some(&stage3), &platform)
                .unwrap()
                .unwrap();
            assert!(repo.uri.ends_with(path), "{}", repo.uri);
        }
    }

    #[test]
    fn own_binhosts_by_url_or_directory() {
        let url = Binhost::Url {
            uri: "http://cache.example.org/binpkgs/".into(),
            verify_signature: false,
        };
        assert_eq!(
            binrepo(&url, None, &crate::oci::spec::Platform::host()).unwrap(),
            Some(Binrepo {
                uri: "http://cache.example.org/binpkgs/".into(),
                verify_signature: false,
            })
        );
        let mut b = build();
        b.binhost = Binhost::Directory {
            path: "/srv/binpkgs".into(),
            verify_signature: true,
        };
        let files =
            portage_files(&b, &[], None, &crate::oci::spec::Platform::host(), 1, 1).unwrap();
        assert_eq!(files.binhost_dir, Some(PathBuf::from("/srv/binpkgs")));
        assert!(
            files
                .binrepos_conf
                .contains("sync-uri = file:///var/cache/gib-binhost\n")
        );
        assert_eq!(files.files().last().map(|f| f.0), Some(BINREPOS_CONF_PATH));
    }
}
