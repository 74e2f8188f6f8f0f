//! `rootfs:` images: a directory or a tarball taken as the image's layer. A tarball's image
//! is keyed by the tarball's content (not its name or time), its parent and what decides the
//! build's epoch, and reused like any other image without unpacking or entering a sandbox;
//! its unpacked tree is kept by its content too. A directory is always read again (nothing
//! cheaper tells what it holds); its key includes the layer's diff_id, so children are
//! rebuilt exactly when the tree changed. Both are clamped to the build's epoch.
//!
//! Owners are those the sandbox's user namespace sees: for an unprivileged user, files it
//! owns are root's in the image (as `COPY` gives them), files of its subordinate ids are
//! the ids they map to, and files of anybody else (root's, say) keep their ids, so a tree
//! gives the same layer whoever builds it. A directory is read in place with its owners
//! rewritten that way; a tarball is unpacked in the user namespace (an unprivileged user's
//! unpack keeps the tarball's owners, 0, 250, …) and its layer written there. Only root can
//! create a tarball's device nodes; an unprivileged unpack leaves them out and says so.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use sha2::{Digest, Sha256};

use super::entry::Slot;
use super::{BuildContext, BuiltImage, hash_parts, layer::layer_options};
use crate::cache::remove_any;
use crate::oci::layer::{IdShift, LayerSource, OwnerMap, write_layer};
use crate::plan::ImagePlan;
use crate::printer::{UserError, human_bytes};
use crate::sandbox::IdMode;
use crate::tarball::{self, TarballKind};

pub fn build(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    rootfs: &Path,
) -> Result<BuiltImage> {
    // The layer is written whatever the parent holds, but the image's children build on
    // the parent's tree too.
    let parent = super::registry_cache::materialize(ctx, parent)?;
    let parent = parent.as_deref();
    let tarball = match RootfsKind::of(&image.name, rootfs)? {
        // A directory is read in place: cheap, and nothing but reading it tells what it holds.
        RootfsKind::Directory => return build_layer(ctx, image, parent, rootfs, None),
        RootfsKind::Tarball => rootfs,
    };
    let content = content_digest(tarball)?;
    // Where the tarball lies is no input: what it holds is. This names the cache slot of
    // the tarball's inputs; the image's key is its layer's (see `build_layer`).
    let unplaced = super::key::placeless(image);
    let inputs = hash_parts(&[
        "rootfs",
        &format!("{unplaced:?}"),
        parent.map_or("", |p| p.key.as_str()),
        &content,
        &ctx.epoch_identity()?,
    ]);
    let slot = Slot::new(&image.name, &inputs);
    if !ctx.force
        && let Some(record) = reuse(ctx, &slot)?
    {
        return Ok(record);
    }
    // One gib builds these inputs at a time; another waits for it and reuses its entry.
    let _building = ctx.cache.lock("build", slot.name())?;
    if !ctx.force
        && let Some(record) = reuse(ctx, &slot)?
    {
        return Ok(record);
    }
    let record = build_layer(ctx, image, parent, tarball, Some(&content))?;
    slot.publish_record(ctx.cache, ctx.store, &record)?;
    Ok(record)
}

/// What a `rootfs:` names.
enum RootfsKind {
    Directory,
    Tarball,
}

impl RootfsKind {
    fn of(name: &str, rootfs: &Path) -> Result<RootfsKind> {
        let meta = std::fs::metadata(rootfs).map_err(|e| {
            UserError::new(format!(
                "image {name}: cannot read its rootfs {}: {e}",
                rootfs.display()
            ))
        })?;
        if meta.is_dir() {
            return Ok(RootfsKind::Directory);
        }
        if TarballKind::from_path(rootfs).is_none() {
            return Err(UserError::new(format!(
                "image {name}: rootfs {} is neither a directory nor a tarball \
                 (.tar, .tar.gz, .tar.xz, .tar.zst, .tar.bz2)",
                rootfs.display()
            ))
            .into());
        }
        Ok(RootfsKind::Tarball)
    }
}

