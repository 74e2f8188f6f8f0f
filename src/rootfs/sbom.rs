//! The image's software bill of materials as an SPDX 2.3 JSON document: one SPDX package for
//! the image, one for the operating system (from /etc/os-release) and one per installed
//! Gentoo package, with its license translated to SPDX and a purl scanners understand.
//!
//! Deterministic: the same inputs give the same bytes (no random namespace, no wall clock), so
//! two builds of the same image produce the same SBOM. Not a file-level SBOM (`filesAnalyzed`
//! is false) and not a scanner: it reports what Portage installed.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::gentoo::license::spdx_license;
use crate::gentoo::vdb::InstalledPackage;
use crate::sandbox::safe_fs::TreeDir;

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-Image";
const OS_ID: &str = "SPDXRef-OperatingSystem";

/// The fields of /etc/os-release the SBOM uses (os-release(5)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    /// ID, e.g. `gentoo`.
    pub id: String,
    pub name: Option<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    pub home_url: Option<String>,
}

/// The root's os-release (`etc/os-release`, else `usr/lib/os-release`), if it has one with
/// an ID.
pub fn read_os_release(root: &Path) -> Result<Option<OsRelease>> {
    let tree = TreeDir::open_root(root)?;
    for candidate in ["etc/os-release", "usr/lib/os-release"] {
        // Gentoo's etc/os-release is a symlink (../usr/lib/os-release): followed as if the
        // root were `/`, never to the host's file; a fifo or device there is an error.
        let Some(bytes) = tree.read_in_root(Path::new(candidate))? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        return Ok(parse_os_release(&text));
    }
    Ok(None)
}

fn parse_os_release(text: &str) -> Option<OsRelease> {
    let mut release = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches(['"', '\'']).to_string();
        match key.trim() {
            "ID" => release.id = value,
            "NAME" => release.name = Some(value),
            "VERSION_ID" => release.version_id = Some(value),
            "PRETTY_NAME" => release.pretty_name = Some(value),
            "HOME_URL" => release.home_url = Some(value),
            _ => {}
        }
    }
    (!release.id.is_empty()).then_some(release)
}

/// The SPDX 2.3 document of an image named `image_name` (`image_ref` says which build:
/// a reference or digest; it goes into the namespace and the image package). `created` is
/// SOURCE_DATE_EPOCH. Packages keep the order given (`read_installed` sorts them).
pub fn spdx_document(
    image_name: &str,
    image_ref: &str,
    created: i64,
    packages: &[InstalledPackage],
    os_release: Option<&OsRelease>,
) -> Result<Value> {
    let created = rfc3339(created)?;
    let tool = format!("Tool: gib-{}", env!("CARGO_PKG_VERSION"));
    let mut spdx_packages = vec![image_package(image_name, image_ref)];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID)];
    if let Some(os) = os_release {
        spdx_packages.push(os_package(os));
        relationships.push(relationship(IMAGE_ID, "CONTAINS", OS_ID));
    }
    let mut license_refs = BTreeSet::new();
    let mut ids = BTreeSet::from([IMAGE_ID.to_string(), OS_ID.to_string()]);
    for package in packages {
        let id = unique_id(&mut ids, &format!("SPDXRef-Package-{}", package.cpv()));
        let license = spdx_license(package.license.as_deref(), &package.use_flags)
            .with_context(|| format!("the LICENSE of {}", package.cpv()))?;
        license_refs.extend(license.license_refs);
        spdx_packages.push(installed_package(package, &id, &license.expression));
        relationships.push(relationship(IMAGE_ID, "CONTAINS", &id));
    }
    let extracted: Vec<Value> = license_refs
        .iter()
        .map(|(id, gentoo)| {
            json!({
                "licenseId": id,
                "name": gentoo,
                "extractedText": format!(
                    "The Gentoo license `{gentoo}`: its text is the file licenses/{gentoo} of the Gentoo ebuild repository."
                ),
                "seeAlsos": [format!("https://gitweb.gentoo.org/repo/gentoo.git/tree/licenses/{gentoo}")],
            })
        })
        .collect();
    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name,
        "documentNamespace": document_namespace(image_name, image_ref, &created, packages),
        "creationInfo": {
            "created": created,
            "creators": [tool],
        },
        "packages": spdx_packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        document["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    Ok(document)
}

