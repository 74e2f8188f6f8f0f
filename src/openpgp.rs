//! OpenPGP: which keys gib trusts (pinned by fingerprint) and signature checks by GnuPG.
//!
//! gib pins the fingerprints of Gentoo's Release Engineering key (stage3 tarballs and their
//! indexes) and of Gentoo's infrastructure key (ebuild repository snapshots). The key
//! material is fetched at first use from Gentoo's keyserver (`KEYSERVER`), checked to carry
//! the pinned fingerprint, and cached as `keys/<FINGERPRINT>.asc`; later runs (and
//! `--offline`) use the cached copy. gib ships the fingerprints only, not the key material.
//!
//! Other keys and CAs (an internal stage3 mirror, a team's own snapshot key) are trusted only
//! when gib.yaml names them (`stage3.fingerprint` / `keyring` / `ca_certificate`,
//! `portage.fingerprint` / `keyring`), and `gib plan` shows them: what gib trusts is in the
//! file that is reviewed and committed, never in the environment. [`Trust`] is that
//! decision as one value, for the config, the plan and a lock file to record.
//!
//! Signatures are checked by running `gpg` with a throwaway home directory holding only the
//! trusted keyring, and reading its machine-readable status lines: a signature counts only
//! with a `VALIDSIG` whose primary-key fingerprint is the pinned one. gpg rather than a Rust
//! OpenPGP crate: `pgp` 0.21 (rpgp) alone is 150 crates, 97 of them new to gib's 139, and
//! took 4m41s to build in release on a 2-core machine; sequoia is heavier still. GnuPG is
//! what Gentoo's own tools verify with, and machines running gib need only `gnupg`.
//!
//! A room of its own: `stage3` (release signatures) and `repository` (snapshot signatures)
//! both use it, and neither reaches into the other.
//!
//! Not here: downloading (`download`) or what the signed files say (`stage3::flavor`,
//! `repository`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cache::Cache;
use crate::download::Client;
use crate::printer::{Printer, UserError};

/// "Gentoo Linux Release Engineering (Automated Weekly Release Key)" <releng@gentoo.org>:
/// signs stage3 tarballs, their `.DIGESTS` and the `latest-*.txt` indexes.
pub const RELENG_FINGERPRINT: &str = "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910";
/// Gentoo infrastructure <infrastructure@gentoo.org>: signs the ebuild repository snapshots
/// (`snapshots/gentoo-YYYYMMDD.tar.xz.gpgsig`).
pub const INFRASTRUCTURE_FINGERPRINT: &str = "DCD05B71EAB94199527F44ACDB6B8C1F96D8BF6D";
/// Where a pinned key is fetched at first use (HKP over HTTPS, machine-readable output).
pub const KEYSERVER: &str = "https://keys.gentoo.org/pks/lookup?op=get&options=mr&search=0x";

/// One trusted signing key: a fingerprint and where its key material comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedKey {
    /// 40 uppercase hex digits, the primary key's fingerprint.
    pub fingerprint: String,
    /// A keyring file (armored or binary) given by the user; `None`: fetch from `KEYSERVER`.
    pub keyring: Option<PathBuf>,
}

/// What gib trusts when it fetches Gentoo's sources (the CAs of the main repository, the
/// overlays and the registries are theirs, beside them in gib.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trust {
    /// Signs stage3 tarballs and their indexes (`stage3.fingerprint`, `stage3.keyring`).
    pub releng: TrustedKey,
    /// Signs ebuild repository snapshots (webrsync; `portage.fingerprint`, `portage.keyring`).
    pub snapshots: TrustedKey,
    /// CA certificates (PEM) trusted besides the system roots for the stage3 mirror
    /// (`stage3.ca_certificate`).
    pub stage3_ca_certificate: Option<PathBuf>,
    /// The URL prefix a pinned key's fingerprint is appended to, to fetch it: Gentoo's
    /// keyserver (another only for gib's hidden test hooks).
    pub keyserver: String,
}

impl Trust {
    /// Gentoo's own keys, pinned in gib.
    pub fn gentoo() -> Trust {
        Trust {
            releng: TrustedKey {
                fingerprint: RELENG_FINGERPRINT.to_string(),
                keyring: None,
            },
            snapshots: TrustedKey {
                fingerprint: INFRASTRUCTURE_FINGERPRINT.to_string(),
                keyring: None,
            },
            stage3_ca_certificate: None,
            keyserver: KEYSERVER.to_string(),
        }
    }
}

