//! The file as written: serde structs that mirror gib.yaml key by key, with the source
//! location of every value that validation may have to point at.
//!
//! Unknown keys are rejected here (`deny_unknown_fields`); meaning, defaults and cross-checks
//! live in `validate`.
//!
//! The same types give `gib schema` its JSON Schema (schemars reads the serde attributes), so
//! the keys and value types an editor offers are the ones this reader accepts. The words a key
//! takes (`compression: gzip`) are listed here once, for the schema and for `validate`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

/// `build.compression`
pub const COMPRESSIONS: [&str; 2] = ["gzip", "zstd"];
/// `portage.sync_type` and `repositories[].sync_type`
pub const SYNC_TYPES: [&str; 5] = ["git", "rsync", "webrsync", "local", "none"];
/// `images.*.layering.strategy`
pub const LAYERING_STRATEGIES: [&str; 2] = ["single", "per-package"];
/// `audit.fail_on` (and `images.*.audit.fail_on`)
pub const AUDIT_FAIL_ON: [&str; 4] = ["high", "normal", "low", "never"];
/// `images.*.paths[].type`
pub const PATH_TYPES: [&str; 3] = ["directory", "file", "symlink"];

/// A value with the place it came from: serde-saphyr's `Spanned`, as gib's own type so that
/// its schema can be the schema of the value.
#[derive(Debug, Clone, PartialEq)]
pub struct S<T> {
    pub value: T,
    pub referenced: Location,
    pub defined: Location,
}

