//! The rootless sandbox: user, mount, pid, uts and ipc namespaces entered by gib itself.
//! The only module with unsafe code and raw syscalls. Knows nothing of OCI or Gentoo.

pub mod helper;
