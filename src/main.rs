//! gib: build tiny distroless OCI images from Gentoo, rootless, with no container runtime.
//!
//! The folders are the pipeline:
//! `config -> plan -> stage3 -> sandbox -> emerge -> rootfs -> oci -> output`.
//! `cli/` holds one file per subcommand; `printer` is the only place that writes to the terminal.

mod build;
#[allow(dead_code)] // wired up as the pipeline lands
mod cache;
mod cli;
#[allow(dead_code)]
mod config;
#[allow(dead_code)] // wired up as the pipeline lands
mod download;
#[allow(dead_code)] // wired up as the pipeline lands
mod emerge;
#[allow(dead_code)] // wired up as the pipeline lands
mod gentoo;
mod oci;
mod output;
#[allow(dead_code)] // wired up as the pipeline lands
mod plan;
#[allow(dead_code)] // wired up as the pipeline lands
mod printer;
#[allow(dead_code)] // wired up as the pipeline lands
mod registry;
#[allow(dead_code)] // wired up as the pipeline lands
mod repository;
#[allow(dead_code)] // wired up as the pipeline lands
mod rootfs;
#[allow(dead_code)] // wired up as the pipeline lands
mod sandbox;
#[allow(dead_code)] // wired up as the pipeline lands
mod stage3;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The sandbox helper must run before anything starts a thread: unshare(CLONE_NEWUSER)
    // fails with EINVAL in a multi-threaded process.
    if let Some(code) = sandbox::helper::run_if_helper() {
        return code;
    }
    cli::main()
}
