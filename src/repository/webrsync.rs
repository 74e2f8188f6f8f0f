//! `sync_type: webrsync`: the snapshot tarball `<mirror>/snapshots/gentoo-YYYYMMDD.tar.xz`
//! (`gentoo-latest.tar.xz` when not pinned) with its detached `.gpgsig`, verified with the
//! snapshot key (Gentoo infrastructure, pinned by fingerprint), unpacked into a new
//! snapshot. The tarball holds one top directory (`gentoo-YYYYMMDD/`), which becomes the tree.

use std::fs::{self, File};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::{Fetched, Pin, RepoSpec, Store};
use crate::cache::{Cache, remove_any};
use crate::download::{Client, DownloadError};
use crate::openpgp;
use crate::printer::{Printer, UserError};

pub(super) fn fetch(
    uri: &str,
    pin: Option<&Pin>,
    spec: &RepoSpec,
    key: &str,
    store: &Store,
    cache: &Cache,
    printer: &Printer,
) -> Result<Fetched> {
    let file = match pin {
        Some(Pin::Date(date)) => format!("gentoo-{date}.tar.xz"),
        _ => "gentoo-latest.tar.xz".to_string(),
    };
    let url = format!("{}/snapshots/{file}", uri.trim_end_matches('/'));
    let client = Client::new(spec.ca_certificate.as_deref())?;
    let keyring = openpgp::keyring(
        &spec.trust.snapshots,
        &spec.trust,
        spec.ca_certificate.as_deref(),
        cache,
        false,
        printer,
    )?;
    let signature_url = format!("{url}.gpgsig");
    let signature = client
        .get_small(&signature_url, 1 << 20)
        .map_err(|err| match err {
            DownloadError::NotFound { url } => UserError::with_hint(
                format!("{url} does not exist"),
                match pin {
                    Some(pin) => format!("is there a snapshot of {pin} on the mirror?"),
                    None => "is the uri a Gentoo mirror (with snapshots/)?".to_string(),
                },
            ),
            err => anyhow::Error::new(err),
        })?;

    let _lock = cache.lock("downloads", &format!("{key}-{file}"))?;
    let part = cache.dir("downloads")?.join(format!("{key}-{file}.part"));
    if pin.is_none() {
        // gentoo-latest changes every day: a part from another run is another file.
        remove_any(&part).ok();
    }
    let downloaded = client.download(&url, &part, None, printer)?;

    let scratch = store.scratch()?;
    let result = (|| -> Result<PathBuf> {
        let sig_path = scratch.join(format!("{file}.gpgsig"));
        fs::write(&sig_path, &signature)
            .with_context(|| format!("cannot write {}", sig_path.display()))?;
        openpgp::verify_detached(&keyring, &sig_path, &downloaded.path, &url)
            .with_context(|| format!("cannot verify {url} with {signature_url}"))?;
        let unpack = scratch.join("unpack");
        fs::create_dir(&unpack).with_context(|| format!("cannot create {}", unpack.display()))?;
        let tarball = File::open(&downloaded.path)
            .with_context(|| format!("cannot open {}", downloaded.path.display()))?;
        let mut archive = tar::Archive::new(liblzma::read::XzDecoder::new(tarball));
        archive.set_preserve_permissions(true);
        archive
            .unpack(&unpack)
            .with_context(|| format!("cannot unpack {url} into {}", unpack.display()))?;
        let mut tops = fs::read_dir(&unpack)
            .with_context(|| format!("cannot read {}", unpack.display()))?
            .flatten()
            .map(|e| e.path())
            .collect::<Vec<_>>();
        match (tops.pop(), tops.is_empty()) {
            (Some(top), true) if top.is_dir() => Ok(top),
            _ => bail!("{url} does not hold exactly one top directory"),
        }
    })();
    match result {
        Ok(tree) => {
            remove_any(&part).ok();
            Ok(Fetched {
                tree,
                scratch,
                id: pin.map(|p| p.to_string()),
                revision: None,
                fallback_time: None,
            })
        }
        Err(err) => {
            remove_any(&scratch).ok();
            remove_any(&part).ok();
            Err(err)
        }
    }
}
