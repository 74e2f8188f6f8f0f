//! Everything gib knows about Gentoo in one place: package atoms and versions, make.conf and
//! package.use generation, the package database (/var/db/pkg).

pub mod atom;
pub mod license;
pub mod portage_conf;
pub mod vdb;
pub mod version;