impl TrustedKey {
    /// The key `fingerprint` (normalized), its material in `keyring` when given (else fetched
    /// from the keyserver and checked). A keyring alone names no key: the fingerprint is the
    /// trust decision.
    pub fn named(fingerprint: &str, keyring: Option<PathBuf>) -> Result<TrustedKey> {
        Ok(TrustedKey {
            fingerprint: normalize_fingerprint(fingerprint)?,
            keyring,
        })
    }

    /// Whether this is one of the keys pinned in gib.
    pub fn is_builtin(&self) -> bool {
        self.keyring.is_none()
            && [RELENG_FINGERPRINT, INFRASTRUCTURE_FINGERPRINT].contains(&self.fingerprint.as_str())
    }
}

/// `13EB BDBE …` or `0x13eb…` -> `13EBBDBE…`; anything but 40 hex digits is refused.
pub fn normalize_fingerprint(text: &str) -> Result<String> {
    let hex: String = text
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(UserError::new(format!(
            "`{text}` is not an OpenPGP v4 fingerprint (40 hex digits)"
        ))
        .into());
    }
    Ok(hex)
}

/// A keyring file known to hold the key with `fingerprint`.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub path: PathBuf,
    pub fingerprint: String,
}

/// The keyring for `key`: the user's file, else the cached copy, else (unless `offline`)
/// fetched from `trust`'s keyserver, checked to hold the pinned fingerprint, and cached. A
/// keyserver of the user's own is reached with `ca` besides the system roots.
pub fn keyring(
    key: &TrustedKey,
    trust: &Trust,
    ca: Option<&Path>,
    cache: &Cache,
    offline: bool,
    printer: &Printer,
) -> Result<Keyring> {
    if let Some(path) = &key.keyring {
        let found = primary_fingerprints(path)?;
        if !found.contains(&key.fingerprint) {
            bail!(
                "the keyring {} holds no key with fingerprint {} (it holds: {})",
                path.display(),
                key.fingerprint,
                found.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        return Ok(Keyring {
            path: path.clone(),
            fingerprint: key.fingerprint.clone(),
        });
    }
    let entry = cache.dir("keys")?.join(format!("{}.asc", key.fingerprint));
    if entry.is_file() {
        return Ok(Keyring {
            path: entry,
            fingerprint: key.fingerprint.clone(),
        });
    }
    if offline {
        return Err(UserError::with_hint(
            format!(
                "the OpenPGP key {} is not in the cache ({}) and --offline forbids fetching it",
                key.fingerprint,
                entry.display()
            ),
            "run once without --offline",
        ));
    }
    // Gentoo's keyserver is reached with the built-in roots, whatever mirror the user chose;
    // a keyserver of the user's own with their CA.
    let ca = (trust.keyserver != KEYSERVER).then_some(ca).flatten();
    let client = Client::new(ca)?;
    let url = format!("{}{}", trust.keyserver, key.fingerprint);
    printer.status(
        "Fetching",
        &format!("OpenPGP key {} from {url}", key.fingerprint),
    );
    let material = client.get_small(&url, 1 << 20)?;
    let scratch = cache.scratch_path("keys")?;
    let file = scratch.join("key.asc");
    fs::write(&file, &material).with_context(|| format!("cannot write {}", file.display()))?;
    let found = primary_fingerprints(&file).with_context(|| format!("from {url}"))?;
    if !found.contains(&key.fingerprint) {
        crate::cache::remove_any(&scratch).ok();
        bail!(
            "{url} returned no key with the pinned fingerprint {} (it returned: {})",
            key.fingerprint,
            found.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let _lock = cache.lock("keys", &key.fingerprint)?;
    match fs::rename(&file, &entry) {
        Ok(()) => {}
        Err(err) if entry.is_file() => drop(err),
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot move {} to {}", file.display(), entry.display()));
        }
    }
    crate::cache::remove_any(&scratch).ok();
    Ok(Keyring {
        path: entry,
        fingerprint: key.fingerprint.clone(),
    })
}

/// The primary-key fingerprints in a keyring file (`gpg --show-keys`), without importing it.
pub fn primary_fingerprints(keyring: &Path) -> Result<BTreeSet<String>> {
    let home = GpgHome::new()?;
    let mut cmd = home.gpg();
    cmd.args(["--with-colons", "--show-keys"]).arg(keyring);
    let out = run_gpg(&mut cmd)?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(parse_primary_fingerprints(&String::from_utf8_lossy(
        &out.stdout,
    )))
}

/// `fpr` records that directly follow a `pub` record (subkeys have `sub` before theirs).
fn parse_primary_fingerprints(colons: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut after_pub = false;
    for line in colons.lines() {
        let mut fields = line.split(':');
        match fields.next() {
            Some("pub") => after_pub = true,
            Some("fpr") if after_pub => {
                if let Some(fpr) = fields.nth(8) {
                    found.insert(fpr.to_ascii_uppercase());
                }
                after_pub = false;
            }
            Some("fpr") => {}
            _ => after_pub = false,
        }
    }
    found
}

/// Check a detached signature (`.asc`, `.gpgsig`) of `data` by the keyring's key. `what`
/// names the data in errors (its URL).
pub fn verify_detached(keyring: &Keyring, signature: &Path, data: &Path, what: &str) -> Result<()> {
    let home = GpgHome::with_keyring(keyring)?;
    home.verify(keyring, what, |cmd| {
        cmd.arg("--verify").arg(signature).arg(data);
    })
}

/// gpg's messages on one line, without the `gpg: ` prefixes.
fn one_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| l.trim().trim_start_matches("gpg:").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Check a clearsigned text by the keyring's key; return the signed text only (what is
/// outside the signature, if anything, is dropped). `what` names the text in errors (a URL).
pub fn verify_clearsigned(keyring: &Keyring, signed: &[u8], what: &str) -> Result<String> {
    let home = GpgHome::with_keyring(keyring)?;
    let input = home.dir.path().join("signed.txt");
    let output = home.dir.path().join("plain.txt");
    fs::write(&input, signed).with_context(|| format!("cannot write {}", input.display()))?;
    home.verify(keyring, what, |cmd| {
        cmd.arg("--output")
            .arg(&output)
            .arg("--decrypt")
            .arg(&input);
    })?;
    let text = fs::read(&output).with_context(|| format!("cannot read {}", output.display()))?;
    String::from_utf8(text).with_context(|| format!("{what} is not UTF-8 text"))
}

/// Whether gpg's status lines show a good signature by the key `fingerprint`: a `VALIDSIG`
/// naming it (as signing key or as primary key) and no bad, expired or revoked signature.
fn check_status(status: &str, fingerprint: &str, exit_ok: bool) -> Result<()> {
    if let Some(line) = status.lines().find(|l| l.starts_with("[GNUPG:] NO_PUBKEY")) {
        bail!("it is not signed by the trusted key {fingerprint} ({line})");
    }
    let mut valid = false;
    let mut signers = Vec::new();
    for line in status.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("[GNUPG:]") {
            continue;
        }
        match words.next() {
            Some("VALIDSIG") => {
                let fields: Vec<&str> = words.collect();
                let signing = fields.first().copied().unwrap_or_default();
                let primary = fields.get(9).copied().unwrap_or(signing);
                signers.push(primary.to_string());
                if signing.eq_ignore_ascii_case(fingerprint)
                    || primary.eq_ignore_ascii_case(fingerprint)
                {
                    valid = true;
                }
            }
            Some(bad @ ("BADSIG" | "EXPKEYSIG" | "REVKEYSIG" | "EXPSIG" | "ERRSIG")) => {
                bail!("gpg reported {bad}: {line}");
            }
            _ => {}
        }
    }
    if !valid {
        if signers.is_empty() {
            bail!("no valid signature found (want one by {fingerprint})");
        }
        bail!(
            "signed by {}, not by the trusted key {fingerprint}",
            signers.join(", ")
        );
    }
    if !exit_ok {
        bail!("gpg failed although it reported a valid signature");
    }
    Ok(())
}

/// A throwaway GnuPG home directory, removed when dropped.
struct GpgHome {
    dir: tempfile::TempDir,
}

impl GpgHome {
    /// Run gpg with `args` (a verifying operation) and check from its status lines that a
    /// good signature by `keyring`'s key was made; `what` names the data in errors.
    fn verify(&self, keyring: &Keyring, what: &str, args: impl FnOnce(&mut Command)) -> Result<()> {
        let status_file = self.dir.path().join("status");
        let mut cmd = self.gpg();
        cmd.arg("--status-file").arg(&status_file);
        args(&mut cmd);
        let out = run_gpg(&mut cmd)?;
        let status = fs::read_to_string(&status_file).unwrap_or_default();
        check_status(&status, &keyring.fingerprint, out.status.success()).with_context(|| {
            format!(
                "the signature of {what} is not valid (gpg said: {})",
                one_line(&out.stderr)
            )
        })
    }

    fn new() -> Result<GpgHome> {
        let dir = tempfile::Builder::new()
            .prefix("gib-gpg-")
            .tempdir()
            .context("cannot create a temporary GnuPG home directory")?;
        // GnuPG >= 2.4.1 writes `use-keyboxd` into a new home's common.conf, and keyboxd
        // cannot start under --no-autostart: an existing common.conf keeps the plain keyring.
        let common = dir.path().join("common.conf");
        fs::write(&common, "# gib: a throwaway home with a plain keyring\n")
            .with_context(|| format!("cannot write {}", common.display()))?;
        Ok(GpgHome { dir })
    }

    fn with_keyring(keyring: &Keyring) -> Result<GpgHome> {
        let home = GpgHome::new()?;
        let mut cmd = home.gpg();
        cmd.arg("--import").arg(&keyring.path);
        let out = run_gpg(&mut cmd)?;
        if !out.status.success() {
            bail!(
                "cannot import the keyring {}: {cmd:?} failed ({}): {}",
                keyring.path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(home)
    }

    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(self.dir.path())
            .args([
                "--batch",
                "--no-tty",
                "--no-autostart",
                "--no-auto-key-retrieve",
                "--no-permission-warning",
                "--trust-model",
                "always",
            ])
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        cmd
    }
}

fn run_gpg(cmd: &mut Command) -> Result<std::process::Output> {
    cmd.output().map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            UserError::with_hint(
                "gib checks OpenPGP signatures with `gpg`, which is not installed",
                "install GnuPG (Debian/Ubuntu: apt-get install gnupg; Fedora: dnf install gnupg2)",
            )
        } else {
            anyhow::Error::new(err).context(format!("cannot run {cmd:?}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPR: &str = "13EBBDBEDE7A12775DFDB1BABB572E0E2D182910";

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(
            normalize_fingerprint("13EB BDBE DE7A 1277 5DFD  B1BA BB57 2E0E 2D18 2910").unwrap(),
            FPR
        );
        assert_eq!(
            normalize_fingerprint(&format!("0x{}", FPR.to_lowercase())).unwrap(),
            FPR
        );
        assert!(normalize_fingerprint("BB572E0E2D182910").is_err());
    }

    /// gib ships Gentoo's fingerprints only (no key material: the keys are fetched from the
    /// keyserver and must carry these); they must at least be well-formed, or no key could.
    #[test]
    fn the_pinned_gentoo_fingerprints_are_v4_fingerprints() {
        for pinned in [RELENG_FINGERPRINT, INFRASTRUCTURE_FINGERPRINT] {
            assert_eq!(normalize_fingerprint(pinned).unwrap(), pinned);
        }
        let gentoo = Trust::gentoo();
        assert!(gentoo.releng.is_builtin() && gentoo.snapshots.is_builtin());
        // The long key id Gentoo publishes for its release key is the fingerprint's tail.
        assert!(RELENG_FINGERPRINT.ends_with("BB572E0E2D182910"));
    }

    #[test]
    fn validsig_by_the_primary_key_is_accepted() {
        let status = format!(
            "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG BB572E0E2D182910 releng\n\
             [GNUPG:] VALIDSIG AAAA0000AAAA0000AAAA0000AAAA0000AAAA0000 2026-11-17 1 0 4 0 1 10 00 {FPR}\n"
        );
        check_status(&status, FPR, true).unwrap();
    }

    #[test]
    fn another_signer_or_a_bad_signature_is_refused() {
        let other = "[GNUPG:] VALIDSIG 1111 2026-11-17 1 0 4 0 1 10 00 2222\n";
        let err = check_status(other, FPR, true).unwrap_err().to_string();
        assert!(err.contains("signed by 2222"), "{err}");
        let bad = "[GNUPG:] BADSIG BB572E0E2D182910 releng\n";
        assert!(check_status(bad, FPR, false).is_err());
        assert!(check_status("", FPR, false).is_err());
    }

    #[test]
    fn primary_fingerprints_skip_subkeys() {
        let colons = "pub:-:255:22:AA:1:::-:::scESC::::::23::0:\nfpr:::::::::AAAA:\n\
                      uid:-::::1::X::a <a@b>::::::::::0:\nsub:-:255:18:BB:1::::::e::::::23:\n\
                      fpr:::::::::BBBB:\n";
        let found = parse_primary_fingerprints(colons);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec!["AAAA".to_string()]
        );
    }
}
