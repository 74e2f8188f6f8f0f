//! Stage3 tarballs: find (path, url), verify (sha512), unpack into the cache inside the
//! sandbox's user namespace so files keep their owners (portage's 250 stays 250). The result,
//! a [`Stage3Root`], is the read-only lower layer of every builder root.
//!
//! Not for: mirrors and flavors (a later issue), running anything in the root (`sandbox`).
//!
//! Cache layout: `stage3/<sha512 of the tarball>/` is a finished root; `stage3/.tmp-<sha512>`
//! the one being unpacked (under the entry's lock; a leftover of an interrupted gib is
//! replaced by the next unpack); `stage3/urls/<sha256 of the url>` the digest a URL had.

pub mod arch;
pub mod flavor;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256, Sha512};

use crate::cache::Cache;
use crate::jobs::Job;
use crate::printer::{ByteProgress, Hint, Printer, UserError, human_bytes};
use crate::sandbox;

pub use crate::tarball::UnpackSummary;

/// Where the stage3 comes from: gib.yaml's `stage3:` (config re-exports this type).
#[derive(Debug, Clone, PartialEq)]
pub enum Stage3 {
    Flavor {
        flavor: String,
        mirror: String,
        pin: Option<String>,
    },
    Url {
        url: String,
        sha512: Option<String>,
    },
    Path {
        path: PathBuf,
        sha512: Option<String>,
    },
}

/// An unpacked stage3 in the cache. Never modify it: use it as an overlay's lower dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage3Root {
    pub path: PathBuf,
    /// The sha512 of the tarball, hex.
    pub digest: String,
}

/// Make the stage3 of `source` available in the cache, unpacking (and downloading) it only
/// when no earlier run did.
pub fn prepare(source: &Stage3, cache: &Cache, printer: &Printer) -> Result<Stage3Root> {
    match source {
        Stage3::Flavor { flavor, .. } => Err(UserError::new(format!("stage3 flavor `{flavor}`: choosing a stage3 by flavor is not supported yet")).hint("give the tarball instead: `stage3: {path: ..., sha512: ...}` or `stage3: {url: ..., sha512: ...}`")),
        Stage3::Path { path, sha512 } => {
            let digest = sha512_of_file(path)?;
            check_digest(&path.display().to_string(), sha512.as_deref(), &digest, "gib.yaml")?;
            unpack_into_cache(path, &digest, cache, printer)
        }
        Stage3::Url { url, sha512 } => {
            prepare_url(url, sha512.as_deref(), "gib.yaml", false, cache, printer)
        }
    }
}

/// [`prepare`] the `url:` or `path:` stage3 of `source` whose SHA-512 gib.lock names: any
/// other file is refused.
pub fn prepare_locked(
    source: &Stage3,
    sha512: &str,
    cache: &Cache,
    printer: &Printer,
) -> Result<Stage3Root> {
    match source {
        Stage3::Path { path, .. } => {
            let digest = sha512_of_file(path)?;
            check_digest(
                &path.display().to_string(),
                Some(sha512),
                &digest,
                "gib.lock",
            )?;
            unpack_into_cache(path, &digest, cache, printer)
        }
        Stage3::Url { url, .. } => {
            prepare_url(url, Some(sha512), "gib.lock", false, cache, printer)
        }
        Stage3::Flavor { .. } => prepare(source, cache, printer),
    }
}

/// Download the `url:` stage3 again, whatever the cache knows of the URL (`gib update`), and
/// make it available as [`prepare`] does.
pub fn prepare_url_afresh(
    url: &str,
    sha512: Option<&str>,
    cache: &Cache,
    printer: &Printer,
) -> Result<Stage3Root> {
    prepare_url(url, sha512, "gib.yaml", true, cache, printer)
}

