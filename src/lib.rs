//! gib: build tiny distroless OCI images from Gentoo, rootless, with no container runtime.
//!
//! The folders are the pipeline:
//! `config -> plan -> stage3 -> sandbox -> emerge -> rootfs -> oci -> output`.
//! `build/` runs a plan through them; `cli/` holds one file per subcommand; `printer` is the
//! only place that writes to the terminal; `rootfs_tools` is the contract with the shell of
//! `rootfs-tools/` that runs inside the builder.

pub mod build;
pub mod cache;
pub mod cli;
pub mod config;
pub mod download;
pub mod emerge;
pub mod gentoo;
pub mod http;
pub mod jobs;
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
