//! gib: build tiny distroless OCI images from Gentoo, rootless, with no container runtime.
//!
//! The folders are the pipeline:
//! `config -> plan -> stage3 -> sandbox -> emerge -> rootfs -> oci -> output`.
//! `build/` runs a plan through them; `cli/` holds one file per subcommand; `printer` is the
//! only place that writes to the terminal; `rootfs_tools` is the contract with the shell of
//! `rootfs-tools/` that runs inside the builder.

mod build;
mod cache;
mod cli;
mod config;
mod download;
mod emerge;
mod gentoo;
mod http;
mod jobs;
mod oci;
mod openpgp;
mod output;
mod plan;
mod printer;
mod registry;
mod repository;
mod rootfs;
mod rootfs_tools;
mod sandbox;
mod stage3;
mod tarball;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The sandbox helper must run before anything starts a thread: unshare(CLONE_NEWUSER)
    // fails with EINVAL in a multi-threaded process.
    if let Some(code) = sandbox::helper::run_if_helper() {
        return code;
    }
    cli::main()
}
