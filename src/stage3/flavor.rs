//! `stage3: {flavor, mirror, pin}`: find a stage3 tarball on a Gentoo mirror, download it
//! (resumable, with progress) and verify it, into the cache.
//!
//! The mirror's layout (gentoo/releng `copy_buildsync.sh`):
//! `<mirror>/releases/<arch>/autobuilds/latest-stage3-<flavor>.txt` (clearsigned; its payload
//! line is `<TIMESTAMP>/stage3-<flavor>-<TIMESTAMP>.tar.xz <size>`), and beside each tarball
//! a detached `.asc` and a `.DIGESTS` (one `# BLAKE2B HASH` and one `# SHA512 HASH` block;
//! both hashes are 128 hex digits, so the SHA512 block must be selected by its header).
//! A tarball is published in the cache only when the SHA-512 matches the DIGESTS and the
//! `.asc` is a valid signature by the pinned Release Engineering key; a failed check leaves
//! nothing behind. A broken download leaves `downloads/<file>.part`, which the next run
//! resumes.
//!
//! Cache: `stage3-tarballs/stage3-<flavor>-<TIMESTAMP>/` holding the tarball, its `.asc`,
//! its `.DIGESTS` and `verified.json`. Not here: unpacking (`stage3`), which takes
//! `VerifiedTarball::path` (and may key its unpacked root on `sha512`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, remove_any};
use crate::download::{Client, DownloadError};
use crate::openpgp::{self, Keyring, Trust};
use crate::printer::{Printer, UserError};

const CACHE_KIND: &str = "stage3-tarballs";
const META_FILE: &str = "verified.json";
/// Small files (indexes, DIGESTS, signatures) are refused beyond this size.
const SMALL_FILE_LIMIT: u64 = 1 << 20;

/// A stage3 tarball in the cache whose SHA-512 and signature were checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedTarball {
    /// The tarball in the cache (read-only from here on).
    pub path: PathBuf,
    /// Lowercase hex, as in the DIGESTS file.
    pub sha512: String,
    /// The file name, e.g. `stage3-amd64-openrc-20261117T170000Z.tar.xz`.
    pub name: String,
    /// The build's timestamp, e.g. `20261117T170000Z`.
    pub timestamp: String,
}

/// What `verified.json` records beside a published tarball.
#[derive(Debug, Serialize, Deserialize)]
struct VerifiedMeta {
    flavor: String,
    url: String,
    signed_by: String,
    tarball: VerifiedTarball,
}