/// The stage3 at `url`, its SHA-512 checked against `expected` (which `expected_by` names):
/// from the cache when an earlier run downloaded that URL (unless `afresh`), else downloaded.
fn prepare_url(
    url: &str,
    expected: Option<&str>,
    expected_by: &str,
    afresh: bool,
    cache: &Cache,
    printer: &Printer,
) -> Result<Stage3Root> {
    let stage3_dir = cache.dir("stage3")?;
    let url_key = hex::encode(Sha256::digest(url.as_bytes()));
    let url_index = cache.dir("stage3/urls")?.join(&url_key);
    let known = match expected {
        Some(digest) => Some(digest.to_ascii_lowercase()),
        None if afresh => None,
        None => std::fs::read_to_string(&url_index)
            .ok()
            .map(|s| s.trim().to_string()),
    };
    if let Some(digest) = known
        && cache.use_if_present("stage3", &digest, &stage3_dir.join(&digest))?
    {
        return Ok(Stage3Root {
            path: stage3_dir.join(&digest),
            digest,
        });
    }
    refuse_unverifiable(url, expected)?;
    let downloads = cache.dir("downloads")?;
    let mut file = tempfile::Builder::new()
        .prefix(".tmp-stage3-")
        .tempfile_in(&downloads)
        .with_context(|| format!("cannot create a file in {}", downloads.display()))?;
    let digest = download(url, file.as_file_mut(), printer)?;
    check_digest(url, expected, &digest, expected_by)?;
    let root = unpack_into_cache(file.path(), &digest, cache, printer)?;
    std::fs::write(&url_index, &digest)
        .with_context(|| format!("cannot write {}", url_index.display()))?;
    Ok(root)
}

/// A stage3 over plain HTTP is only as trustworthy as every network between here and the
/// mirror: without a `sha512` to check it against, it is refused.
fn refuse_unverifiable(url: &str, expected: Option<&str>) -> Result<()> {
    let plain = url
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    if plain && expected.is_none() {
        return Err(UserError::new(format!("the stage3 {url} comes over plain HTTP with no sha512 to check it against")).hint("add `sha512:` (from the mirror's .DIGESTS file, fetched over HTTPS) or use an https:// URL"));
    }
    Ok(())
}

/// Stream `url` into `to`, with a progress line every few seconds; the sha512 of the bytes.
fn download(url: &str, to: &mut File, printer: &Printer) -> Result<String> {
    let step = printer.step("Downloading", url);
    let client = crate::download::Client::new(None)?;
    let (mut reader, total) = client
        .open(url)
        .with_context(|| format!("cannot download {url}"))?;
    let mut hasher = Sha512::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done: u64 = 0;
    loop {
        let n = reader
            .read(&mut buf)
            .with_context(|| format!("the download of {url} broke off after {done} bytes"))?;
        if n == 0 {
            break;
        }
        done += n as u64;
        anyhow::ensure!(
            done <= client.max_size(),
            "{url} is larger than the {} bytes gib accepts ($GIB_MAX_BLOB_SIZE)",
            client.max_size()
        );
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])
            .context("cannot write the downloaded stage3 into the cache")?;
        step.bytes(done, total);
    }
    if let Some(total) = total
        && total != done
    {
        anyhow::bail!("the download of {url} ended after {done} of {total} bytes");
    }
    to.flush().context("cannot write the downloaded stage3")?;
    step.finish("Downloaded", &format!("{url} ({})", human_bytes(done)));
    Ok(hex::encode(hasher.finalize()))
}

/// The SHA-512 of the tarball at `path`, lowercase hex.
pub fn sha512_of_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|err| {
        UserError::new(format!(
            "cannot open the stage3 tarball {}: {err}",
            path.display()
        ))
    })?;
    let mut hasher = Sha512::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The digest of what was read must be the one `expected_by` (gib.yaml, gib.lock) names, if
/// it names one.
fn check_digest(what: &str, expected: Option<&str>, actual: &str, expected_by: &str) -> Result<()> {
    match expected {
        Some(expected) if !expected.trim().eq_ignore_ascii_case(actual) => {
            let hint = if expected_by == "gib.lock" {
                "the stage3 changed since gib.lock was written: run `gib update --stage3` if the new one is meant"
            } else {
                "the file is corrupt or not the one meant; fix `stage3.sha512` only if you trust the file"
            };
            Err(UserError::new(format!(
                "the stage3 {what} has sha512 {actual}, but {expected_by} expects {}",
                expected.trim()
            ))
            .hint(hint))
        }
        _ => Ok(()),
    }
}

