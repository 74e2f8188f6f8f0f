//! `gib build`: config -> plan -> (stage3 -> sandbox -> emerge) -> rootfs -> oci -> outputs.
//!
//! For now it builds `rootfs:` images (a directory or tarball taken as the image's layer),
//! which need no stage3 or Portage; images that emerge packages come with the sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::BuildArgs;
use crate::cache::{Cache, remove_any};
use crate::config::{self, Config, Image as ImageConfig, Parent};
use crate::oci::blob::BlobStore;
use crate::oci::image::{
    ANNOTATION_BASE_NAME, ANNOTATION_REF_NAME, ANNOTATION_REVISION, ANNOTATION_SOURCE,
    ANNOTATION_VERSION, Image, ImageRequest, ImageSettings, write_image,
};
use crate::oci::layer::{LayerOptions, LayerSource, write_layer};
use crate::oci::unpack::{TarballKind, unpack_tarball};
use crate::output::{TaggedImage, archive::write_archive, layout::write_layout};
use crate::printer::{Printer, UserError};

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let printer = Printer::new(args.verbose);
    if !args.config.file.exists() {
        return Err(UserError::with_hint(
            format!("{} does not exist", args.config.file.display()),
            "pass the configuration file with -f FILE",
        )
        .into());
    }
    let config = config::load(&args.config.file)?;
    let order = order::build_order(&config, &args.images)?;
    if args.push {
        return Err(UserError::new("--push is not available yet").into());
    }
    for name in &order {
        let image = &config.images[name];
        if image.rootfs.is_none() {
            return Err(UserError::new(format!(
                "image {name}: only `rootfs:` images can be built so far"
            ))
            .into());
        }
    }
    let source_date_epoch = source_date_epoch()?;

    let cache = Cache::open(args.cache_dir.as_deref())?;
    let store = BlobStore::open(&cache.dir("blobs")?)?;
    let layer_options = LayerOptions {
        compression: config.build.compression,
        source_date_epoch,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };

    let mut built: BTreeMap<String, Image> = BTreeMap::new();
    let mut outputs: Vec<(String, String, String)> = Vec::new(); // (image, reference, tag)
    for name in &order {
        let image_config = &config.images[name];
        let parent = match &image_config.from {
            Parent::Scratch => None,
            Parent::Image(parent) => Some(
                built
                    .get(parent)
                    .with_context(|| format!("image {parent} was not built before {name}"))?,
            ),
            Parent::Registry(reference) => {
                return Err(UserError::new(format!(
                    "image {name}: building on a registry image ({reference}) is not available yet"
                ))
                .into());
            }
        };
        let rootfs = image_config
            .rootfs
            .as_deref()
            .context("a rootfs image without rootfs")?;
        printer.status("Layering", &format!("{name} from {}", rootfs.display()));
        let layer = rootfs_layer(name, rootfs, &cache, &store, &layer_options)?;
        printer.detail(&format!("layer {} ({} bytes)", layer.digest, layer.size));

        let tag = image_tag(image_config);
        let reference = image_reference(&config, name, &tag);
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_REF_NAME.to_string(), reference.clone());
        if image_config.tag.is_some() {
            annotations.insert(ANNOTATION_VERSION.to_string(), tag.clone());
        }
        // Source and revision are known when the user labelled the image with them.
        for key in [ANNOTATION_SOURCE, ANNOTATION_REVISION] {
            if let Some(value) = image_config.labels.get(key) {
                annotations.insert(key.to_string(), value.clone());
            }
        }
        if let Parent::Image(parent_name) = &image_config.from {
            let parent_reference = image_reference(
                &config,
                parent_name,
                &image_tag(&config.images[parent_name]),
            );
            annotations.insert(ANNOTATION_BASE_NAME.to_string(), parent_reference);
        }
        let image = write_image(
            &store,
            &ImageRequest {
                parent,
                layers: vec![layer],
                settings: image_settings(image_config),
                created: source_date_epoch.unwrap_or(0),
                created_by: format!("gib {}: rootfs {name}", env!("CARGO_PKG_VERSION")),
                annotations,
            },
        )?;
        printer.status("Built", &format!("{reference} {}", image.manifest.digest));
        built.insert(name.clone(), image);
        outputs.push((name.clone(), reference, tag));
    }

    let tagged: Vec<TaggedImage> = outputs
        .iter()
        .map(|(name, reference, tag)| TaggedImage {
            image: &built[name],
            reference: reference.clone(),
            tag: tag.clone(),
        })
        .collect();
    if let Some(dir) = &args.oci_layout {
        write_layout(dir, &store, &tagged)
            .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
        printer.status("Wrote", &format!("OCI layout {}", dir.display()));
    }
    if let Some(file) = &args.archive {
        write_archive(file, &store, &tagged)
            .with_context(|| format!("cannot write the archive {}", file.display()))?;
        printer.status("Wrote", &format!("archive {}", file.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The layer of a `rootfs:` directory or tarball.
fn rootfs_layer(
    name: &str,
    rootfs: &Path,
    cache: &Cache,
    store: &BlobStore,
    options: &LayerOptions,
) -> Result<crate::oci::layer::Layer> {
    let meta = std::fs::metadata(rootfs).map_err(|e| {
        UserError::new(format!(
            "image {name}: cannot read its rootfs {}: {e}",
            rootfs.display()
        ))
    })?;
    if meta.is_dir() {
        let source = LayerSource {
            root: rootfs.to_path_buf(),
            removed: Vec::new(),
            overlay_markers: false,
        };
        return write_layer(&source, store, options);
    }
    let Some(kind) = TarballKind::from_path(rootfs) else {
        return Err(UserError::new(format!(
            "image {name}: rootfs {} is neither a directory nor a tarball \
             (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2)",
            rootfs.display()
        ))
        .into());
    };
    let scratch = cache.scratch_path("unpack")?;
    let result = unpack_tarball(rootfs, kind, &scratch).and_then(|()| {
        let source = LayerSource {
            root: scratch.clone(),
            removed: Vec::new(),
            overlay_markers: false,
        };
        write_layer(&source, store, options)
    });
    remove_any(&scratch).with_context(|| format!("cannot remove {}", scratch.display()))?;
    result
}

/// `tag:` when set, else `latest`.
fn image_tag(image: &ImageConfig) -> String {
    image.tag.clone().unwrap_or_else(|| "latest".to_string())
}

/// `<registry>/<name>:<tag>`, or `<name>:<tag>` without a registry.
fn image_reference(config: &Config, name: &str, tag: &str) -> String {
    match &config.registry {
        Some(registry) => format!("{}/{name}:{tag}", registry.trim_end_matches('/')),
        None => format!("{name}:{tag}"),
    }
}

fn image_settings(image: &ImageConfig) -> ImageSettings {
    ImageSettings {
        entrypoint: image.entrypoint.clone(),
        cmd: image.cmd.clone(),
        env: image.env.clone(),
        user: image.user.clone(),
        workdir: image.workdir.clone(),
        labels: image.labels.clone(),
        exposed_ports: image.expose.clone(),
        volumes: image.volumes.clone(),
    }
}

/// SOURCE_DATE_EPOCH, when set: clamps mtimes and dates the image.
fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) if !value.is_empty() => value.trim().parse().map(Some).map_err(|_| {
            UserError::new(format!(
                "SOURCE_DATE_EPOCH must be a number of seconds, not {value:?}"
            ))
            .into()
        }),
        _ => Ok(None),
    }
}

/// The images to build, ancestors first. Deliberately tiny: the `plan` module replaces it.
mod order {
    use super::*;

    pub fn build_order(config: &Config, selected: &[String]) -> Result<Vec<String>> {
        let roots: Vec<String> = if selected.is_empty() {
            config.images.keys().cloned().collect()
        } else {
            selected.to_vec()
        };
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        for name in &roots {
            visit(config, name, &mut Vec::new(), &mut done, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        config: &Config,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) -> Result<()> {
        if done.contains(name) {
            return Ok(());
        }
        if stack.iter().any(|s| s == name) {
            return Err(UserError::new(format!(
                "images depend on each other in a cycle: {} -> {name}",
                stack.join(" -> ")
            ))
            .into());
        }
        let Some(image) = config.images.get(name) else {
            return Err(UserError::new(format!(
                "no image named {name} in {}",
                config.file.display()
            ))
            .into());
        };
        stack.push(name.to_string());
        if let Parent::Image(parent) = &image.from {
            visit(config, parent, stack, done, order)?;
        }
        stack.pop();
        done.insert(name.to_string());
        order.push(name.to_string());
        Ok(())
    }
}
