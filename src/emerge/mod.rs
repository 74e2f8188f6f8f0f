//! Running `emerge --root=/staging` for an image's atoms inside the builder root: the
//! command line, the environment, and reading its output for progress and failures.

pub mod distfiles;
pub mod progress;
pub mod run;
