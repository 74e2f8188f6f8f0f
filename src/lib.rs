//! gib: build tiny distroless OCI images from Gentoo, rootless, with no container runtime.
//!
//! The folders are the pipeline: `config -> plan -> stage3 / repository -> sandbox -> emerge
//! -> rootfs -> oci -> output`, run by `build`. The module map, top layer first; a module
//! imports only modules below it (the `architecture` integration test keeps it so):
//!
//! | module | owns |
//! |---|---|
//! | `cli` | the arguments of each subcommand and printing its outcome |
//! | `build` | running a plan: each image built, reused or pulled (its cache entry, input key, layers, image, SBOM, `test:`), then the outputs |
//! | `output` | where finished images go: OCI layout, `docker load` archive and SBOM files, registry push |
//! | `plan` | what to build and in which order, and the Portage files each build gets |
//! | `lock` | gib.lock: the stage3, repository snapshots and binhost index a build pins |
//! | `config` | gib.yaml: reading, checking with file:line:column errors, defaults |
//! | `stage3` | the stage3: flavors, download, signature and checksum, unpacked once per digest |
//! | `repository` | the ebuild repository and overlays: git, rsync, webrsync, local, pins, snapshot time |
//! | `jobs` | the one list of work run inside gib's user namespace, and its dispatch |
//! | `emerge` | emerge in the builder: its command, progress, distfiles |
//! | `rootfs` | finishing a root: accounts and files, changes over the parent, usage, SBOM documents |
//! | `registry` | the OCI distribution client: auth, pull, push, referrers |
//! | `oci` | OCI bytes: the spec vocabulary (`oci::spec`), layers, images, blobs, artifacts |
//! | `gentoo` | Gentoo knowledge: atoms, versions, the package database, licenses, Portage text |
//! | `tarball` | unpacking tarballs nobody vetted, without following their links out |
//! | `openpgp` | signatures and the keys gib trusts |
//! | `download` | downloads with retries, resumption and checksums |
//! | `http` | the one HTTP agent configuration, its bounds and certificate roots |
//! | `cache` | the cache directory: its kinds of entry, publishing, locks |
//! | `sandbox` | namespaces, id maps, mounts, confinement, the helper protocol, symlink-safe file access |
//! | `rootfs_tools` | the contract with the shell of `rootfs-tools/` that runs in the builder |
//! | `printer` | the terminal: status, progress, warnings, errors with their hints |

pub mod build;
pub mod cache;
pub mod cli;
pub mod config;
pub mod download;
pub mod emerge;
pub mod gentoo;
pub mod http;
pub mod jobs;
pub mod lock;
pub mod oci;
pub mod openpgp;
pub mod output;
pub mod plan;
pub mod printer;
pub mod registry;
pub mod repository;
pub mod rootfs;
pub mod rootfs_tools;
pub mod sandbox;
pub mod stage3;
pub mod tarball;
