//! The platforms gib builds for and what Gentoo calls each: the architecture directory and
//! flavor prefix of its stage3s (`releases/arm64/…`, `arm64-openrc`) and the qemu-user
//! interpreter that runs its binaries on another host.
//!
//! Not here: OCI's names (`oci::spec::Platform`), the binfmt_misc registration
//! (`sandbox::binfmt`).

use crate::oci::spec::Platform;

/// One platform gib has a Gentoo stage3 for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// OCI's (Go's) name: `amd64`, `arm64`.
    pub oci: &'static str,
    /// Gentoo's: the `releases/<arch>` directory and the first word of a flavor.
    pub gentoo: &'static str,
    /// The qemu-user interpreter's name suffix (`qemu-aarch64`), as binfmt_misc registers it.
    pub qemu: &'static str,
    /// Its programs' ELF `e_machine` (elf(5)).
    pub elf_machine: u16,
}

/// Every platform gib builds for; `linux/<oci>` each.
pub const ARCHES: [Arch; 2] = [
    Arch {
        oci: "amd64",
        gentoo: "amd64",
        qemu: "x86_64",
        elf_machine: 62,
    },
    Arch {
        oci: "arm64",
        gentoo: "arm64",
        qemu: "aarch64",
        elf_machine: 183,
    },
];

/// The Gentoo side of a platform, if gib builds for it (Linux, no variant but arm64's `v8`).
pub fn of(platform: &Platform) -> Option<Arch> {
    if platform.os != "linux" {
        return None;
    }
    let arch = ARCHES
        .into_iter()
        .find(|a| a.oci == platform.architecture)?;
    match platform.variant.as_deref() {
        None => Some(arch),
        Some("v8") if arch.oci == "arm64" => Some(arch),
        Some(_) => None,
    }
}

/// Whether this machine runs programs for ELF `machine` under qemu-user: binfmt_misc has its
/// interpreter enabled with `F`, so it works inside gib's sandbox too.
pub fn emulated(machine: u16) -> bool {
    use crate::sandbox::binfmt::{State, qemu_state};
    let Some(arch) = ARCHES.iter().find(|a| a.elf_machine == machine) else {
        return false;
    };
    matches!(qemu_state(arch.qemu), State::Present(entry) if entry.enabled && entry.fixed())
}

/// The platforms gib builds for, as written in gib.yaml, for hints.
pub fn names() -> Vec<String> {
    ARCHES.iter().map(|a| format!("linux/{}", a.oci)).collect()
}

/// The flavor of `platform` for a flavor written for any architecture: its first word is
/// the architecture's (`amd64-openrc` -> `arm64-openrc`); a flavor whose first word is no
/// architecture gib knows is kept as written.
pub fn flavor_for(flavor: &str, platform: &Platform) -> String {
    let Some(arch) = of(platform) else {
        return flavor.to_string();
    };
    match flavor.split_once('-') {
        Some((first, rest)) if ARCHES.iter().any(|a| a.gentoo == first) => {
            format!("{}-{rest}", arch.gentoo)
        }
        _ => flavor.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    #[test]
    fn known_platforms_and_their_gentoo_names() {
        assert_eq!(of(&platform("linux/arm64")).unwrap().qemu, "aarch64");
        assert_eq!(of(&platform("linux/arm64/v8")).unwrap().gentoo, "arm64");
        assert_eq!(of(&platform("linux/amd64")).unwrap().gentoo, "amd64");
        assert!(of(&platform("linux/amd64/v3")).is_none());
        assert!(of(&platform("linux/riscv64")).is_none());
        assert!(of(&platform("windows/amd64")).is_none());
    }

    #[test]
    fn a_flavor_resolves_per_architecture() {
        let arm = platform("linux/arm64");
        let amd = platform("linux/amd64");
        assert_eq!(flavor_for("amd64-openrc", &arm), "arm64-openrc");
        assert_eq!(flavor_for("arm64-musl", &amd), "amd64-musl");
        assert_eq!(flavor_for("amd64-openrc", &amd), "amd64-openrc");
        assert_eq!(flavor_for("custom", &arm), "custom");
    }
}