/// An SPDX package that gib knows only by name: the image, the operating system.
fn unanalysed_package(id: &str, name: &str, purpose: &str) -> Value {
    json!({
        "SPDXID": id,
        "name": name,
        "primaryPackagePurpose": purpose,
        "supplier": NOASSERTION,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    })
}

fn image_package(image_name: &str, image_ref: &str) -> Value {
    let mut package = unanalysed_package(IMAGE_ID, image_name, "CONTAINER");
    if !image_ref.is_empty() {
        package["comment"] = json!(format!("image reference: {image_ref}"));
    }
    package
}

fn os_package(os: &OsRelease) -> Value {
    let mut package = unanalysed_package(OS_ID, &os.id, "OPERATING_SYSTEM");
    if let Some(version) = &os.version_id {
        package["versionInfo"] = json!(version);
    }
    if let Some(description) = os.pretty_name.as_ref().or(os.name.as_ref()) {
        package["description"] = json!(description);
    }
    if let Some(home) = os.home_url.as_deref().filter(|u| is_web_url(u)) {
        package["homepage"] = json!(home);
    }
    package
}

fn installed_package(package: &InstalledPackage, id: &str, license: &str) -> Value {
    let flags = package.enabled_iuse();
    let mut comment = format!(
        "USE: {}; repository: {}",
        if flags.is_empty() {
            "(none)".to_string()
        } else {
            flags.join(" ")
        },
        package.repository.as_deref().unwrap_or("unknown")
    );
    if let Some(slot) = &package.slot {
        comment.push_str(&format!("; slot: {slot}"));
    }
    let mut spdx = json!({
        "SPDXID": id,
        // category/name, as syft names portage packages, so matchers agree.
        "name": package.cp(),
        "versionInfo": package.full_version,
        "supplier": NOASSERTION,
        "originator": NOASSERTION,
        "downloadLocation": download_location(package.src_uri.as_deref()),
        "filesAnalyzed": false,
        "licenseConcluded": license,
        "licenseDeclared": license,
        "copyrightText": NOASSERTION,
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": purl(package),
        }],
        "comment": comment,
    });
    if let Some(home) = package
        .homepage
        .as_deref()
        .and_then(|h| h.split_whitespace().find(|u| is_web_url(u)))
    {
        spdx["homepage"] = json!(home);
    }
    if let Some(description) = &package.description {
        spdx["description"] = json!(description);
    }
    spdx
}

/// `pkg:ebuild/<category>%2F<name>@<PVR>`: syft's portage cataloger puts the whole
/// `category/name` in the purl name (so the `/` is escaped) and keeps the revision.
pub fn purl(package: &InstalledPackage) -> String {
    format!(
        "pkg:ebuild/{}@{}",
        percent_encode(&package.cp()),
        percent_encode(&package.full_version)
    )
}

/// Escape everything but the purl spec's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The first plain web or FTP URL of SRC_URI; `mirror://` URIs name no single place.
fn download_location(src_uri: Option<&str>) -> String {
    src_uri
        .and_then(|uri| {
            uri.split_whitespace()
                .find(|token| is_web_url(token) || token.starts_with("ftp://"))
        })
        .map_or_else(|| NOASSERTION.to_string(), str::to_string)
}

fn is_web_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    })
}

