//! A run's platforms: one leg per platform (its images, each for that platform alone, in
//! that platform's stage3), the references each leg's images are written and pushed under,
//! and the image index that joins an image's platforms.
//!
//! Not for: building a leg (`run`, `schedule`), writing the index's bytes (`oci::index`),
//! the outputs themselves (`output`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;

use super::BuiltImage;
use super::run::{RunRequest, tag_of};
use super::schedule::BuildTimes;
use crate::config::Parent;
use crate::oci::blob::BlobStore;
use crate::oci::index::IndexEntry;
use crate::oci::spec::Platform;
use crate::output::{OutputImage, OutputIndex};
use crate::plan::Plan;

/// One platform's part of a run: its images, each for that platform alone, built in that
/// platform's stage3. A run of images with one platform is one leg.
pub(super) struct Leg {
    pub platform: Platform,
    pub plan: Plan,
}

/// What a leg built.
pub(super) struct LegBuilt {
    pub images: Vec<BuiltImage>,
    pub pulled: BTreeSet<String>,
    pub times: BTreeMap<String, BuildTimes>,
}

/// The legs of `request`: one for `--platform`'s, else one per platform of the named
/// images (all when none is named) in the order gib.yaml first lists them; one leg of the
/// whole plan when the images have a single platform.
pub(super) fn plan_legs(request: &RunRequest<'_>) -> Result<Vec<Leg>> {
    let config = request.config;
    let whole = Plan::resolve(config, request.images)?;
    // Each image of several platforms is an index: its platforms in the file's order.
    let indexes: BTreeMap<String, Vec<Platform>> = whole
        .images
        .iter()
        .filter(|image| image.platforms.len() > 1)
        .map(|image| (image.name.clone(), image.platforms.clone()))
        .collect();
    let named: BTreeSet<&str> = request.images.iter().map(String::as_str).collect();
    let mut platforms: Vec<Platform> = Vec::new();
    for image in &whole.images {
        // An ancestor has every platform of its children: the named images decide.
        if !named.is_empty() && !named.contains(image.name.as_str()) {
            continue;
        }
        for platform in &image.platforms {
            if !platforms.contains(platform) {
                platforms.push(platform.clone());
            }
        }
    }
    if request.platform.is_none() && platforms.len() <= 1 {
        let platform = whole.platform();
        let mut plan = whole;
        plan.indexes = indexes;
        return Ok(vec![Leg { platform, plan }]);
    }
    let wanted: Vec<String> = match request.platform {
        Some(platform) => vec![platform.to_string()],
        None => platforms.iter().map(Platform::to_string).collect(),
    };
    let mut legs = Vec::new();
    for platform in wanted {
        let mut leg_config = config.clone();
        leg_config.keep_only_platform(&platform)?;
        let images: Vec<String> = request
            .images
            .iter()
            .filter(|name| leg_config.images.contains_key(*name))
            .cloned()
            .collect();
        if !request.images.is_empty() && images.is_empty() {
            return Err(crate::printer::UserError::new(format!(
                "--platform {platform}: none of the named images ({}) is built for it",
                request.images.join(", ")
            ))
            .into());
        }
        let mut plan = Plan::resolve(&leg_config, &images)?;
        plan.indexes = indexes.clone();
        legs.push(Leg {
            platform: plan.platform(),
            plan,
        });
    }
    Ok(legs)
}

/// `linux/arm64 (under qemu-aarch64)`, or `linux/amd64 (this host's)`.
pub(super) fn describe_platform(platform: &Platform) -> String {
    use crate::stage3::arch;
    match arch::of(platform) {
        Some(a) if arch::of(&Platform::host()) != Some(a) => {
            format!("{platform} (under qemu-{})", a.qemu)
        }
        _ => format!("{platform} (this host's)"),
    }
}

/// One leg's image as the outputs name it.
pub(super) struct LegOutput<'r> {
    image: &'r BuiltImage,
    key: String,
    layout_references: Vec<String>,
    archive_references: Vec<String>,
    push_references: Vec<String>,
    parent_reference: Option<String>,
    pulled: bool,
}

