//! The registry as the cache of record: every image carries its input key in its manifest's
//! annotations, so a run that pushes (`--push`, `--parents-from-registry`) first asks the
//! registry, by the tag it would push to, whether an image of the same inputs is there, and
//! reuses it without building: only its manifest and config are pulled, its layers when an
//! output or a child's build needs them (`materialize`, `pull_layers`).
//!
//! A packages image's key depends on what its build merged (see `key`), so the manifest
//! carries the base key and the merged list too: the key is recomputed from them and the
//! current gib.yaml, never taken on the registry's word. A manifest whose digest is not the
//! one the registry announced, or whose annotations are malformed, is not reused: the image
//! is built, with a warning.
//!
//! Not for: the registry protocol (`registry`), how keys are made (`key`), local cache
//! entries (`entry`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde_json::Value;

use super::from_registry::read_json;
use super::{BuildContext, BuiltImage};
use crate::oci::image::Image;
use crate::oci::spec::{ANNOTATION_VERSION, Descriptor};
use crate::plan::ImagePlan;
use crate::registry::Reference;

/// The image's input key (the key its children build on).
pub const ANNOTATION_INPUT_KEY: &str = "dev.gib.input-key";
/// The key of its inputs before the build (the plan, sources, parent's key).
pub const ANNOTATION_BASE_KEY: &str = "dev.gib.base-key";
/// `category/name` of every package its build merged, space-separated.
pub const ANNOTATION_MERGED: &str = "dev.gib.merged";

/// What a manifest says of the inputs of its image: enough for a runner to recompute the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputKey {
    pub base: String,
    pub merged: Vec<String>,
    pub key: String,
}

impl InputKey {
    /// The key of an image whose key is known before its build (a `rootfs:` image).
    pub fn whole(key: &str) -> InputKey {
        InputKey {
            base: key.to_string(),
            merged: Vec::new(),
            key: key.to_string(),
        }
    }

    pub fn annotations(&self) -> [(String, String); 3] {
        [
            (ANNOTATION_INPUT_KEY.to_string(), self.key.clone()),
            (ANNOTATION_BASE_KEY.to_string(), self.base.clone()),
            (ANNOTATION_MERGED.to_string(), self.merged.join(" ")),
        ]
    }

    /// The input key of a manifest's annotations: `Ok(None)` when it has none (an image of
    /// another tool or of an older gib), an error when they are malformed.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Option<InputKey>> {
        let (Some(key), Some(base)) = (
            annotations.get(ANNOTATION_INPUT_KEY),
            annotations.get(ANNOTATION_BASE_KEY),
        ) else {
            return Ok(None);
        };
        for (name, value) in [(ANNOTATION_INPUT_KEY, key), (ANNOTATION_BASE_KEY, base)] {
            anyhow::ensure!(
                is_key(value),
                "annotation {name} is not a key (64 lowercase hex digits): {:?}",
                truncated(value)
            );
        }
        let merged = annotations
            .get(ANNOTATION_MERGED)
            .map(String::as_str)
            .unwrap_or_default();
        let merged: Vec<String> = merged
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect();
        for name in &merged {
            let valid = name.split_once('/').is_some_and(|(category, package)| {
                !category.is_empty() && !package.is_empty() && !package.contains('/')
            }) && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_./".contains(c));
            anyhow::ensure!(
                valid,
                "annotation {ANNOTATION_MERGED} names {:?}, which is no category/name",
                truncated(name)
            );
        }
        Ok(Some(InputKey {
            base: base.clone(),
            merged,
            key: key.clone(),
        }))
    }
}