/// An SPDX id from `wanted` (only letters, digits, `.` and `-` are allowed), made unique.
fn unique_id(taken: &mut BTreeSet<String>, wanted: &str) -> String {
    let base = id_chars(wanted);
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// A namespace URI unique to these inputs (SPDX wants one per document) without randomness.
/// The `.invalid` host says it is a name, not a location to fetch.
fn document_namespace(
    image_name: &str,
    image_ref: &str,
    created: &str,
    packages: &[InstalledPackage],
) -> String {
    let mut hash = Sha256::new();
    for part in [image_name, image_ref, created] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for package in packages {
        hash.update(package.cpv().as_bytes());
        hash.update([0]);
        hash.update(package.repository.as_deref().unwrap_or("").as_bytes());
        hash.update([0]);
    }
    format!(
        "https://gib.invalid/spdx/{}-{}",
        id_chars(image_name),
        hex::encode(&hash.finalize()[..16])
    )
}

/// `text` with every character but letters, digits, `.` and `-` replaced by `-`: what SPDX
/// ids allow, and safe in a URI path.
fn id_chars(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `YYYY-MM-DDThh:mm:ssZ`, the form SPDX asks for.
fn rfc3339(epoch: i64) -> Result<String> {
    let time = time::OffsetDateTime::from_unix_timestamp(epoch)
        .with_context(|| format!("{epoch} is not a usable SOURCE_DATE_EPOCH"))?;
    time.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .context("cannot format the creation time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_links_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host-os-release");
        std::fs::write(&host, "ID=host-secret\n").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink(&host, root.join("etc/os-release")).unwrap();
        // The absolute link names a path inside the root, where there is nothing.
        assert_eq!(read_os_release(&root).unwrap(), None);
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=gentoo\n").unwrap();
        let os = read_os_release(&root).unwrap().unwrap();
        assert_eq!(os.id, "gentoo");
    }
    use crate::gentoo::vdb::{read_installed, tests::write_package};

    fn packages() -> Vec<InstalledPackage> {
        let root = tempfile::tempdir().unwrap();
        write_package(
            root.path(),
            "x11-libs/gtk+-3.24.41-r1",
            &[
                ("LICENSE", "LGPL-2+ doc? ( FDL-1.1 ) foo-license"),
                ("USE", "amd64 wayland"),
                ("IUSE", "+wayland doc"),
                ("repository", "gentoo"),
                ("SLOT", "3"),
                (
                    "HOMEPAGE",
                    "https://www.gtk.org/ https://gitlab.gnome.org/GNOME/gtk",
                ),
            ],
        );
        write_package(
            root.path(),
            "sys-libs/zlib-1.3.1",
            &[
                ("LICENSE", "ZLIB"),
                (
                    "SRC_URI",
                    "mirror://zlib/zlib-1.3.1.tar.gz https://zlib.net/zlib-1.3.1.tar.gz",
                ),
            ],
        );
        read_installed(root.path()).unwrap()
    }

    #[test]
    fn describes_the_image_and_contains_each_package() {
        let os = parse_os_release("NAME=Gentoo\nID=gentoo\nVERSION_ID=\"2.17\"\n");
        let doc = spdx_document("app", "app:1.0", 1_700_000_000, &packages(), os.as_ref()).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let spdx_packages = doc["packages"].as_array().unwrap();
        assert_eq!(spdx_packages.len(), 4);
        let gtk = &spdx_packages[3];
        assert_eq!(gtk["SPDXID"], "SPDXRef-Package-x11-libs-gtk--3.24.41-r1");
        assert_eq!(gtk["name"], "x11-libs/gtk+");
        assert_eq!(gtk["versionInfo"], "3.24.41-r1");
        assert_eq!(
            gtk["externalRefs"][0]["referenceLocator"],
            "pkg:ebuild/x11-libs%2Fgtk%2B@3.24.41-r1"
        );
        assert_eq!(
            gtk["licenseDeclared"],
            "LGPL-2.0-or-later AND LicenseRef-Gentoo-foo-license"
        );
        assert_eq!(gtk["homepage"], "https://www.gtk.org/");
        assert_eq!(gtk["downloadLocation"], "NOASSERTION");
        assert_eq!(gtk["comment"], "USE: wayland; repository: gentoo; slot: 3");
        let zlib = &spdx_packages[2];
        assert_eq!(
            zlib["downloadLocation"],
            "https://zlib.net/zlib-1.3.1.tar.gz"
        );
        assert_eq!(zlib["licenseConcluded"], "Zlib");
        assert_eq!(spdx_packages[1]["versionInfo"], "2.17");
        assert_eq!(
            doc["hasExtractedLicensingInfos"][0]["licenseId"],
            "LicenseRef-Gentoo-foo-license"
        );
        let relationships = doc["relationships"].as_array().unwrap();
        assert_eq!(relationships.len(), 4);
        assert_eq!(relationships[0]["relationshipType"], "DESCRIBES");
        assert_eq!(relationships[3]["relatedSpdxElement"], gtk["SPDXID"]);
    }

    #[test]
    fn the_same_inputs_give_the_same_document() {
        let a = spdx_document("app", "app:1.0", 0, &packages(), None).unwrap();
        let b = spdx_document("app", "app:1.0", 0, &packages(), None).unwrap();
        let c = spdx_document("app", "app:1.1", 0, &packages(), None).unwrap();
        assert_eq!(a.to_string(), b.to_string());
        assert_ne!(a["documentNamespace"], c["documentNamespace"]);
    }

    #[test]
    fn ids_stay_unique_after_sanitising() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_id(&mut taken, "SPDXRef-a+b"), "SPDXRef-a-b");
        assert_eq!(unique_id(&mut taken, "SPDXRef-a_b"), "SPDXRef-a-b-2");
    }
}