impl LegOutput<'_> {
    pub(super) fn output(&self) -> OutputImage<'_> {
        OutputImage {
            name: &self.image.name,
            key: &self.key,
            image: &self.image.image,
            layout_references: &self.layout_references,
            archive_references: &self.archive_references,
            push_references: &self.push_references,
            referrers: &self.image.referrers,
            parent_reference: self.parent_reference.as_deref(),
            pulled: self.pulled,
            in_registry: self.image.remote.is_some(),
        }
    }
}

/// The references each leg's images are written and pushed under. An image of one platform
/// has its tags everywhere. One platform of an index is pushed under its platform's tags
/// (`1.0-arm64`: legs built on other runners never overwrite each other, and `gib push
/// --index` finds them); when the run builds every platform, the layout names it so beside
/// the index, and the archive (which holds no index) so too, the host's platform also under
/// the image's own tags. A `--platform` leg's files hold its one platform under the tags.
pub(super) fn leg_outputs<'r>(
    request: &RunRequest<'_>,
    legs: &[Leg],
    built: &'r [LegBuilt],
) -> Vec<LegOutput<'r>> {
    let host = Platform::host();
    let mut outputs: Vec<LegOutput<'r>> = Vec::new();
    for (leg, done) in legs.iter().zip(built) {
        let first = outputs.len();
        for (plan_image, image) in leg.plan.images.iter().zip(&done.images) {
            let plain = image.references.clone();
            let in_index = leg.plan.index_platforms(&image.name).is_some();
            let per_platform: Vec<String> = image
                .tags
                .iter()
                .map(|tag| plan_image.reference(&leg.platform.tag_of(tag)))
                .collect();
            let (layout, archive) = match (in_index, request.platform) {
                (false, _) | (true, Some(_)) => (plain.clone(), plain.clone()),
                (true, None) => {
                    let mut archive = per_platform.clone();
                    if host.matches(&leg.platform) {
                        archive.extend(plain.iter().cloned());
                    }
                    (per_platform.clone(), archive)
                }
            };
            let push = if in_index {
                per_platform.clone()
            } else {
                plain.clone()
            };
            let parent_reference = match &plan_image.parent {
                Parent::Scratch => None,
                Parent::Image(name) => outputs[first..]
                    .iter()
                    .find(|o| &o.image.name == name)
                    .and_then(|o| o.push_references.first().cloned()),
                Parent::Registry(reference) => Some(reference.clone()),
            };
            outputs.push(LegOutput {
                image,
                key: push_key(&image.name, in_index.then_some(&leg.platform)),
                layout_references: layout,
                archive_references: archive,
                push_references: push,
                parent_reference,
                pulled: done.pulled.contains(&image.name),
            });
        }
    }
    outputs
}

/// The key of an image's push report: its name, with the platform for one of an index.
pub(super) fn push_key(name: &str, platform: Option<&Platform>) -> String {
    match platform {
        Some(platform) => format!("{name}@{platform}"),
        None => name.to_string(),
    }
}

/// An image index written in this run: every platform's manifest of one image.
pub(super) struct BuiltIndex {
    pub name: String,
    pub references: Vec<String>,
    pub entries: Vec<IndexEntry>,
    pub descriptor: crate::oci::spec::Descriptor,
}

impl BuiltIndex {
    pub(super) fn output(&self) -> OutputIndex<'_> {
        OutputIndex {
            name: &self.name,
            index: &self.descriptor,
            references: &self.references,
        }
    }
}

/// The index of each image of several platforms, its manifests in gib.yaml's order of the
/// platforms, under the image's tags: these must be the same for every platform (a tag
/// from the package version may differ where the package is keyworded apart).
pub(super) fn write_indexes(
    store: &BlobStore,
    legs: &[Leg],
    built: &[LegBuilt],
) -> Result<Vec<BuiltIndex>> {
    let mut names: Vec<&str> = Vec::new();
    for leg in legs {
        for image in &leg.plan.images {
            if leg.plan.index_platforms(&image.name).is_some() && !names.contains(&&*image.name) {
                names.push(&image.name);
            }
        }
    }
    let mut indexes = Vec::new();
    for name in names {
        let mut found: Vec<(&Platform, &BuiltImage)> = Vec::new();
        for (leg, done) in legs.iter().zip(built) {
            if let Some(image) = done.images.iter().find(|i| i.name == name) {
                found.push((&leg.platform, image));
            }
        }
        let order = legs
            .iter()
            .find_map(|leg| leg.plan.index_platforms(name))
            .unwrap_or_default();
        found.sort_by_key(|(platform, _)| order.iter().position(|p| p == *platform));
        let Some((first_platform, first)) = found.first() else {
            continue;
        };
        for (platform, image) in &found {
            if image.references != first.references {
                return Err(crate::printer::UserError::with_hint(
                    format!(
                        "image {name}: its platforms have other tags ({first_platform}: {}; \
                         {platform}: {}), and one index has one set of tags",
                        tag_list(first),
                        tag_list(image)
                    ),
                    format!("give image {name} a `tag:`"),
                ));
            }
        }
        let entries: Vec<IndexEntry> = found
            .iter()
            .map(|(platform, image)| IndexEntry {
                platform: (*platform).clone(),
                manifest: image.image.manifest.clone(),
            })
            .collect();
        let descriptor = crate::oci::index::write_index(store, &entries)?;
        indexes.push(BuiltIndex {
            name: name.to_string(),
            references: first.references.clone(),
            entries,
            descriptor,
        });
    }
    Ok(indexes)
}

