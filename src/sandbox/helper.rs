//! The re-executed helper process that creates the namespaces.

use std::process::ExitCode;

/// When this process was started as gib's sandbox helper, run it and return its exit code.
pub fn run_if_helper() -> Option<ExitCode> {
    None
}
