//! binfmt_misc (Documentation/admin-guide/binfmt-misc.rst): whether the kernel runs another
//! architecture's binaries through a qemu-user interpreter that also works inside gib's
//! namespaces.
//!
//! Without the `F` (fix binary) flag the kernel opens the interpreter by path when a foreign
//! binary is executed, and after the pivot into a builder root that path names nothing: the
//! build dies with ENOENT on its first foreign binary. With `F` it was opened at registration
//! and is used from any mount namespace. So a foreign platform needs the entry enabled with
//! `F`, checked before anything is built.

use std::path::{Path, PathBuf};

/// Where the kernel shows its registrations.
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// One registration as `/proc/sys/fs/binfmt_misc/<name>` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: String,
    /// Hex, as shown; `None` for an extension match.
    pub magic: Option<String>,
    pub mask: Option<String>,
}

impl Registration {
    /// The kernel's text for an entry (`enabled`, `interpreter …`, `flags: …`, …).
    pub fn parse(text: &str) -> Registration {
        let mut entry = Registration {
            enabled: false,
            interpreter: String::new(),
            flags: String::new(),
            offset: String::new(),
            magic: None,
            mask: None,
        };
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                entry.enabled = true;
            } else if let Some(v) = line.strip_prefix("interpreter ") {
                entry.interpreter = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("flags:") {
                entry.flags = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("offset ") {
                entry.offset = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("magic ") {
                entry.magic = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("mask ") {
                entry.mask = Some(v.trim().to_string());
            }
        }
        entry
    }

    /// Whether the interpreter is usable from inside a namespace with another root.
    pub fn fixed(&self) -> bool {
        self.flags.contains('F')
    }

    /// The line for `/proc/sys/fs/binfmt_misc/register` that registers the same match and
    /// interpreter with `F` added, after the old entry is removed (`echo -1 > <entry>`).
    pub fn register_line_with_fix(&self, name: &str) -> Option<String> {
        let escaped = |hex: &str| -> Option<String> {
            if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            Some(
                hex.as_bytes()
                    .chunks(2)
                    .map(|pair| format!("\\x{}", String::from_utf8_lossy(pair)))
                    .collect(),
            )
        };
        let magic = escaped(self.magic.as_deref()?)?;
        let mask = escaped(self.mask.as_deref().unwrap_or(""))?;
        let mut flags = self.flags.clone();
        flags.push('F');
        let offset = if self.offset == "0" { "" } else { &self.offset };
        Some(format!(
            ":{name}:M:{offset}:{magic}:{mask}:{}:{flags}",
            self.interpreter
        ))
    }
}

/// What the kernel says of `qemu-<arch>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// binfmt_misc is not mounted (no `status` file).
    NotMounted,
    Missing,
    Present(Registration),
}

/// The registration `qemu-<qemu_arch>` (e.g. `qemu-aarch64`) in the kernel's binfmt_misc.
pub fn qemu_state(qemu_arch: &str) -> State {
    let dir = binfmt_dir();
    if !dir.join("status").exists() {
        return State::NotMounted;
    }
    match std::fs::read_to_string(dir.join(format!("qemu-{qemu_arch}"))) {
        Ok(text) => State::Present(Registration::parse(&text)),
        Err(_) => State::Missing,
    }
}

/// The kernel's directory, or (feature `test-hooks`) `GIB_TEST_BINFMT_DIR`, so a test can
/// show gib a missing registration without changing the machine's.
fn binfmt_dir() -> PathBuf {
    #[cfg(feature = "test-hooks")]
    if let Some(dir) = std::env::var_os("GIB_TEST_BINFMT_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(BINFMT_DIR).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: P\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn a_registration_without_fix_binary_and_the_line_that_adds_it() {
        let entry = Registration::parse(DEBIAN);
        assert!(entry.enabled);
        assert!(!entry.fixed());
        assert_eq!(
            entry.register_line_with_fix("qemu-aarch64").unwrap(),
            ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:PF"
        );
        let fixed = Registration::parse(&DEBIAN.replace("flags: P", "flags: PF"));
        assert!(fixed.fixed());
        assert!(!Registration::parse("disabled\nflags: F\n").enabled);
    }
}
