//! The `gib` binary: the library's command line (see `src/lib.rs` for the module map).

use std::process::ExitCode;

fn main() -> ExitCode {
    // The sandbox helper must run before anything starts a thread: unshare(CLONE_NEWUSER)
    // fails with EINVAL in a multi-threaded process.
    if let Some(code) = gib::sandbox::helper::run_if_helper() {
        return code;
    }
    gib::cli::main()
}
