//! Everything gib knows about Gentoo in one place: package atoms and versions, make.conf and
//! package.use generation, the package database (/var/db/pkg), security advisories (GLSAs).

/// Gentoo's mirror redirector: stage3 tarballs and their DIGESTS, the webrsync snapshots and
/// the official binary packages all live under it.
pub const MIRROR: &str = "https://distfiles.gentoo.org";
/// The ready-to-use git mirror of ::gentoo: it ships metadata/md5-cache, so no `egencache`
/// run is needed, and a commit pins a snapshot exactly.
pub const GIT_URI: &str = "https://github.com/gentoo-mirror/gentoo.git";
/// Portage's own default rsync source of ::gentoo.
pub const RSYNC_URI: &str = "rsync://rsync.gentoo.org/gentoo-portage";

pub mod atom;
pub mod glsa;
pub mod license;
pub mod portage_conf;
pub mod vdb;
pub mod version;
