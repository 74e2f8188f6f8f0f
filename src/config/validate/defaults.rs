//! The values gib.yaml's keys take when the file leaves them out, each with why.

use super::*;

/// Where stage3 tarballs and their DIGESTS come from unless `mirror:` says otherwise.
pub const DEFAULT_STAGE3_MIRROR: &str = crate::gentoo::MIRROR;
/// The main repository's `uri` for `sync_type: git` without one.
pub const DEFAULT_PORTAGE_GIT_URI: &str = crate::gentoo::GIT_URI;
/// The main repository's `uri` for `sync_type: rsync` without one.
pub const DEFAULT_PORTAGE_RSYNC_URI: &str = crate::gentoo::RSYNC_URI;
/// Layers for `strategy: per-package` without `budget:`: enough to split the big packages
/// out of the shared base, few enough to stay far below overlayfs' layer limits.
pub const DEFAULT_PER_PACKAGE_BUDGET: u32 = 8;

/// `sync_type: git`: a git mirror gives an exact, cheap-to-update snapshot whose commit date
/// is the tag rule's snapshot date; `none` would need a stage3 that ships a tree, and current
/// stage3 tarballs do not.
pub fn default_sync_type() -> SyncType {
    SyncType::Git
}

/// No `portage:`: the main repository from its official git mirror, unpinned, for the
/// reason given at [`default_sync_type`].
pub fn default_portage() -> Portage {
    Portage {
        sync_type: default_sync_type(),
        uri: Some(DEFAULT_PORTAGE_GIT_URI.to_string()),
        pin: None,
        ca_certificate: None,
    }
}

/// No `binhost:`: build from source. gib's images change USE flags (minimal, no systemd…),
/// so most official binary packages would not match and be rebuilt anyway, and using them
/// adds a second source of trust. Rebuilds stay fast through gib's own PKGDIR cache.
pub fn default_binhost() -> Binhost {
    Binhost::None
}

/// `keep_package_db: true`: vulnerability scanners (trivy, grype) read /var/db/pkg to list
/// what is installed.
pub fn default_keep_package_db() -> bool {
    true
}

/// No `layering:`: `strategy: single`, one layer per image; per-package layers are asked for.
pub fn default_layering() -> Layering {
    Layering {
        strategy: LayeringStrategy::Single,
        budget: 1,
    }
}

/// No `build:`: Portage's own choices (threads, USE, keywords, licenses), the default layer
/// compression, the distroless trim (no headers, static libraries or service files), the
/// package database kept and no binary host, for the reasons given above.
pub fn default_build() -> Build {
    Build {
        threads: None,
        max_parallel_jobs: None,
        parallel_images: None,
        global_use_flags: UseFlags::default(),
        package_use_flags: BTreeMap::new(),
        accept_keywords: BTreeMap::new(),
        accept_licenses: BTreeMap::new(),
        compression: Compression::default(),
        keep_headers: false,
        keep_static_libs: false,
        keep_service_files: false,
        keep_package_db: default_keep_package_db(),
        binhost: default_binhost(),
        distfile_mirrors: None,
        lint: Default::default(),
    }
}

/// No `audit:` (or no `fail_on:`): a high-impact advisory that affects a package the image
/// ships fails its build, so nothing with a known remote hole leaves gib unnoticed; lower ones
/// are reported. ::gentoo carries advisories back to 2003, but they name versions long gone
/// from a current snapshot: a fresh build hits one only when it really ships an affected
/// version, and `ignore:` with a reason accepts it.
pub fn default_audit() -> AuditPolicy {
    AuditPolicy {
        fail_on: Some(Severity::High),
        ignore: Vec::new(),
    }
}