fn is_key(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// At most 80 characters of a value the registry sent, for an error message.
fn truncated(text: &str) -> String {
    text.chars().take(80).collect()
}

/// The image of `image`'s inputs in the registry, when this run asks it (`--push`,
/// `--parents-from-registry`) and it has one: the manifest under the tag the image would be
/// pushed to carries `base_key`, and `full_key` of its merged list is its key. `None`: build.
pub fn lookup(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    base_key: &str,
    full_key: impl Fn(&[String]) -> String,
) -> Result<Option<BuiltImage>> {
    if !ctx.registry_cache || ctx.force || ctx.offline {
        return Ok(None);
    }
    let Some((reference, tag)) = cached_reference(ctx, image) else {
        return Ok(None);
    };
    // What gib does instead of reusing it, for the warnings (a join builds nothing).
    let instead = if ctx.registry_only {
        ""
    } else {
        ", building it"
    };
    let fetched = match fetch(ctx, &reference) {
        Ok(Some(fetched)) => fetched,
        Ok(None) => return Ok(None),
        Err(err) => {
            ctx.printer.warn(&format!(
                "image {}: cannot reuse {reference} from the registry{instead}: {err:#}",
                image.name
            ));
            return Ok(None);
        }
    };
    let remote = match InputKey::from_annotations(&fetched.annotations) {
        Ok(Some(remote)) => remote,
        Ok(None) => return Ok(None),
        Err(err) => {
            ctx.printer.warn(&format!(
                "image {}: {reference} ({}) has a malformed input key{instead}: {err:#}",
                image.name, fetched.image.manifest.digest
            ));
            return Ok(None);
        }
    };
    if remote.base != base_key || full_key(&remote.merged) != remote.key {
        ctx.printer.detail(&format!(
            "image {}: {reference} was built from other inputs",
            image.name
        ));
        return Ok(None);
    }
    let version = fetched
        .annotations
        .get(ANNOTATION_VERSION)
        .cloned()
        .unwrap_or(tag);
    // The version becomes the image's tags: a value no tag can be is not taken.
    if let Err(err) = crate::registry::validate_tag(&version) {
        ctx.printer.warn(&format!(
            "image {}: {reference} ({}) has a malformed {ANNOTATION_VERSION}{instead}: {}",
            image.name,
            fetched.image.manifest.digest,
            err.escape_debug()
        ));
        return Ok(None);
    }
    let built = remote_image(image, remote.key, &version, fetched.image, reference);
    ctx.printer.status(
        "Reusing",
        &format!(
            "{} {} (reused from registry)",
            built.name, built.image.manifest.digest
        ),
    );
    Ok(Some(built))
}

/// Where the registry would hold `image` of this run's platform, and the image's own tag:
/// the reference it is pushed to, under its platform's tag for one platform of an index.
/// `None` without `tag:` (or `latest`): the tag is only known after the build.
fn cached_reference(ctx: &BuildContext<'_>, image: &ImagePlan) -> Option<(Reference, String)> {
    let (reference, tag) = super::from_registry::plan_image_reference(image).ok()?;
    let reference = match ctx.plan.index_platforms(&image.name) {
        Some(_) => Reference {
            tag: Some(ctx.plan.platform().tag_of(&tag)),
            ..reference
        },
        None => reference,
    };
    Some((reference, tag))
}

/// With `registry_only` (`gib push --index`, which builds nothing), the error of an image
/// the registry has no image of its inputs for: its platform's leg was not pushed.
pub fn refuse_to_build(ctx: &BuildContext<'_>, image: &ImagePlan) -> Result<()> {
    if !ctx.registry_only {
        return Ok(());
    }
    let platform = ctx.plan.platform();
    let looked_up = cached_reference(ctx, image)
        .map(|(reference, _)| format!(" under {reference}"))
        .unwrap_or_default();
    Err(crate::printer::UserError::with_hint(
        format!(
            "image {} for {platform}: the registry has no image of its current inputs{looked_up}, \
             and gib push --index builds nothing",
            image.name
        ),
        format!(
            "push that platform's leg first (gib push --platform {platform}, on a runner of \
             that platform or with qemu), then join again"
        ),
    ))
}

/// A plan image known from the registry by its manifest and config: its tags and references
/// as the build that pushed it made them, no trees until a child needs them.
pub fn remote_image(
    image: &ImagePlan,
    key: String,
    version: &str,
    written: Image,
    reference: Reference,
) -> BuiltImage {
    let digest = written.manifest.digest.clone();
    BuiltImage {
        name: image.name.clone(),
        key,
        size: super::image_size(&written),
        tags: image.tags(version),
        references: image.references(version),
        packages: Vec::new(),
        layer_dirs: Vec::new(),
        builder_dirs: Vec::new(),
        package_dbs: Vec::new(),
        image: written,
        referrers: Vec::new(),
        lint: None,
        reused: true,
        remote: Some(Reference {
            tag: None,
            digest: Some(digest),
            ..reference
        }),
    }
}

/// A manifest and config pulled from the registry.
pub struct Fetched {
    pub image: Image,
    pub annotations: BTreeMap<String, String>,
}

/// The manifest (for the host's platform) and config of `reference`, verified; `None` when
/// the registry has no such manifest.
pub fn fetch(ctx: &BuildContext<'_>, reference: &Reference) -> Result<Option<Fetched>> {
    let Some(pulled) = crate::registry::pull_manifest_and_config(
        &ctx.registries,
        reference,
        &ctx.plan.platform(),
        ctx.store.root(),
    )?
    else {
        return Ok(None);
    };
    let manifest = read_json(ctx, &pulled.manifest.digest)?;
    let annotations = match manifest.get("annotations") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(value) => serde_json::from_value(value.clone()).with_context(|| {
            format!("{reference}: the manifest's annotations are not a map of strings")
        })?,
    };
    let config_json = read_json(ctx, &pulled.config.digest)?;
    Ok(Some(Fetched {
        image: Image {
            manifest: Descriptor {
                platform: Some(ctx.plan.platform()),
                ..pulled.manifest
            },
            config: pulled.config,
            layers: pulled.layers,
            config_json,
        },
        annotations,
    }))
}