/// Resolve `flavor` (e.g. `amd64-openrc`) on `mirror` (the latest build, or the build `pin`,
/// a timestamp such as `20261117T170000Z`), download and verify it into the cache.
///
/// A verified tarball already in the cache is used without downloading it again. With
/// `offline`, only the cache is used: the pinned build, or the newest cached one.
pub fn fetch(
    flavor: &str,
    mirror: &str,
    pin: Option<&str>,
    cache: &Cache,
    offline: bool,
    trust: &Trust,
    printer: &Printer,
) -> Result<VerifiedTarball> {
    check_flavor(flavor)?;
    if let Some(pin) = pin {
        check_pin(pin)?;
    }
    if offline {
        return cached(flavor, pin, cache)?.ok_or_else(|| {
            let which = pin.map_or_else(|| "any build".to_string(), |p| format!("build {p}"));
            UserError::with_hint(
                format!(
                    "--offline: the cache {} holds no verified stage3 of flavor `{flavor}` ({which})",
                    cache.dir(CACHE_KIND).unwrap_or_default().display()
                ),
                "run once without --offline to download it",
            )
        });
    }
    // A pinned build never changes: once verified, it needs no network.
    if pin.is_some()
        && let Some(found) = cached(flavor, pin, cache)?
    {
        return Ok(found);
    }

    let ca = trust.stage3_ca_certificate.as_deref();
    let client = Client::new(ca)?;
    let keyring = openpgp::keyring(&trust.releng, trust, ca, cache, false, printer)?;
    let base = format!(
        "{}/releases/{}/autobuilds",
        mirror.trim_end_matches('/'),
        arch_dir(flavor)
    );
    let (relative, size) = match pin {
        Some(ts) => (format!("{ts}/stage3-{flavor}-{ts}.tar.xz"), None),
        None => latest(&client, &base, flavor, &keyring)?,
    };
    let url = format!("{base}/{relative}");
    let name = relative.rsplit('/').next().unwrap_or(&relative).to_string();
    let timestamp = relative.split('/').next().unwrap_or_default().to_string();
    let entry = cache.dir(CACHE_KIND)?.join(entry_name(&name));
    if let Some(found) = read_entry(&entry)? {
        printer.detail(&format!("{name} is already verified in the cache"));
        return Ok(found);
    }

    // DIGESTS first: a flavor whose build has no SHA512 line fails before the big download.
    let digests_url = format!("{url}.DIGESTS");
    let digests_raw = get_small(&client, &digests_url, pin)?;
    let digests = if is_clearsigned(&digests_raw) {
        openpgp::verify_clearsigned(&keyring, &digests_raw, &digests_url)?
    } else {
        // Not every mirror clearsigns DIGESTS; the tarball's own .asc is checked below.
        String::from_utf8(digests_raw.clone())
            .with_context(|| format!("{digests_url} is not UTF-8 text"))?
    };
    let expected_sha512 = sha512_from_digests(&digests, &name).with_context(|| {
        format!("{digests_url} has no SHA512 line for {name}; the build looks incomplete")
    })?;
    let signature = get_small(&client, &format!("{url}.asc"), pin)?;

    let _lock = cache.lock("downloads", &name)?;
    if let Some(found) = read_entry(&entry)? {
        // Another gib verified it while this one waited for the lock.
        return Ok(found);
    }
    let part = cache.dir("downloads")?.join(format!("{name}.part"));
    let downloaded = client.download(&url, &part, size, printer)?;

    let scratch = cache.scratch_path(CACHE_KIND)?;
    let verified = (|| -> Result<VerifiedTarball> {
        if downloaded.sha512 != expected_sha512 {
            bail!(
                "the SHA-512 of {url} is {}, but {digests_url} says {expected_sha512}: \
                 the download is corrupt or was tampered with",
                downloaded.sha512
            );
        }
        let asc = scratch.join(format!("{name}.asc"));
        fs::write(&asc, &signature).with_context(|| format!("cannot write {}", asc.display()))?;
        openpgp::verify_detached(&keyring, &asc, &downloaded.path, &url)
            .with_context(|| format!("cannot verify {url} with {url}.asc"))?;
        let digests_file = scratch.join(format!("{name}.DIGESTS"));
        fs::write(&digests_file, &digests_raw)
            .with_context(|| format!("cannot write {}", digests_file.display()))?;
        let tarball = scratch.join(&name);
        fs::rename(&downloaded.path, &tarball).with_context(|| {
            format!(
                "cannot move {} to {}",
                downloaded.path.display(),
                tarball.display()
            )
        })?;
        let result = VerifiedTarball {
            path: entry.join(&name),
            sha512: downloaded.sha512.clone(),
            name: name.clone(),
            timestamp: timestamp.clone(),
        };
        let meta = VerifiedMeta {
            flavor: flavor.to_string(),
            url: url.clone(),
            signed_by: keyring.fingerprint.clone(),
            tarball: result.clone(),
        };
        let meta_path = scratch.join(META_FILE);
        fs::write(&meta_path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("cannot write {}", meta_path.display()))?;
        Ok(result)
    })();
    match verified {
        Ok(result) => {
            cache.publish(&scratch, &entry)?;
            printer.status(
                "Verified",
                &format!("{name} (signed by {})", keyring.fingerprint),
            );
            Ok(result)
        }
        Err(err) => {
            // A bad file is not worth resuming: drop the part and the scratch entry.
            remove_any(&scratch).ok();
            remove_any(&part).ok();
            Err(err)
        }
    }
}