impl<T> S<T> {
    pub const fn new(value: T, referenced: Location, defined: Location) -> Self {
        S {
            value,
            referenced,
            defined,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for S<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<T>::deserialize(deserializer)?;
        Ok(S::new(spanned.value, spanned.referenced, spanned.defined))
    }
}

impl<T: JsonSchema> JsonSchema for S<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A schema transform: the key takes one of `names` (or is left empty, which the reader takes
/// as absent).
fn one_of(names: &'static [&'static str]) -> impl Fn(&mut Schema) {
    move |schema: &mut Schema| {
        let mut choices: Vec<serde_json::Value> = names.iter().map(|n| (*n).into()).collect();
        choices.push(serde_json::Value::Null);
        schema.insert("enum".into(), choices.into());
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "gib.yaml",
    description = "gib's configuration: a stage3, ebuild repositories, build settings and a DAG of images. Reference: docs/gib-yaml.md"
)]
pub struct RawFile {
    pub stage3: Option<S<RawStage3>>,
    pub portage: Option<S<RawPortage>>,
    pub repositories: Option<Vec<S<RawRepository>>>,
    pub build: Option<S<RawBuild>>,
    pub registry: Option<S<String>>,
    pub registries: Option<Entries<S<RawRegistrySettings>>>,
    pub images: Option<S<Entries<S<RawImage>>>>,
    pub audit: Option<S<RawAudit>>,
    /// `os/arch` of each image, e.g. `[linux/amd64, linux/arm64]`.
    pub platforms: Option<S<Vec<S<String>>>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    #[schemars(transform = one_of(&AUDIT_FAIL_ON))]
    pub fail_on: Option<S<String>>,
    pub ignore: Option<Vec<S<RawAuditIgnore>>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuditIgnore {
    pub id: S<String>,
    pub reason: Option<S<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage3 {
    pub flavor: Option<S<String>>,
    pub mirror: Option<S<String>>,
    pub pin: Option<S<String>>,
    pub url: Option<S<PerArch>>,
    pub path: Option<S<PerArch>>,
    pub sha512: Option<S<PerArch>>,
    pub fingerprint: Option<S<String>>,
    pub keyring: Option<S<String>>,
    pub ca_certificate: Option<S<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPortage {
    #[schemars(transform = one_of(&SYNC_TYPES))]
    pub sync_type: Option<S<String>>,
    pub uri: Option<S<String>>,
    pub pin: Option<S<String>>,
    pub fingerprint: Option<S<String>>,
    pub keyring: Option<S<String>>,
    pub ca_certificate: Option<S<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRepository {
    pub name: S<String>,
    #[schemars(transform = one_of(&SYNC_TYPES))]
    pub sync_type: Option<S<String>>,
    pub uri: Option<S<String>>,
    pub ca_certificate: Option<S<String>>,
    pub priority: Option<S<i32>>,
}

/// `registries: {"host:port": {…}}`: how to reach one registry.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRegistrySettings {
    pub ca_certificate: Option<S<String>>,
    pub plain_http: Option<bool>,
    pub chunk_size: Option<S<u64>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBuild {
    pub threads: Option<S<u32>>,
    pub max_parallel_jobs: Option<S<u32>>,
    pub parallel_images: Option<S<u32>>,
    pub global_use_flags: Option<S<RawUseFlags>>,
    pub package_use_flags: Option<Entries<S<OneOrMany>>>,
    pub accept_keywords: Option<Entries<Option<S<OneOrMany>>>>,
    pub accept_licenses: Option<Entries<S<OneOrMany>>>,
    #[schemars(transform = one_of(&COMPRESSIONS))]
    pub compression: Option<S<String>>,
    pub keep_headers: Option<bool>,
    pub keep_static_libs: Option<bool>,
    pub keep_service_files: Option<bool>,
    pub keep_package_db: Option<bool>,
    pub binhost: Option<S<String>>,
    pub binhost_verify_signature: Option<S<bool>>,
    pub distfile_mirrors: Option<Vec<S<String>>>,
    pub lint: Option<S<RawLint>>,
}

/// `build.lint` and `images.*.lint`: what the lint of a finished image may fail.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLint {
    pub fail: Option<bool>,
    pub ignore: Option<Vec<S<String>>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUseFlags {
    pub add: Option<S<OneOrMany>>,
    pub remove: Option<S<OneOrMany>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    pub from: Option<S<String>>,
    pub packages: Option<S<OneOrMany>>,
    pub builder_packages: Option<S<OneOrMany>>,
    pub script: Option<S<String>>,
    pub context: Option<S<String>>,
    pub rootfs: Option<S<String>>,
    pub tag: Option<S<String>>,
    pub latest: Option<bool>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Entries<String>>,
    pub user: Option<S<String>>,
    pub workdir: Option<S<String>>,
    pub labels: Option<Entries<String>>,
    pub expose: Option<Vec<S<String>>>,
    pub volumes: Option<Vec<S<String>>>,
    pub test: Option<S<String>>,
    pub layering: Option<S<RawLayering>>,
    pub accounts: Option<S<RawAccounts>>,
    pub paths: Option<Vec<S<RawPath>>>,
    pub keep_headers: Option<bool>,
    pub keep_static_libs: Option<bool>,
    pub keep_service_files: Option<bool>,
    pub keep_package_db: Option<bool>,
    pub audit: Option<S<RawAudit>>,
    pub platforms: Option<S<Vec<S<String>>>>,
    pub lint: Option<S<RawLint>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLayering {
    #[schemars(transform = one_of(&LAYERING_STRATEGIES))]
    pub strategy: Option<S<String>>,
    pub budget: Option<S<u32>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccounts {
    pub users: Option<Vec<S<RawUser>>>,
    pub groups: Option<Vec<S<RawGroup>>>,
    pub run_as: Option<S<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    pub name: S<String>,
    pub uid: u32,
    pub gid: Option<u32>,
    pub home: Option<S<String>>,
    pub shell: Option<S<String>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    pub name: S<String>,
    pub gid: u32,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPath {
    pub path: S<String>,
    #[serde(rename = "type")]
    #[schemars(transform = one_of(&PATH_TYPES))]
    pub kind: S<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<S<ModeText>>,
    pub source: Option<S<String>>,
    pub target: Option<S<String>>,
}

/// The predecessor's `config.yaml` (one image, recognised by its top-level `target:`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacyFile {
    pub portage_mirror: Option<S<RawPortage>>,
    pub build: Option<S<RawBuild>>,
    pub custom_ebuild_repository: Option<S<LegacyCustomRepository>>,
    pub target: S<RawLegacyTarget>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacyTarget {
    pub container_tag: S<String>,
    pub package_atoms: Option<S<OneOrMany>>,
}

/// `custom_ebuild_repository: false`, or a mapping.
pub enum LegacyCustomRepository {
    Disabled,
    Enabled(RawLegacyRepository),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegacyRepository {
    pub sync_type: Option<String>,
    pub uri: Option<String>,
    pub certificate: Option<String>,
}

impl<'de> Deserialize<'de> for LegacyCustomRepository {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FalseOrMap;
        impl<'de> Visitor<'de> for FalseOrMap {
            type Value = LegacyCustomRepository;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`false` or a mapping with sync_type, uri and certificate")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(LegacyCustomRepository::Disabled)
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawLegacyRepository::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(LegacyCustomRepository::Enabled)
            }
        }
        deserializer.deserialize_any(FalseOrMap)
    }
}

/// One string or a list of strings (`packages: dev-lang/python` or `packages: [a, b]`).
#[derive(Debug)]
pub enum OneOrMany {
    One(String),
    Many(Vec<S<String>>),
}

impl OneOrMany {
    /// The items with their locations; a single string takes the location of the whole value.
    pub fn items(self, whole: serde_saphyr::Location) -> Vec<S<String>> {
        match self {
            OneOrMany::One(value) => vec![S::new(value, whole, whole)],
            OneOrMany::Many(items) => items,
        }
    }
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrList;
        impl<'de> Visitor<'de> for StringOrList {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        deserializer.deserialize_any(StringOrList)
    }
}

impl JsonSchema for OneOrMany {
    fn schema_name() -> Cow<'static, str> {
        "OneOrMany".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "one string or a list of strings",
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}}
            ]
        })
    }
}

/// `path: stage3.tar.xz`, or one per architecture: `path: {amd64: a.tar.xz, arm64: b.tar.xz}`.
pub enum PerArch {
    One(String),
    Each(Entries<S<String>>),
}

impl<'de> Deserialize<'de> for PerArch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrMap;
        impl<'de> Visitor<'de> for StringOrMap {
            type Value = PerArch;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a mapping of architecture to string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PerArch::One(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Entries::deserialize(de::value::MapAccessDeserializer::new(map)).map(PerArch::Each)
            }
        }
        deserializer.deserialize_any(StringOrMap)
    }
}

