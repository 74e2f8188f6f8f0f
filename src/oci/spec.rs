//! The OCI vocabulary every other room speaks: the content digest, the descriptor, the
//! platform, the media types and annotation keys, the hashing writer and the rule that puts a
//! blob at `<blobs_dir>/sha256/<hex>`.
//!
//! The ground floor: it imports nothing from the crate, so the layer and image writer
//! (`oci`), the layout and archive (`output`) and the registry client (`registry`) share it
//! without importing each other. It holds words, not behaviour: writing images lives in
//! `oci`, moving them in `registry`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// The empty descriptor's media type: an artifact has no image config.
/// An SPDX 2.3 JSON document (an image's SBOM artifact).
pub const MEDIA_TYPE_SPDX: &str = "application/spdx+json";
/// gib's audit report of an image: the security advisories (GLSAs) that affect its packages
/// (an artifact beside the SBOM; docs/commands.md describes its fields).
pub const MEDIA_TYPE_AUDIT: &str = "application/vnd.gib.audit.v1+json";
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Docker's v2 manifest types, which registries still serve and gib still pulls.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An in-toto statement (a build's provenance), unsigned.
pub const MEDIA_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";

pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_VERSION: &str = "org.opencontainers.image.version";
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
pub const ANNOTATION_BASE_NAME: &str = "org.opencontainers.image.base.name";
pub const ANNOTATION_BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
/// The conventional file name annotation of a layer (oras and registries show it).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// containerd's full image name in a layout's index (`ref.name` holds only a reference).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A validated `sha256:<64 lowercase hex>` digest. Only sha256: it is what every registry
/// and gib's writer use.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, String> {
        let hex = text
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("`{text}` is not a sha256 digest (`sha256:<64 hex>`)"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "`{text}` is not a sha256 digest: it needs 64 lowercase hex digits"
            ));
        }
        Ok(Digest(text.to_string()))
    }

    pub fn of_bytes(bytes: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(bytes).as_slice())
    }

    fn from_hash(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// Where the OCI layout convention stores this blob under `blobs_dir`.
    pub fn blob_path(&self, blobs_dir: &Path) -> PathBuf {
        blobs_dir.join(self.blob_name())
    }

    /// The blob's path relative to a `blobs/` directory: `sha256/<hex>`.
    pub fn blob_name(&self) -> String {
        format!("sha256/{}", self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An OCI content descriptor: what a blob is, its digest and size, and for an index entry
/// its annotations and platform. Read leniently (unknown fields are ignored), so a pulled
/// Docker manifest parses too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor of a blob, without annotations or platform.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// An OS/architecture pair in OCI's (Go's) names, as in an image config and an index's
/// `platform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A target's byte order, which OCI names in some architectures (`ppc64` vs `ppc64le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

impl Platform {
    /// The platform gib runs on: the images it writes and the parents it pulls.
    pub fn host() -> Platform {
        let endian = if cfg!(target_endian = "little") {
            Endian::Little
        } else {
            Endian::Big
        };
        Platform::from_rust(std::env::consts::ARCH, endian)
    }

    /// The Linux platform of a Rust `target_arch` (`std::env::consts::ARCH`) with the given
    /// byte order, in Go's `GOARCH` names; an architecture Go has no name for keeps Rust's.
    pub fn from_rust(arch: &str, endian: Endian) -> Platform {
        let little = endian == Endian::Little;
        let architecture = match arch {
            "x86" => "386",
            "x86_64" => "amd64",
            "arm" if little => "arm",
            "arm" => "armbe",
            "aarch64" if little => "arm64",
            "aarch64" => "arm64be",
            "powerpc" => "ppc",
            "powerpc64" if little => "ppc64le",
            "powerpc64" => "ppc64",
            "mips" if little => "mipsle",
            "mips" => "mips",
            "mips64" if little => "mips64le",
            "mips64" => "mips64",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            architecture: architecture.to_string(),
            os: "linux".to_string(),
            variant: None,
        }
    }

    /// `os/arch[/variant]`, e.g. `linux/arm64/v8`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                architecture: arch.to_string(),
                os: os.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(format!("platform `{text}` is not `os/arch[/variant]`")),
        }
    }

    /// The tag of this platform's own image of an index tagged `tag`: `1.0` -> `1.0-arm64`,
    /// `1.0-arm-v7`. Each platform's image is pushed under it, so builds on other runners
    /// can be joined into the index by tag (a tag is at most 128 characters: a longer one
    /// keeps its end, where the platform is).
    pub fn tag_of(&self, tag: &str) -> String {
        let mut suffix = format!("-{}", self.architecture);
        if let Some(variant) = &self.variant {
            suffix.push('-');
            suffix.push_str(variant);
        }
        let keep = 128usize.saturating_sub(suffix.len());
        let tag: String = tag.chars().take(keep).collect();
        format!("{tag}{suffix}")
    }

    /// Whether an index entry's (or a config's) platform fits; a variant is compared only
    /// when asked for, and arm64's `v8` is arm64 without one (`linux/arm64` and
    /// `linux/arm64/v8` are one platform, as in containerd's matcher).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.plain_variant() == other.plain_variant())
    }

    /// The variant, with arm64's default `v8` as none.
    fn plain_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) => None,
            (_, variant) => variant,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A writer that hashes and counts what passes through it, so a blob is digested while it