/// Read and verify `latest-stage3-<flavor>.txt`; return `<TIMESTAMP>/<file>` and its size.
fn latest(
    client: &Client,
    base: &str,
    flavor: &str,
    keyring: &Keyring,
) -> Result<(String, Option<u64>)> {
    let url = format!("{base}/latest-stage3-{flavor}.txt");
    let raw = match client.get_small(&url, SMALL_FILE_LIMIT) {
        Ok(raw) => raw,
        Err(DownloadError::NotFound { url }) => {
            return Err(UserError::with_hint(
                format!("unknown stage3 flavor `{flavor}`: {url} does not exist"),
                "a flavor is the name in latest-stage3-<flavor>.txt on the mirror, e.g. \
                 amd64-openrc, amd64-systemd, amd64-musl-openrc, amd64-nomultilib-openrc, \
                 arm64-openrc",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let text = openpgp::verify_clearsigned(keyring, &raw, &url)?;
    parse_latest(&text, flavor).with_context(|| format!("cannot read {url}"))
}

/// The payload line `<TIMESTAMP>/stage3-<flavor>-<TIMESTAMP>.tar.<ext> <size>` of a verified
/// latest file.
fn parse_latest(text: &str, flavor: &str) -> Result<(String, Option<u64>)> {
    let prefix = format!("stage3-{flavor}-");
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(relative), size) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some((timestamp, file)) = relative.split_once('/') else {
            continue;
        };
        let well_formed = is_timestamp(timestamp)
            && !file.contains('/')
            && file.starts_with(&prefix)
            && file[prefix.len()..].starts_with(timestamp)
            && file[prefix.len() + timestamp.len()..].starts_with(".tar.");
        if well_formed {
            return Ok((relative.to_string(), size.and_then(|s| s.parse().ok())));
        }
    }
    bail!("it names no stage3-{flavor}-<timestamp>.tar.* build")
}

/// The hex digest on the line for `file` in the `# SHA512 HASH` block(s) of a DIGESTS file.
/// The `# BLAKE2B HASH` lines have the same length and are skipped by their header.
fn sha512_from_digests(digests: &str, file: &str) -> Result<String> {
    let mut in_sha512 = false;
    for line in digests.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('#') {
            in_sha512 = header.trim().eq_ignore_ascii_case("SHA512 HASH");
            continue;
        }
        if !in_sha512 {
            continue;
        }
        let mut fields = line.split_whitespace();
        if let (Some(hex), Some(name)) = (fields.next(), fields.next())
            && name.trim_start_matches('*') == file
            && hex.len() == 128
            && hex.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Ok(hex.to_ascii_lowercase());
        }
    }
    bail!("no `# SHA512 HASH` line for {file}")
}

fn is_clearsigned(bytes: &[u8]) -> bool {
    String::from_utf8_lossy(bytes)
        .trim_start()
        .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
}

fn get_small(client: &Client, url: &str, pin: Option<&str>) -> Result<Vec<u8>> {
    client
        .get_small(url, SMALL_FILE_LIMIT)
        .map_err(|err| match (err, pin) {
            (DownloadError::NotFound { url }, Some(pin)) => UserError::with_hint(
                format!("{url} does not exist"),
                format!("is {pin} a build of this flavor on the mirror? (stage3.pin)"),
            ),
            (err, _) => err.into(),
        })
}

/// The verified tarball of `flavor` in the cache: build `pin`, or the newest.
fn cached(flavor: &str, pin: Option<&str>, cache: &Cache) -> Result<Option<VerifiedTarball>> {
    let dir = cache.dir(CACHE_KIND)?;
    let mut best: Option<VerifiedTarball> = None;
    let entries = fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Some(meta) = read_meta(&path) else {
            continue;
        };
        if meta.flavor != flavor || pin.is_some_and(|p| p != meta.tarball.timestamp) {
            continue;
        }
        if best
            .as_ref()
            .is_none_or(|b| b.timestamp < meta.tarball.timestamp)
        {
            best = read_entry(&path)?;
        }
    }
    Ok(best)
}