impl JsonSchema for PerArch {
    fn schema_name() -> Cow<'static, str> {
        "PerArch".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "one string, or one per architecture (amd64, arm64)",
            "anyOf": [
                {"type": "string"},
                {"type": "object", "additionalProperties": {"type": "string"}}
            ]
        })
    }
}

/// A file mode; YAML would read an unquoted `0755` as the decimal 755, so it must be a
/// string, and a number is reported as such rather than silently misread.
pub struct ModeText(pub Result<String, String>);

impl<'de> Deserialize<'de> for ModeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Mode;
        impl Visitor<'_> for Mode {
            type Value = ModeText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal mode as a quoted string, e.g. \"0755\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ModeText(Ok(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ModeText(Err(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ModeText(Err(v.to_string())))
            }
            // The YAML reader may resolve an unquoted `0755` as a float.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ModeText(Err(v.to_string())))
            }
        }
        deserializer.deserialize_any(Mode)
    }
}

impl JsonSchema for ModeText {
    fn schema_name() -> Cow<'static, str> {
        "Mode".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "an octal mode as a quoted string, e.g. \"0755\"",
            "type": "string"
        })
    }
}

/// A mapping kept in file order with the location of each key, so that validation can point
/// at a bad image name or atom. Duplicate keys are already refused by the YAML reader.
pub struct Entries<V>(pub Vec<(S<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for Entries<V> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        format!("Entries_of_{}", V::schema_name()).into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": generator.subschema_for::<V>()
        })
    }
}