/// streams (to a file, a compressor, the network) instead of being read twice.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The digest and size of everything written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let digest = Digest::from_hash(self.hasher.finalize().as_slice());
        (digest, self.written, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_platform_tag_ends_in_the_architecture_and_variant() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert_eq!(arm64.tag_of("1.0"), "1.0-arm64");
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().tag_of("latest"),
            "latest-arm-v7"
        );
        let long = arm64.tag_of(&"x".repeat(128));
        assert_eq!(long.len(), 128);
        assert!(long.ends_with("x-arm64"));
    }

    use super::*;

    #[test]
    fn digests_parse_and_reject() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let digest = Digest::parse(empty).unwrap();
        assert_eq!(Digest::of_bytes(b""), digest);
        assert_eq!(
            digest.blob_path(Path::new("/b")),
            Path::new("/b/sha256").join(digest.hex())
        );
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("sha512:00").is_err());
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
        assert!(Digest::parse(&empty.to_uppercase()).is_err());
    }

    #[test]
    fn hashing_writer_matches_one_shot() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (digest, size, inner) = w.finish();
        assert_eq!(digest, Digest::of_bytes(b"hello world"));
        assert_eq!(size, 11);
        assert_eq!(inner, b"hello world");
    }

    /// Every `target_arch` Rust builds Linux for, with its byte orders, in OCI's names:
    /// the platform gib writes into images is the one it asks registries for.
    #[test]
    fn host_platform_of_each_rust_architecture() {
        use Endian::{Big, Little};
        let cases = [
            ("x86", Little, "386"),
            ("x86_64", Little, "amd64"),
            ("arm", Little, "arm"),
            ("arm", Big, "armbe"),
            ("aarch64", Little, "arm64"),
            ("aarch64", Big, "arm64be"),
            ("powerpc", Big, "ppc"),
            ("powerpc64", Big, "ppc64"),
            ("powerpc64", Little, "ppc64le"),
            ("riscv32", Little, "riscv32"),
            ("riscv64", Little, "riscv64"),
            ("s390x", Big, "s390x"),
            ("loongarch64", Little, "loong64"),
            ("mips", Big, "mips"),
            ("mips", Little, "mipsle"),
            ("mips64", Big, "mips64"),
            ("mips64", Little, "mips64le"),
            ("sparc64", Big, "sparc64"),
            ("csky", Little, "csky"),
            ("hexagon", Little, "hexagon"),
            ("m68k", Big, "m68k"),
        ];
        for (arch, endian, oci) in cases {
            let platform = Platform::from_rust(arch, endian);
            assert_eq!(platform.architecture, oci, "{arch} {endian:?}");
            assert_eq!(platform.os, "linux");
            assert_eq!(platform.variant, None);
        }
        // The machine running the test: the same function, its own byte order.
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        if cfg!(all(target_arch = "x86_64", target_endian = "little")) {
            assert_eq!(host.architecture, "amd64");
        }
        if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            assert_eq!(host.architecture, "ppc64le");
        }
    }

    #[test]
    fn platforms_parse_match_and_serialize_in_one_shape() {
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        assert!(Platform::parse("linux/arm64").unwrap().matches(&arm));
        assert!(!Platform::parse("linux/arm64/v7").unwrap().matches(&arm));
        // arm64/v8 is arm64: either way round, and an entry without a variant fits both.
        let plain = Platform::parse("linux/arm64").unwrap();
        assert!(arm.matches(&plain) && plain.matches(&arm));
        assert!(!arm.matches(&Platform::parse("linux/arm64/v9").unwrap()));
        assert!(!arm.matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(!plain.matches(&Platform::parse("windows/arm64").unwrap()));
        assert!(Platform::parse("linux").is_err());
        assert_eq!(arm.to_string(), "linux/arm64/v8");
        let host = Platform::from_rust("x86_64", Endian::Little);
        assert_eq!(
            serde_json::to_string(&host).unwrap(),
            r#"{"architecture":"amd64","os":"linux"}"#
        );
    }
}