/// Unpack `tarball` into `stage3/<digest>` unless it is there, and use it for this run.
fn unpack_into_cache(
    tarball: &Path,
    digest: &str,
    cache: &Cache,
    printer: &Printer,
) -> Result<Stage3Root> {
    let stage3_dir = cache.dir("stage3")?;
    let entry = stage3_dir.join(digest);
    let done = || Stage3Root {
        path: entry.clone(),
        digest: digest.to_string(),
    };
    // Made by one gib; another waits for it and uses it.
    cache.use_entry("stage3", digest, &entry, || {
        let scratch = stage3_dir.join(format!(".tmp-{digest}"));
        let id_mode = sandbox::id_mode_warned(printer)?;
        let step = printer.step("Unpacking", &tarball.display().to_string());
        let summary = unpack_in_sandbox(
            tarball,
            &scratch,
            !id_mode.is_single(),
            cache,
            "stage3",
            &step,
        )?;
        step.finish(
            "Unpacked",
            &format!("{} ({} entries)", tarball.display(), summary.entries),
        );
        if summary.skipped_special > 0 {
            printer.status(
                "Skipped",
                &format!(
                    "{} device node(s) of {} (the sandbox binds /dev from the host)",
                    summary.skipped_special,
                    tarball.display()
                ),
            );
        }
        cache.publish(&scratch, &entry)
    })?;
    sandbox::check_not_hosts_root(&entry)?;
    check_is_a_stage3(&entry, &tarball.display().to_string())?;
    Ok(done())
}

/// Refuse a root that is no stage3: one without `/bin/sh` (a plain tree, a distroless
/// image). Without this check the sandbox fails with `cannot execute /bin/sh`.
pub fn check_is_a_stage3(root: &Path, label: &str) -> Result<()> {
    shell_of(root).ok_or_else(|| not_a_stage3(&format!("the stage3 {label}"), "/bin/sh"))?;
    Ok(())
}

/// Refuse, before anything runs in it, a stage3 whose programs are for another
/// architecture that qemu-user does not run here. Only reading its tree (its snapshot) needs
/// no such check: `gib push --index` reads a foreign stage3 on a machine without qemu.
pub fn check_runs_here(stage3: &Stage3Root) -> Result<()> {
    // The first bytes of the shell say which machine it is for (elf(5)); a missing,
    // unreadable or non-ELF shell is left for the sandbox to judge.
    let Some(shell) = shell_of(&stage3.path) else {
        return Ok(());
    };
    let mut header = [0u8; 20];
    let read = File::open(&shell).and_then(|mut f| f.read_exact(&mut header));
    let Some(machine) = read.ok().and_then(|()| elf_machine(&header)) else {
        return Ok(());
    };
    if !host_runs(machine) && !arch::emulated(machine) {
        return Err(UserError::with_hint(
            format!(
                "the stage3 is for {}, not for this machine ({}): its programs cannot run here",
                machine_name(machine),
                std::env::consts::ARCH
            ),
            "use the stage3 of this machine's architecture, or run it under qemu-user: `platforms:` \
             and `gib build --platform` say how",
        ));
    }
    Ok(())
}

/// The root's `/bin/sh`, resolved inside it, when it is a file.
fn shell_of(root: &Path) -> Option<PathBuf> {
    crate::rootfs::resolve::resolve_in_root(root, "/bin/sh", true)
        .ok()
        .filter(|path| path.is_file())
}

/// Refuse a stage3 without Portage before an emerge is attempted in it.
pub fn check_has_portage(stage3: &Stage3Root) -> Result<()> {
    let emerge = crate::rootfs::resolve::resolve_in_root(&stage3.path, "/usr/bin/emerge", true);
    if emerge.is_ok_and(|path| path.exists()) {
        return Ok(());
    }
    Err(not_a_stage3("the stage3", "emerge (/usr/bin/emerge)"))
}

fn not_a_stage3(what: &str, missing: &str) -> anyhow::Error {
    UserError::with_hint(
        format!("{what} has no {missing}: it is not a Gentoo stage3"),
        "a stage3 is a Gentoo root with a shell and Portage, such as \
         stage3-amd64-openrc-<date>.tar.xz; a plain tree or image goes in an image's \
         `rootfs:` instead",
    )
}

/// `e_machine` of an ELF header (its first 20 bytes), in the header's own byte order.
fn elf_machine(header: &[u8; 20]) -> Option<u16> {
    if &header[..4] != b"\x7fELF" {
        return None;
    }
    let bytes = [header[18], header[19]];
    match header[5] {
        1 => Some(u16::from_le_bytes(bytes)),
        2 => Some(u16::from_be_bytes(bytes)),
        _ => None,
    }
}