fn read_meta(entry: &Path) -> Option<VerifiedMeta> {
    let text = fs::read(entry.join(META_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// A published entry, with its path as it is now (the cache may have moved).
fn read_entry(entry: &Path) -> Result<Option<VerifiedTarball>> {
    let Some(meta) = read_meta(entry) else {
        return Ok(None);
    };
    let path = entry.join(&meta.tarball.name);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(VerifiedTarball {
        path,
        ..meta.tarball
    }))
}

fn entry_name(file: &str) -> String {
    file.split(".tar.").next().unwrap_or(file).to_string()
}

/// The `releases/<arch>` directory of a flavor: its first word, with the few exceptions the
/// mirror has (x86 builds are named after the CPU, x32 lives under amd64, …).
fn arch_dir(flavor: &str) -> &str {
    let first = flavor.split('-').next().unwrap_or(flavor);
    match first {
        "i486" | "i686" => "x86",
        "x32" => "amd64",
        "ppc64" | "ppc64le" | "power9le" => "ppc",
        "s390x" => "s390",
        "sparc64" => "sparc",
        "loong" | "loong64" => "loong",
        f if f.starts_with("armv") => "arm",
        f if f.starts_with("rv32") || f.starts_with("rv64") => "riscv",
        f if f.starts_with("mips") => "mips",
        other => other,
    }
}

fn check_flavor(flavor: &str) -> Result<()> {
    let ok = !flavor.is_empty()
        && flavor
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !flavor.starts_with('-');
    if !ok {
        return Err(UserError::with_hint(
            format!("`{flavor}` is not a stage3 flavor"),
            "a flavor looks like amd64-openrc, amd64-systemd, amd64-musl-openrc or arm64-openrc",
        ));
    }
    Ok(())
}

fn check_pin(pin: &str) -> Result<()> {
    if !is_timestamp(pin) {
        return Err(UserError::with_hint(
            format!("stage3.pin `{pin}` is not a build timestamp"),
            "use the directory name of a build on the mirror, e.g. 20261117T170000Z",
        ));
    }
    Ok(())
}

/// `YYYYMMDD` or `YYYYMMDDTHHMMSSZ`, the names of build directories.
fn is_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    match b.len() {
        8 => digits(0..8),
        16 => digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z',
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLAKE: &str = "1111111111111111111111111111111111111111111111111111111111111111\
                         1111111111111111111111111111111111111111111111111111111111111111";
    const SHA: &str = "2222222222222222222222222222222222222222222222222222222222222222\
                       2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn the_sha512_block_is_chosen_not_the_blake2b_line_of_the_same_length() {
        let f = "stage3-amd64-openrc-20261117T170000Z.tar.xz";
        let digests = format!(
            "# BLAKE2B HASH\n{BLAKE}  {f}\n# BLAKE2B HASH\n{BLAKE}  {f}.CONTENTS.gz\n\
             # SHA512 HASH\n{SHA}  {f}\n# SHA512 HASH\n{BLAKE}  {f}.CONTENTS.gz\n"
        );
        assert_eq!(sha512_from_digests(&digests, f).unwrap(), SHA);
        let only_blake = format!("# BLAKE2B HASH\n{BLAKE}  {f}\n");
        assert!(sha512_from_digests(&only_blake, f).is_err());
    }

    #[test]
    fn the_latest_file_names_the_build() {
        let text = "# Latest as of Tue, 17 Nov 2026 17:00:00 +0000\n# ts=1795280400\n\
                    20261117T170000Z/stage3-amd64-openrc-20261117T170000Z.tar.xz 283688292\n";
        let (rel, size) = parse_latest(text, "amd64-openrc").unwrap();
        assert_eq!(
            rel,
            "20261117T170000Z/stage3-amd64-openrc-20261117T170000Z.tar.xz"
        );
        assert_eq!(size, Some(283688292));
        // A longer flavor's file must not be taken for this one, nor a path that escapes.
        let other = "20261117T170000Z/stage3-amd64-openrc-splitusr-20261117T170000Z.tar.xz 1\n\
                     ../x/stage3-amd64-openrc-20261117T170000Z.tar.xz 1\n";
        assert!(parse_latest(other, "amd64-openrc").is_err());
    }

    #[test]
    fn flavors_map_to_their_release_directory() {
        assert_eq!(arch_dir("amd64-musl-openrc"), "amd64");
        assert_eq!(arch_dir("arm64-openrc"), "arm64");
        assert_eq!(arch_dir("i686-openrc"), "x86");
        assert_eq!(arch_dir("x32-openrc"), "amd64");
        assert!(check_flavor("amd64/../x").is_err());
        assert!(check_pin("20261117T170000Z").is_ok());
        assert!(check_pin("latest").is_err());
    }
}