/// sha256 of a tarball's bytes: what it holds, whatever its name or time.
fn content_digest(tarball: &Path) -> Result<String> {
    let mut file = std::fs::File::open(tarball)
        .with_context(|| format!("cannot open {}", tarball.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", tarball.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// The newest entry of `slot` (a build of the same tarball's inputs) whose trees are all
/// still in the cache, used from here to the end of the run.
fn reuse(ctx: &BuildContext<'_>, slot: &Slot) -> Result<Option<BuiltImage>> {
    let trees = ctx.cache.dir("rootfs")?;
    for entry in slot.entries(ctx.cache)? {
        let Some(record) = entry.record(ctx.store) else {
            continue;
        };
        // Its own tree (unpacked, or shifted for a root gib) is a `rootfs` cache entry.
        let Some(own) = record.layer_dirs.first() else {
            continue;
        };
        let own_entry = own
            .strip_prefix(&trees)
            .ok()
            .and_then(|rel| rel.to_str())
            .filter(|rel| !rel.contains('/'));
        let Some(own_entry) = own_entry else {
            continue;
        };
        if !ctx.cache.use_if_present("rootfs", own_entry, own)?
            || !entry.use_if_present(ctx.cache)?
        {
            continue;
        }
        return Ok(Some(record.reused(ctx.printer)));
    }
    Ok(None)
}

/// Write the layer and image of a `rootfs:`. `tarball`: its content digest; `None` for a
/// directory. The image's key is made from the layer written, not from the tarball's bytes:
/// two tarballs of the same files (another file time, another tar) give the same image, its
/// input key annotation included, and its children the same keys.
fn build_layer(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    rootfs: &Path,
    tarball: Option<&str>,
) -> Result<BuiltImage> {
    let started = std::time::SystemTime::now();
    ctx.printer.status(
        "Layering",
        &format!("{} from {}", image.name, rootfs.display()),
    );
    let tree = match tarball {
        Some(content) => unpacked_tree(ctx, &image.name, rootfs, content)?,
        None => rootfs.to_path_buf(),
    };
    let source = LayerSource {
        root: tree.clone(),
        removed: Vec::new(),
        overlay_markers: false,
        filter: None,
    };
    let mut options = layer_options(ctx, image)?;
    // The user's directory is read where it is, and so is a tarball root unpacked on the
    // host (with its owners as they are); an unprivileged user's was unpacked in the
    // namespace.
    let layer = if tree == rootfs || nix::unistd::geteuid().is_root() {
        options.owners = Some(owner_map(&crate::sandbox::id_mode()?));
        let step = ctx
            .printer
            .step("Writing", &format!("image {}: its layer", image.name));
        let layer = write_layer(&source, ctx.store, &options, &step)?;
        step.finish(
            "Wrote",
            &format!(
                "image {}: its layer ({})",
                image.name,
                human_bytes(layer.size)
            ),
        );
        layer
    } else {
        let what = format!("image {}: its layer", image.name);
        super::layer::write_in_namespace(ctx, &what, source, options)?
    };
    let diff_id = layer.diff_id.clone();
    let key = hash_parts(&[
        &format!("{:?}", super::key::placeless(image)),
        parent.map_or("", |p| p.key.as_str()),
        layer.diff_id.as_str(),
    ]);
    let version_tag = super::version_tag(ctx, image, &[])?;
    let mut layer_dirs = vec![sandbox_tree(ctx, &tree, diff_id.as_str())?];
    layer_dirs.extend(parent.map(|p| p.layer_dirs.clone()).unwrap_or_default());
    let written = super::write_image_sbom_test(
        ctx,
        image,
        parent,
        super::Tail {
            layers: vec![layer],
            version_tag: &version_tag,
            how: "rootfs",
            input_key: &super::registry_cache::InputKey::whole(&key),
            sbom_trees: &layer_dirs,
            test_trees: &layer_dirs,
            started,
        },
    )?;
    Ok(BuiltImage::built(
        image,
        key,
        &version_tag,
        written,
        parent.map(|p| p.packages.clone()).unwrap_or_default(),
        super::Trees {
            layer_dirs,
            builder_dirs: parent.map(|p| p.builder_dirs.clone()).unwrap_or_default(),
            package_dbs: parent.map(|p| p.package_dbs.clone()).unwrap_or_default(),
        },
    ))
}

/// The tree the sandbox stands on (the image's `test:`, its children's builds): the layer's
/// tree, or for a root gib a copy with owners shifted into the sandbox's range (see
/// `sandbox::shift_tree_into_range`), kept in the cache by the layer's diff_id. The layer
/// itself is written from the tree as it is.
fn sandbox_tree(ctx: &BuildContext<'_>, tree: &Path, diff_id: &str) -> Result<PathBuf> {
    if crate::sandbox::id_mode()?.host_root().is_none() {
        return Ok(tree.to_path_buf());
    }
    let hex = diff_id.trim_start_matches("sha256:");
    let key = format!("ids-{}", &hex[..hex.len().min(16)]);
    let entry = ctx.cache.dir("rootfs")?.join(&key);
    ctx.cache.use_entry("rootfs", &key, &entry, || {
        let scratch = ctx.cache.scratch_path("rootfs")?;
        let copy = scratch.join("tree");
        let made = copy_tree(tree, &copy)
            .and_then(|()| crate::sandbox::shift_tree_into_range(&copy))
            .and_then(|()| ctx.cache.publish(&copy, &entry));
        remove_any(&scratch).ok();
        made
    })?;
    Ok(entry)
}

/// `cp -a`: owners, modes, times, xattrs, hardlinks, devices and symlinks as they are.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--no-target-directory")
        .arg(from)
        .arg(to)
        .output()
        .context("cannot run cp")?;
    if !out.status.success() {
        anyhow::bail!(
            "cannot copy {} to {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A tarball unpacked into the cache, kept by its content digest (so children can build on
/// it, and a touched or moved tarball is not unpacked again).
fn unpacked_tree(
    ctx: &BuildContext<'_>,
    name: &str,
    rootfs: &Path,
    content: &str,
) -> Result<PathBuf> {
    let key = &content[..16];
    let entry = ctx.cache.dir("rootfs")?.join(key);
    ctx.cache.use_entry("rootfs", key, &entry, || {
        let scratch = ctx.cache.scratch_path("rootfs")?;
        let step = ctx.printer.step("Unpacking", &rootfs.display().to_string());
        // As root in-process (device nodes can be made), else in the user namespace: the same
        // tarball module either way, and the same error for the same broken tarball.
        let summary = if nix::unistd::geteuid().is_root() {
            tarball::unpack_tarball(rootfs, &scratch, true, ())
                .map_err(|err| tarball::unpack_failed("rootfs", rootfs, &format!("{err:#}")))
        } else {
            let single = crate::sandbox::id_mode_warned(ctx.printer)?.is_single();
            crate::stage3::unpack_in_sandbox(rootfs, &scratch, !single, ctx.cache, "rootfs", &step)
        }
        .with_context(|| format!("image {name}: cannot unpack its rootfs"))?;
        step.finish("Unpacked", &rootfs.display().to_string());
        if summary.skipped_special > 0 {
            ctx.printer.warn(&format!(
                "image {name}: {} device node(s) of {} left out (only root can create them)",
                summary.skipped_special,
                rootfs.display()
            ));
        }
        ctx.cache.publish(&scratch, &entry)
    })?;
    Ok(entry)
}

/// The host owners of a tree as the sandbox's namespace shows them, for reading the tree
/// from outside it: the user is root, its subordinate ids are 1.., other ids stay. Here,
/// between the two, so that the sandbox knows no layer and the layer writer no namespace.
fn owner_map(mode: &IdMode) -> OwnerMap {
    let shifts = |lines: Vec<crate::sandbox::MapLine>| {
        lines
            .into_iter()
            .map(|l| IdShift {
                inside: l.inside,
                outside: l.outside,
                count: l.count,
            })
            .collect()
    };
    OwnerMap {
        uids: shifts(mode.uid_map()),
        gids: shifts(mode.gid_map()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::IdRange;

    #[test]
    fn owner_map_reads_host_owners_as_the_namespace_shows_them() {
        let full = IdMode::Full {
            uid: 1000,
            gid: 1001,
            subuids: vec![IdRange {
                start: 100000,
                count: 65536,
            }],
            subgids: vec![IdRange {
                start: 200000,
                count: 65536,
            }],
        };
        let owners = owner_map(&full);
        // The user is root, its subordinate ids are 1.., anybody else keeps their id.
        assert_eq!(owners.uid(1000), 0);
        assert_eq!(owners.uid(100000 + 249), 250);
        assert_eq!(owners.uid(0), 0);
        assert_eq!(owners.uid(1001), 1001);
        assert_eq!(owners.uid(100000 + 65536), 100000 + 65536);
        assert_eq!(owners.gid(1001), 0);
        assert_eq!(owners.gid(200000), 1);
        assert_eq!(owners.gid(1000), 1000);
        let single = owner_map(&IdMode::Single { uid: 7, gid: 8 });
        assert_eq!(
            (single.uid(7), single.gid(8), single.uid(100000)),
            (0, 0, 100000)
        );
        let reserved = IdMode::example_reserved();
        // Root's range: its ids are 0.., the host's own ids (root's files) stay.
        let owners = owner_map(&reserved);
        assert_eq!(owners.uid(100000), 0);
        assert_eq!(owners.uid(100250), 250);
        assert_eq!(owners.gid(300250), 250);
        assert_eq!((owners.uid(0), owners.gid(0)), (0, 0));
        assert_eq!(owners.uid(1000), 1000);
    }
}
