//! A minimal, deterministic tar encoder: ustar headers plus PAX extended headers.
//!
//! Written by hand rather than with the `tar` crate's `Builder` because layers need full control
//! of every header byte: PAX (not GNU `@LongLink`) for long or non-UTF-8/non-ASCII names and
//! large values, `SCHILY.xattr.*` records, no uname/gname, and nothing taken from the host
//! clock or user database. Reading tars is left to the `tar` crate.

use std::io::{self, Write};

const BLOCK: usize = 512;

/// The kind of a tar entry, with what only that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File { size: u64 },
    HardLink { target: Vec<u8> },
    Symlink { target: Vec<u8> },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Directory,
    Fifo,
}

/// Everything one header says about an entry. `path` is relative, without a leading `/`;
/// directories get their trailing `/` added by the encoder.
#[derive(Debug, Clone)]
pub struct EntryHeader {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
    /// Extended attributes, in the order they are to be written (sorted by the caller).
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Encodes entries onto a writer. The caller writes file contents with [`TarStream::write_data`]
/// right after a `File` header, exactly `size` bytes, then calls [`TarStream::end_data`].
pub struct TarStream<W: Write> {
    out: W,
}

impl<W: Write> TarStream<W> {
    pub fn new(out: W) -> Self {
        TarStream { out }
    }

    /// Write the header of one entry (preceded by a PAX header when ustar cannot hold it).
    pub fn append_header(&mut self, entry: &EntryHeader) -> io::Result<()> {
        let mut path = entry.path.clone();
        if entry.kind == EntryKind::Directory && !path.ends_with(b"/") {
            path.push(b'/');
        }
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut block = [0u8; BLOCK];

        // Name: ustar name, or prefix + name, or a PAX `path` record.
        let ascii = path.iter().all(|b| b.is_ascii() && *b != 0);
        match split_ustar_path(&path).filter(|_| ascii) {
            Some((prefix, name)) => {
                block[0..name.len()].copy_from_slice(name);
                block[345..345 + prefix.len()].copy_from_slice(prefix);
            }
            None => {
                pax.push(("path".into(), path.clone()));
                let n = path.len().min(100);
                block[0..n].copy_from_slice(&path[..n]);
            }
        }

        let (type_flag, size, link): (u8, u64, Option<&[u8]>) = match &entry.kind {
            EntryKind::File { size } => (b'0', *size, None),
            EntryKind::HardLink { target } => (b'1', 0, Some(target)),
            EntryKind::Symlink { target } => (b'2', 0, Some(target)),
            EntryKind::CharDevice { .. } => (b'3', 0, None),
            EntryKind::BlockDevice { .. } => (b'4', 0, None),
            EntryKind::Directory => (b'5', 0, None),
            EntryKind::Fifo => (b'6', 0, None),
        };
        if let Some(link) = link {
            let ascii = link.iter().all(|b| b.is_ascii() && *b != 0);
            if link.len() <= 100 && ascii {
                block[157..157 + link.len()].copy_from_slice(link);
            } else {
                pax.push(("linkpath".into(), link.to_vec()));
                let n = link.len().min(100);
                block[157..157 + n].copy_from_slice(&link[..n]);
            }
        }

        put_octal(&mut block[100..108], u64::from(entry.mode & 0o7777));
        put_numeric(&mut block[108..116], entry.uid, "uid", &mut pax);
        put_numeric(&mut block[116..124], entry.gid, "gid", &mut pax);
        put_numeric(&mut block[124..136], size, "size", &mut pax);
        // Negative mtimes are written as 0: no layer needs dates before 1970.
        let mtime = u64::try_from(entry.mtime).unwrap_or(0);
        put_numeric(&mut block[136..148], mtime, "mtime", &mut pax);
        block[156] = type_flag;
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        if let EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } =
            &entry.kind
        {
            put_numeric(&mut block[329..337], u64::from(*major), "", &mut pax);
            put_numeric(&mut block[337..345], u64::from(*minor), "", &mut pax);
        }
        for (key, value) in &entry.xattrs {
            pax.push((format!("SCHILY.xattr.{key}"), value.clone()));
        }

        if !pax.is_empty() {
            self.write_pax(&pax)?;
        }
        finish_checksum(&mut block);
        self.out.write_all(&block)
    }

    /// Write part of the current file's contents.
    pub fn write_data(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)
    }

    /// Pad the current file's contents (of `size` bytes) to a whole block.
    pub fn end_data(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// The two zero blocks that end an archive; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; BLOCK * 2])?;
        Ok(self.out)
    }

    fn write_pax(&mut self, records: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut body = Vec::new();
        for (key, value) in records {
            body.extend_from_slice(&pax_record(key, value));
        }
        let mut block = [0u8; BLOCK];
        // A fixed name keeps the stream independent of pid or entry name (readers ignore it).
        let name = b"././@PaxHeader";
        block[..name.len()].copy_from_slice(name);
        put_octal(&mut block[100..108], 0o644);
        put_octal(&mut block[108..116], 0);
        put_octal(&mut block[116..124], 0);
        put_octal(&mut block[124..136], body.len() as u64);
        put_octal(&mut block[136..148], 0);
        block[156] = b'x';
        block[257..263].copy_from_slice(b"ustar\0");
        block[263..265].copy_from_slice(b"00");
        finish_checksum(&mut block);
        self.out.write_all(&block)?;
        self.out.write_all(&body)?;
        self.end_data(body.len() as u64)
    }
}

/// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut record = format!("{len} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// Split a path into ustar's 155-byte prefix and 100-byte name, at a `/`.
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((&[], path));
    }
    if path.len() > 256 {
        return None;
    }
    // The trailing `/` of a directory belongs to the name part.
    let search_end = path.len().saturating_sub(1);
    (0..search_end).rev().find_map(|i| {
        (path[i] == b'/' && i <= 155 && path.len() - i - 1 <= 100 && path.len() - i - 1 > 0)
            .then(|| (&path[..i], &path[i + 1..]))
    })
}

/// Write `value` as a NUL-terminated octal field, or 0 plus a PAX record when it does not fit.
fn put_numeric(field: &mut [u8], value: u64, pax_key: &str, pax: &mut Vec<(String, Vec<u8>)>) {
    let max = (1u64 << (3 * (field.len() as u32 - 1))) - 1;
    if value <= max {
        put_octal(field, value);
    } else {
        put_octal(field, 0);
        if !pax_key.is_empty() {
            pax.push((pax_key.to_string(), value.to_string().into_bytes()));
        }
    }
}

fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn finish_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    block[148..156].copy_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str, kind: EntryKind) -> EntryHeader {
        EntryHeader {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o4755,
            uid: 250,
            gid: 65534,
            mtime: 1_700_000_000,
            xattrs: vec![("user.k".into(), b"v".to_vec())],
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        // 4 + 94 + 3 = 101 bytes without the length: "101" would make it 104, "104" fits.
        let rec = pax_record("path", &[b'x'; 94]);
        assert!(rec.starts_with(b"104 path="));
        assert_eq!(rec.len(), 104);
    }

    #[test]
    fn split_long_paths() {
        let p = format!("{}/{}", "d".repeat(150), "f".repeat(90));
        let (prefix, name) = split_ustar_path(p.as_bytes()).unwrap();
        assert_eq!(prefix.len(), 150);
        assert_eq!(name.len(), 90);
        assert!(split_ustar_path("x".repeat(200).as_bytes()).is_none());
    }

    /// The `tar` crate (a reader nobody here wrote) reads back what the encoder wrote.
    #[test]
    fn tar_crate_reads_entries_back() {
        let long = format!("{}/é-{}", "dir".repeat(60), "n".repeat(120));
        let mut stream = TarStream::new(Vec::new());
        stream
            .append_header(&header("d", EntryKind::Directory))
            .unwrap();
        stream
            .append_header(&header(&long, EntryKind::File { size: 3 }))
            .unwrap();
        stream.write_data(b"abc").unwrap();
        stream.end_data(3).unwrap();
        stream
            .append_header(&header(
                "l",
                EntryKind::Symlink {
                    target: long.as_bytes().to_vec(),
                },
            ))
            .unwrap();
        stream
            .append_header(&header("c", EntryKind::CharDevice { major: 1, minor: 3 }))
            .unwrap();
        let bytes = stream.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let h = entry.header().clone();
            assert_eq!(h.mode().unwrap(), 0o4755);
            assert_eq!(h.uid().unwrap(), 250);
            assert_eq!(h.gid().unwrap(), 65534);
            let xattr = entry
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|e| e.unwrap())
                .find(|e| e.key() == Ok("SCHILY.xattr.user.k"))
                .map(|e| e.value_bytes().to_vec());
            assert_eq!(xattr.as_deref(), Some(&b"v"[..]));
            if let Some(link) = entry.link_name().unwrap() {
                assert_eq!(link.to_string_lossy(), long);
            }
            if h.entry_type() == tar::EntryType::Char {
                assert_eq!(h.device_major().unwrap(), Some(1));
                assert_eq!(h.device_minor().unwrap(), Some(3));
            }
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            seen.push((path, data));
        }
        assert_eq!(seen[0].0, "d/");
        assert_eq!(seen[1], (long.clone(), b"abc".to_vec()));
        assert_eq!(seen[2].0, "l");
        assert_eq!(seen[3].0, "c");
    }

    #[test]
    fn large_values_go_to_pax() {
        let mut stream = TarStream::new(Vec::new());
        let mut h = header("big", EntryKind::File { size: 0 });
        h.uid = 5_000_000;
        h.xattrs.clear();
        stream.append_header(&h).unwrap();
        let bytes = stream.finish().unwrap();
        let text = String::from_utf8_lossy(&bytes[512..1024]);
        assert!(text.starts_with("15 uid=5000000\n"), "{text}");
    }
}