/// `parent` with its trees: an image known from the registry alone is pulled (layers and
/// all, by digest) and unpacked, as a `from:` by reference is, for a child to build on.
pub fn materialize<'p>(
    ctx: &BuildContext<'_>,
    parent: Option<&'p BuiltImage>,
) -> Result<Option<Cow<'p, BuiltImage>>> {
    let Some(parent) = parent else {
        return Ok(None);
    };
    let Some(reference) = &parent.remote else {
        return Ok(Some(Cow::Borrowed(parent)));
    };
    let pulled = super::from_registry::pull_tree(ctx, reference)
        .with_context(|| format!("cannot pull image {} to build on it", parent.name))?;
    Ok(Some(Cow::Owned(BuiltImage {
        packages: pulled.packages,
        layer_dirs: pulled.layer_dirs,
        remote: None,
        ..parent.clone()
    })))
}

/// Pull the layers of `image` when it is known from the registry alone (an output needs
/// them: `--oci-layout`, `--archive`), verified, into the blob store.
pub fn pull_layers(ctx: &BuildContext<'_>, image: &BuiltImage) -> Result<()> {
    let Some(reference) = &image.remote else {
        return Ok(());
    };
    ctx.printer
        .status("Pulling", &format!("{reference} (layers)"));
    crate::registry::pull_image(
        &ctx.registries,
        reference,
        &ctx.plan.platform(),
        ctx.store.root(),
    )
    .with_context(|| format!("cannot pull the layers of image {}", image.name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn input_keys_round_trip_through_annotations() {
        let key = InputKey {
            base: "a".repeat(64),
            merged: vec!["app-misc/greet".into(), "dev-libs/libgreet".into()],
            key: "b".repeat(64),
        };
        let map: BTreeMap<String, String> = key.annotations().into_iter().collect();
        assert_eq!(InputKey::from_annotations(&map).unwrap(), Some(key));
        assert_eq!(InputKey::from_annotations(&BTreeMap::new()).unwrap(), None);
    }

    #[test]
    fn malformed_input_keys_are_refused() {
        let good = "c".repeat(64);
        for (key, merged) in [
            ("not-a-key", "app-misc/greet"),
            (&"C".repeat(64)[..], ""),
            (&good[..], "greet"),
            (&good[..], "app-misc/greet ../../etc/passwd"),
            (&good[..], "a/b/c"),
            (&good[..], "app-misc/gr\u{1b}eet"),
        ] {
            let map = annotations(&[
                (ANNOTATION_INPUT_KEY, key),
                (ANNOTATION_BASE_KEY, &good),
                (ANNOTATION_MERGED, merged),
            ]);
            assert!(
                InputKey::from_annotations(&map).is_err(),
                "{key} {merged} was accepted"
            );
        }
    }
}
