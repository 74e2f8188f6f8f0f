//! Running `emerge --root=/staging` for an image's atoms inside the builder root: the
//! command line, emerge's own environment, and reading its output for progress and failures.
//! The paths, tools and finish-root.sh settings it shares with the shell: `rootfs_tools`.

pub mod distfiles;
pub mod progress;
pub mod run;