fn tag_list(image: &BuiltImage) -> String {
    image
        .references
        .iter()
        .map(|r| tag_of(r))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    /// The legs of a file of `app`, a `rootfs:` image for amd64 and arm64, each built as
    /// an image of `tags`, in the order given.
    fn legs_of(order: &[&str], tags: &[&str]) -> (Vec<super::Leg>, Vec<super::LegBuilt>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tree")).unwrap();
        let file = dir.path().join("gib.yaml");
        std::fs::write(
            &file,
            "platforms: [linux/amd64, linux/arm64]\nimages:\n  app: {rootfs: ./tree, tag: t}\n",
        )
        .unwrap();
        let config = crate::config::load(&file).unwrap();
        let mut legs = Vec::new();
        let mut built = Vec::new();
        for (platform, tag) in order.iter().zip(tags) {
            let mut leg_config = config.clone();
            leg_config.keep_only_platform(platform).unwrap();
            let mut plan = super::Plan::resolve(&leg_config, &[]).unwrap();
            plan.indexes.insert(
                "app".into(),
                vec![
                    super::Platform::parse("linux/amd64").unwrap(),
                    super::Platform::parse("linux/arm64").unwrap(),
                ],
            );
            let digest = crate::oci::spec::Digest::of_bytes(platform.as_bytes());
            let image: super::BuiltImage = serde_json::from_value(serde_json::json!({
                "name": "app", "key": "k", "tags": [tag], "references": [format!("app:{tag}")],
                "packages": [], "layer_dirs": [], "builder_dirs": [], "size": 1,
                "image": {
                    "manifest": {"mediaType": crate::oci::spec::MEDIA_TYPE_MANIFEST,
                                 "digest": digest, "size": 10},
                    "config": {"mediaType": crate::oci::spec::MEDIA_TYPE_CONFIG,
                               "digest": digest, "size": 10},
                    "layers": [], "config_json": {},
                },
            }))
            .unwrap();
            legs.push(super::Leg {
                platform: plan.platform(),
                plan,
            });
            built.push(super::LegBuilt {
                images: vec![image],
                pulled: Default::default(),
                times: Default::default(),
            });
        }
        (legs, built)
    }

    #[test]
    fn an_index_lists_the_platforms_in_the_files_order_whatever_the_legs_order() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = crate::oci::blob::BlobStore::open(store_dir.path()).unwrap();
        let (legs, built) = legs_of(&["linux/arm64", "linux/amd64"], &["t", "t"]);
        let indexes = super::write_indexes(&store, &legs, &built).unwrap();
        assert_eq!(indexes.len(), 1);
        let platforms: Vec<String> = indexes[0]
            .entries
            .iter()
            .map(|e| e.platform.to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(indexes[0].references, ["app:t"]);
    }

    #[test]
    fn platforms_of_other_tags_make_no_index() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = crate::oci::blob::BlobStore::open(store_dir.path()).unwrap();
        let (legs, built) = legs_of(&["linux/amd64", "linux/arm64"], &["1.0", "1.1"]);
        let Err(err) = super::write_indexes(&store, &legs, &built) else {
            panic!("an index of two tags");
        };
        let text = format!("{err:#}");
        assert!(
            text.contains(
                "image app: its platforms have other tags (linux/amd64: 1.0; linux/arm64: 1.1)"
            ),
            "{text}"
        );
    }
}
