//! What the dynamic loader needs of one ELF file: its program interpreter (`PT_INTERP`), the
//! sonames it names (`DT_NEEDED`), where it asks to look for them (`DT_RPATH`, `DT_RUNPATH`),
//! and which libraries it can load at all (class and machine: ld.so skips a library of
//! another ABI, see ld.so(8)). Read with goblin, from bytes the caller read with a bound.
//!
//! Not for: finding the libraries in the image (`lint`), symbol versions.

use goblin::elf::Elf;
use goblin::elf::header::{EI_CLASS, EI_DATA, ELFCLASS64, ELFMAG, SELFMAG, SIZEOF_IDENT};

/// The ABI of an ELF file, as far as the loader's choice of a library goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abi {
    pub is_64: bool,
    pub little_endian: bool,
    pub machine: u16,
}

/// What the loader reads of one ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dynamic {
    pub abi: Abi,
    pub interpreter: Option<String>,
    pub needed: Vec<String>,
    /// `DT_RUNPATH` when the file has one, else `DT_RPATH` (ld.so ignores RPATH when there is
    /// a RUNPATH), each entry as written (`$ORIGIN/../lib`).
    pub search: Vec<String>,
}

/// Bytes enough for an ELF header of either class.
pub const HEADER_BYTES: u64 = 64;

/// Whether `bytes` start with the ELF magic.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.len() >= SELFMAG && bytes[..SELFMAG] == ELFMAG[..]
}

/// The ABI of the ELF file whose first bytes are `header`; `None` for anything else.
pub fn abi(header: &[u8]) -> Option<Abi> {
    if !is_elf(header) || header.len() < SIZEOF_IDENT + 4 {
        return None;
    }
    let little_endian = header[EI_DATA] == goblin::elf::header::ELFDATA2LSB;
    let machine = [header[SIZEOF_IDENT + 2], header[SIZEOF_IDENT + 3]];
    Some(Abi {
        is_64: header[EI_CLASS] == ELFCLASS64,
        little_endian,
        machine: if little_endian {
            u16::from_le_bytes(machine)
        } else {
            u16::from_be_bytes(machine)
        },
    })
}

/// The dynamic section and interpreter of the ELF file `bytes`, or why they cannot be read.
/// goblin checks every offset against the bytes; a panic in it on a hostile file is caught
/// and reported as unreadable, never left to end gib.
pub fn read_dynamic(bytes: &[u8]) -> Result<Dynamic, String> {
    let parsed = std::panic::catch_unwind(|| {
        Elf::parse(bytes).map(|elf| Dynamic {
            abi: Abi {
                is_64: elf.is_64,
                little_endian: elf.little_endian,
                machine: elf.header.e_machine,
            },
            interpreter: elf.interpreter.map(str::to_string),
            needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
            search: if elf.runpaths.is_empty() {
                split_paths(&elf.rpaths)
            } else {
                split_paths(&elf.runpaths)
            },
        })
    });
    match parsed {
        Ok(Ok(dynamic)) => Ok(dynamic),
        Ok(Err(err)) => Err(format!("malformed ELF: {err}")),
        Err(_) => Err("malformed ELF: the reader gave up on it".to_string()),
    }
}

/// RPATH and RUNPATH entries are colon-separated lists.
fn split_paths(lists: &[&str]) -> Vec<String> {
    lists
        .iter()
        .flat_map(|list| list.split(':'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// A RUNPATH/RPATH entry with its dynamic string tokens replaced (ld.so(8)): `$ORIGIN` by
/// the directory of the file (inside the image), `$LIB` by `lib64` or `lib`. `None` for an
/// entry with `$PLATFORM`, which depends on the machine that runs it.
pub fn expand_search_entry(entry: &str, origin: &str, abi: Abi) -> Option<String> {
    let lib = if abi.is_64 { "lib64" } else { "lib" };
    let expanded = entry
        .replace("${ORIGIN}", origin)
        .replace("$ORIGIN", origin)
        .replace("${LIB}", lib)
        .replace("$LIB", lib);
    (!expanded.contains('$')).then_some(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dynamically linked program of the host (the test machine's own /bin/true).
    fn host_program() -> Vec<u8> {
        std::fs::read("/bin/true").expect("the host has /bin/true")
    }

    #[test]
    fn reads_the_needed_sonames_and_interpreter_of_a_real_program() {
        let bytes = host_program();
        assert!(is_elf(&bytes));
        let dynamic = read_dynamic(&bytes).unwrap();
        assert!(
            dynamic.needed.contains(&"libc.so.6".to_string()),
            "{dynamic:?}"
        );
        let interpreter = dynamic.interpreter.as_deref().unwrap();
        assert!(interpreter.starts_with("/lib"), "{interpreter}");
        assert_eq!(abi(&bytes[..64]), Some(dynamic.abi));
        assert!(dynamic.abi.is_64 && dynamic.abi.little_endian);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let bytes = host_program();
        // Cut short, and with every header offset garbled.
        for cut in [5, 20, 64, 200, bytes.len() / 3] {
            assert!(read_dynamic(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut garbled = bytes.clone();
        for offset in [0x20, 0x28, 0x36, 0x38, 0x3c] {
            garbled[offset..offset + 2].copy_from_slice(&[0xff, 0x7f]);
        }
        assert!(read_dynamic(&garbled).is_err());
        assert!(!is_elf(b"#!/bin/sh\n"));
        assert_eq!(abi(b"\x7fELF"), None);
    }

    #[test]
    fn origin_and_lib_are_expanded() {
        let abi = Abi {
            is_64: true,
            little_endian: true,
            machine: 62,
        };
        assert_eq!(
            expand_search_entry("$ORIGIN/../$LIB", "/opt/app/bin", abi).as_deref(),
            Some("/opt/app/bin/../lib64")
        );
        assert_eq!(
            expand_search_entry("${ORIGIN}/lib", "/usr/bin", abi).as_deref(),
            Some("/usr/bin/lib")
        );
        assert_eq!(expand_search_entry("/opt/$PLATFORM", "/", abi), None);
    }
}