/// Whether this machine runs programs for `machine` natively (32-bit ones of its family too).
fn host_runs(machine: u16) -> bool {
    let native: &[u16] = match std::env::consts::ARCH {
        "x86_64" => &[62, 3],
        "x86" => &[3],
        "aarch64" => &[183, 40],
        "arm" => &[40],
        "powerpc64" => &[21, 20],
        "powerpc" => &[20],
        "riscv64" | "riscv32" => &[243],
        "s390x" => &[22],
        "loongarch64" => &[258],
        "mips" | "mips64" => &[8],
        "sparc64" => &[43, 2],
        // An architecture gib has no table for: let the sandbox judge.
        _ => return true,
    };
    native.contains(&machine)
}

fn machine_name(machine: u16) -> String {
    match machine {
        62 => "amd64 (x86-64)".into(),
        3 => "x86".into(),
        183 => "arm64 (aarch64)".into(),
        40 => "arm".into(),
        21 => "ppc64".into(),
        20 => "ppc".into(),
        243 => "riscv".into(),
        22 => "s390".into(),
        258 => "loong".into(),
        8 => "mips".into(),
        43 | 2 => "sparc".into(),
        other => format!("ELF machine {other}"),
    }
}

/// Unpack `tarball` into `dest` as a job in the user namespace (no root, no mounts), so the
/// owners in the tarball become the ids of the sandbox. `what` names the tarball in errors
/// (`stage3`, `rootfs`).
pub fn unpack_in_sandbox(
    tarball: &Path,
    dest: &Path,
    keep_owners: bool,
    cache: &Cache,
    what: &str,
    progress: &dyn ByteProgress,
) -> Result<UnpackSummary> {
    let job = Job::UnpackTarball {
        tarball: tarball.to_path_buf(),
        dest: dest.to_path_buf(),
        keep_owners,
    };
    // The helper reports the tarball's bytes it has read.
    let total = std::fs::metadata(tarball).ok().map(|m| m.len());
    let progress = |done| progress.bytes(done, total);
    crate::jobs::run_with_progress(cache, &job, &progress, |failed| {
        crate::tarball::unpack_failed(what, tarball, &failed.message)
    })
}

/// The mounts every builder root gets from the cache: the shared distfiles and the binary
/// packages of `platform` (never another architecture's), read-write. (Repositories are
/// bound read-only by the build, once it has them.)
pub fn cache_mounts(
    cache: &Cache,
    platform: &crate::oci::spec::Platform,
) -> Result<Vec<sandbox::ExtraMount>> {
    let binpkgs = match arch::of(platform) {
        Some(a) if arch::of(&crate::oci::spec::Platform::host()) != Some(a) => {
            format!("binpkgs-{}", a.gentoo)
        }
        _ => "binpkgs".to_string(),
    };
    Ok(vec![
        sandbox::ExtraMount::Bind {
            source: cache.dir("distfiles")?,
            target: "/var/cache/distfiles".into(),
            readonly: false,
        },
        sandbox::ExtraMount::Bind {
            source: cache.dir(&binpkgs)?,
            target: "/var/cache/binpkgs".into(),
            readonly: false,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_needs_a_digest() {
        let err = refuse_unverifiable("HTTP://mirror/stage3.tar.xz", None).unwrap_err();
        assert!(err.to_string().contains("plain HTTP"), "{err}");
        assert!(refuse_unverifiable("http://mirror/s.tar.xz", Some("abc")).is_ok());
        assert!(refuse_unverifiable("https://mirror/s.tar.xz", None).is_ok());
    }

    #[test]
    fn a_shells_elf_header_names_its_machine() {
        let mut header = [0u8; 20];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[18..].copy_from_slice(&183u16.to_le_bytes());
        assert_eq!(elf_machine(&header), Some(183));
        header[5] = 2;
        header[18..].copy_from_slice(&21u16.to_be_bytes());
        assert_eq!(elf_machine(&header), Some(21));
        assert_eq!(elf_machine(&[b'#'; 20]), None);
        assert!(host_runs(elf_machine(&own_shell_header()).unwrap()));
    }

    fn own_shell_header() -> [u8; 20] {
        let mut header = [0u8; 20];
        File::open("/proc/self/exe")
            .unwrap()
            .read_exact(&mut header)
            .unwrap();
        header
    }

    #[test]
    fn digests_compare_case_insensitively() {
        assert!(check_digest("f", Some("ABC"), "abc", "gib.yaml").is_ok());
        assert!(check_digest("f", None, "abc", "gib.yaml").is_ok());
        let err = check_digest("f", Some("abd"), "abc", "gib.yaml").unwrap_err();
        assert!(err.to_string().contains("expects abd"));
    }
}
