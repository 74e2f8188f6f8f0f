//! Images that emerge packages: the builder root is an overlay over the parent's builder
//! (down to the stage3), the staging root an overlay over the parent's layers (a fresh
//! directory for an image from scratch), emerge runs in the sandbox, and the staging
//! overlay's upper dir becomes the image's layer.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::entry::{self, Entry, Slot};
use super::{BuildContext, BuiltImage, hash_parts};
use crate::emerge::run::{EmergeFailed, EmergeJob, log_tail};
use crate::gentoo::vdb;
use crate::plan::{ImagePlan, PortageBuild};
use crate::printer::Hint;
use crate::rootfs_tools::{self, FinishOptions, Job, STAGING};
use crate::sandbox::{ExtraMount, OverlayScratch, RootFs};

pub fn build(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    work: &PortageBuild,
) -> Result<BuiltImage> {
    let key = input_key(ctx, image, parent, work)?;
    let slot = Slot::new(&image.name, &key);
    if !ctx.force
        && let Some(record) = reuse(ctx, image, &slot, &key)?
    {
        return Ok(record);
    }
    // One gib builds these inputs at a time; another waits for it and reuses its entry.
    let _building = ctx.cache.lock("build", slot.name())?;
    if !ctx.force
        && let Some(record) = reuse(ctx, image, &slot, &key)?
    {
        return Ok(record);
    }
    if let Some(remote) = super::registry_cache::lookup(ctx, image, &key, |merged| {
        super::key::full_key(&key, image, merged)
    })? {
        return Ok(remote);
    }
    super::registry_cache::refuse_to_build(ctx, image)?;
    // A parent known from the registry alone is pulled now: this build stands on its tree.
    let parent = super::registry_cache::materialize(ctx, parent)?;
    let parent = parent.as_deref();

    let (stage3, repositories) = ctx.sources()?;
    if !work.packages.is_empty() || !work.builder_packages.is_empty() {
        crate::stage3::check_has_portage(stage3)?;
        check_main_repository(stage3, repositories)?;
        if ctx.atoms_checked.set(()).is_ok() {
            warn_unknown_packages(ctx, image, stage3, repositories);
        }
    }
    let what = describe(work);
    ctx.printer
        .status("Building", &format!("{} ({what})", image.name));
    let scratch = entry::scratch(ctx.cache)?;
    let entry = slot.new_entry(ctx.cache)?;
    let result = build_in(ctx, image, parent, work, &scratch, &entry, &key);
    match result {
        Ok(record) => {
            slot.publish(ctx.cache, ctx.store, scratch, &entry, &record)?;
            Ok(record)
        }
        Err(err) => {
            scratch.remove().ok();
            Err(err)
        }
    }
}

/// The newest entry of `slot` built from what the current file says, used from here to the
/// end of the run.
fn reuse(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    slot: &Slot,
    key: &str,
) -> Result<Option<BuiltImage>> {
    for entry in slot.entries(ctx.cache)? {
        let Some(record) = entry.record(ctx.store) else {
            continue;
        };
        let Some(merged) = super::key::read_merged(entry.path()) else {
            continue;
        };
        // Entries are never changed once published: if it is still there once we use it
        // (a `gib clean` may be removing it), it is what we read.
        if super::key::full_key(key, image, &merged) != record.key
            || !entry.use_if_present(ctx.cache)?
        {
            continue;
        }
        return Ok(Some(record.reused(ctx.printer)));
    }
    Ok(None)
}

/// Build `image` into `scratch`, the entry-to-be published as `entry`; its record.
fn build_in(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    work: &PortageBuild,
    scratch: &OverlayScratch,
    entry: &Entry,
    key: &str,
) -> Result<BuiltImage> {
    let started = std::time::SystemTime::now();
    let dir = scratch.path();
    // One log dir per build (name and key): concurrent builds never share one.
    let log_dir = ctx
        .cache
        .dir("logs")?
        .join(Slot::new(&image.name, key).name());
    let dirs = JobDirs::create(scratch, log_dir)?;
    let (layer, input) = (&dirs.layer, &dirs.input);
    let parent_layers = parent.map(|p| p.layer_dirs.clone()).unwrap_or_default();
    let job = emerge_job(ctx, image, work, parent, scratch, &dirs)?;
    let merged_into_image = run_build(ctx, image, work, &job, layer, &parent_layers)?;

    super::report::keep_trimmed(&dirs.log_dir, dir)?;
    let package_db = keep_package_db(&dirs.log_dir, dir)?;
    super::finish::apply(ctx, image, layer, &parent_layers, input)?;
    let layer_packages = vdb::read_installed(layer)?;
    let written_layers = super::layering::write_layers(
        ctx,
        image,
        layer,
        !parent_layers.is_empty(),
        &layer_packages,
    )?;
    let (own_packages, all_packages) = packages(parent, layer_packages, package_db.as_deref())?;
    warn_undeclared_use_flags(ctx, image, &own_packages);
    let version_tag = super::version_tag(ctx, image, &own_packages)?;
    // The SBOM lists the packages whose files the image holds, their database in it or not.
    let parent_dbs = parent.map(|p| p.package_dbs.clone()).unwrap_or_default();
    let mut image_layers: Vec<PathBuf> = package_db.iter().chain(&parent_dbs).cloned().collect();
    image_layers.push(layer.clone());
    image_layers.extend(parent_layers.iter().cloned());
    let mut test_layers = vec![layer.clone()];
    test_layers.extend(parent_layers.iter().cloned());
    let merged = merged_names(&merged_into_image, &scratch.upper())?;
    let input_key = super::registry_cache::InputKey {
        base: key.to_string(),
        key: super::key::full_key(key, image, &merged),
        merged,
    };
    let written = super::write_image_sbom_test(
        ctx,
        image,
        parent,
        super::Tail {
            layers: written_layers,
            version_tag: &version_tag,
            how: "emerge",
            input_key: &input_key,
            sbom_trees: &image_layers,
            test_trees: &test_layers,
            started,
        },
    )?;

    super::key::write_merged(dir, &input_key.merged)?;
    let record = BuiltImage::built(
        image,
        input_key.key,
        &version_tag,
        written,
        all_packages,
        trees(entry.path(), parent, package_db.is_some()),
    );
    entry::write_record(dir, &record)?;
    Ok(record)
}

/// Emerge `work`'s packages (when it has any) and run its script, then prune from the layer
/// what the build rewrote unchanged over the parent's layers; the packages merged into the
/// image.
fn run_build(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    work: &PortageBuild,
    job: &crate::emerge::run::EmergeJob<'_>,
    layer: &Path,
    parent_layers: &[PathBuf],
) -> Result<Vec<String>> {
    let mut merged_into_image = Vec::new();
    if !work.packages.is_empty() || !work.builder_packages.is_empty() {
        let outcome = match crate::emerge::run::run(job, ctx.printer) {
            Ok(outcome) => outcome,
            Err(err) => return Err(explain_failure(ctx, err)),
        };
        merged_into_image = outcome.merged.into_iter().map(|(cpv, _)| cpv).collect();
    }
    if let Some(script) = &work.script {
        super::script::run(ctx, image, script, work.context.as_deref(), job)?;
    }
    if !parent_layers.is_empty() {
        let pruned = super::layer::prune_in_namespace(ctx, layer, parent_layers)?;
        ctx.printer.detail(&format!(
            "{}: {} files and {} directories the build rewrote unchanged, and {} whiteouts \
             of nothing, left out of the layer",
            image.name, pruned.files, pruned.dirs, pruned.whiteouts
        ));
    }
    Ok(merged_into_image)
}

/// The packages this image installed (in its layer's package database, or in the one kept
/// aside) and, sorted, every package of the image, its parents' included.
fn packages(
    parent: Option<&BuiltImage>,
    layer_packages: Vec<vdb::InstalledPackage>,
    package_db: Option<&Path>,
) -> Result<(Vec<vdb::InstalledPackage>, Vec<String>)> {
    let mut all_packages: Vec<String> = parent.map(|p| p.packages.clone()).unwrap_or_default();
    // What this image installed: in its layer's package database, or in the one kept aside.
    let own_packages: Vec<vdb::InstalledPackage> = match package_db {
        Some(db) => vdb::read_installed(db)?
            .into_iter()
            .filter(|p| !all_packages.contains(&p.cpv()))
            .collect(),
        None => layer_packages,
    };
    all_packages.extend(own_packages.iter().map(|p| p.cpv()));
    all_packages.sort();
    all_packages.dedup();
    Ok((own_packages, all_packages))
}

/// The trees of the record of an image built into `entry` on `parent`: the record names the
/// entry's final paths, as it is renamed into place after the build.
fn trees(entry: &Path, parent: Option<&BuiltImage>, package_db: bool) -> super::Trees {
    let mut layer_dirs = vec![entry.join("layer")];
    let mut builder_dirs = vec![entry.join("upper")];
    let mut package_dbs: Vec<PathBuf> = package_db
        .then(|| entry.join(PACKAGE_DB_DIR))
        .into_iter()
        .collect();
    if let Some(parent) = parent {
        layer_dirs.extend(parent.layer_dirs.iter().cloned());
        builder_dirs.extend(parent.builder_dirs.iter().cloned());
        package_dbs.extend(parent.package_dbs.iter().cloned());
    }
    super::Trees {
        layer_dirs,
        builder_dirs,
        package_dbs,
    }
}

/// An entry's copy of a package database its image does not keep: a root with `var/db/pkg`.
const PACKAGE_DB_DIR: &str = "pkgdb";

/// Move the package database finish-root.sh kept aside (an image with `keep_package_db:
/// false`) from the log dir into the entry being built at `entry_scratch`; its root there.
fn keep_package_db(log_dir: &Path, entry_scratch: &Path) -> Result<Option<PathBuf>> {
    let out = rootfs_tools::package_db_out(log_dir);
    if !out.is_dir() {
        return Ok(None);
    }
    let root = entry_scratch.join(PACKAGE_DB_DIR);
    let vdb = root.join(vdb::VDB_DIR);
    std::fs::create_dir_all(vdb.parent().unwrap_or(&root))
        .with_context(|| format!("cannot create {}", root.display()))?;
    // A lower dir of children's /staging: its directories must be root's there.
    for dir in vdb.ancestors().skip(1).take_while(|d| d.starts_with(&root)) {
        crate::sandbox::hand_over(dir)?;
    }
    std::fs::rename(&out, &vdb)
        .with_context(|| format!("cannot move {} to {}", out.display(), vdb.display()))?;
    Ok(Some(root))
}

/// The working dirs of one emerge session, in its scratch dir (the log dir may be elsewhere).
pub struct JobDirs {
    /// The image's layer: /staging, or the upper dir of the overlay at /staging.
    pub layer: PathBuf,
    pub layer_work: PathBuf,
    /// gib's input (Portage files, rootfs-tools), bound read-only into the builder.
    pub input: PathBuf,
    pub log_dir: PathBuf,
}

impl JobDirs {
    pub fn create(scratch: &OverlayScratch, log_dir: PathBuf) -> Result<JobDirs> {
        let dirs = JobDirs {
            layer: scratch.path().join("layer"),
            layer_work: scratch.path().join("layer-work"),
            input: scratch.path().join("input"),
            log_dir,
        };
        for d in [&dirs.layer, &dirs.layer_work, &dirs.input] {
            std::fs::create_dir(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        Ok(dirs)
    }
}

/// The emerge of `image`: a builder over its parent's builders and the stage3 with
/// `scratch`'s upper, /staging over its parent's layers, the caches and repositories.
pub fn emerge_job<'a>(
    ctx: &BuildContext<'_>,
    image: &'a ImagePlan,
    work: &'a PortageBuild,
    parent: Option<&BuiltImage>,
    scratch: &OverlayScratch,
    dirs: &'a JobDirs,
) -> Result<EmergeJob<'a>> {
    // Both prepared once per run, before the first emerge job.
    let (stage3, repositories) = ctx.sources()?;
    // The parent's tree, with the package databases its images do not keep on top.
    let mut staging_lowers = parent.map(|p| p.package_dbs.clone()).unwrap_or_default();
    staging_lowers.extend(parent.map(|p| p.layer_dirs.clone()).unwrap_or_default());
    let mut lowers = parent.map(|p| p.builder_dirs.clone()).unwrap_or_default();
    lowers.push(stage3.path.clone());
    Ok(EmergeJob {
        image: &image.name,
        packages: &work.packages,
        builder_packages: &work.builder_packages,
        portage: &image.portage,
        finish: FinishOptions {
            keep_headers: image.keep_headers,
            keep_static_libs: image.keep_static_libs,
            keep_service_files: image.keep_service_files,
            keep_package_db: image.keep_package_db,
            source_date_epoch: Some(ctx.epoch()?),
        },
        builder: RootFs::Overlay {
            lowers,
            upper: scratch.upper(),
            work: scratch.work(),
        },
        staging: staging_mount(&dirs.layer, &dirs.layer_work, &staging_lowers),
        repositories: repository_mounts(repositories),
        extra_mounts: Vec::new(),
        caches: crate::stage3::cache_mounts(ctx.cache, &ctx.plan.platform())?,
        network: ctx.network,
        input_dir: &dirs.input,
        log_dir: &dirs.log_dir,
        cpu: ctx
            .cpu_shares
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&image.name)
            .copied(),
    })
}

/// /staging: a bind of the fresh `layer` dir for an image from scratch, else an overlay over
/// the parent's layer dirs whose upper is `layer` (its whiteouts mark what the image removes).
pub fn staging_mount(layer: &Path, layer_work: &Path, parent_layers: &[PathBuf]) -> ExtraMount {
    if parent_layers.is_empty() {
        ExtraMount::Bind {
            source: layer.to_path_buf(),
            target: STAGING.into(),
            readonly: false,
        }
    } else {
        ExtraMount::Overlay {
            target: STAGING.into(),
            lowers: parent_layers.to_vec(),
            upper: layer.to_path_buf(),
            work: layer_work.to_path_buf(),
        }
    }
}

/// A flag of `package_use_flags` that a package built here does not declare (IUSE) does
/// nothing, and Portage says nothing about it: gib does. Atoms match by category/name.
fn warn_undeclared_use_flags(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    packages: &[vdb::InstalledPackage],
) {
    for (atom, flags) in &image.package_use_flags {
        let Ok(atom) = crate::gentoo::atom::Atom::parse(atom) else {
            continue;
        };
        for package in packages.iter().filter(|p| p.cp() == atom.cp()) {
            for flag in flags {
                let name = flag.trim_start_matches('-');
                if name.contains('*') || package.iuse.iter().any(|f| f == name) {
                    continue;
                }
                ctx.printer.warn(&format!(
                    "image {}: package_use_flags sets `{flag}` for {}, which has no USE flag \
                     `{name}` (IUSE: {}); the setting does nothing",
                    image.name,
                    package.cpv(),
                    if package.iuse.is_empty() {
                        "none".to_string()
                    } else {
                        package.iuse.join(" ")
                    }
                ));
            }
        }
    }
}

/// A `package_use_flags` atom whose package no repository has (a typo, a package of an
/// overlay not listed) sets flags nothing will read, and Portage says nothing: gib does,
/// once per run, with the closest name the repositories have.
fn warn_unknown_packages(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    stage3: &crate::stage3::Stage3Root,
    repositories: &[crate::repository::SyncedRepo],
) {
    let trees: Vec<PathBuf> = repositories
        .iter()
        .map(|repo| match &repo.path {
            Some(path) => path.clone(),
            None => stage3.path.join(repo.location.trim_start_matches('/')),
        })
        .collect();
    let subdirs = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for atom in image.package_use_flags.keys() {
        let Ok(parsed) = crate::gentoo::atom::Atom::parse(atom) else {
            continue;
        };
        if parsed.category.contains('*') || parsed.package.contains('*') {
            continue;
        }
        let cp = parsed.cp();
        if trees.iter().any(|tree| tree.join(&cp).is_dir()) {
            continue;
        }
        let known: Vec<String> = trees
            .iter()
            .flat_map(|tree| {
                subdirs(tree).into_iter().flat_map(move |category| {
                    subdirs(&tree.join(&category))
                        .into_iter()
                        .map(move |name| format!("{category}/{name}"))
                })
            })
            .collect();
        let nearest = crate::config::did_you_mean(&cp, known.iter().map(String::as_str))
            .map(|name| format!(" (did you mean {name}?)"))
            .unwrap_or_default();
        ctx.printer.warn(&format!(
            "package_use_flags names {cp}, which no repository has{nearest}; its flags do nothing"
        ));
    }
}

/// With `sync_type: none` emerge reads the stage3's own ::gentoo, which official stage3s do
/// not ship: say so before emerge fails on a missing profile.
fn check_main_repository(
    stage3: &crate::stage3::Stage3Root,
    repositories: &[crate::repository::SyncedRepo],
) -> Result<()> {
    let Some(main) = repositories.first() else {
        return Ok(());
    };
    let in_stage3 = stage3
        .path
        .join(main.location.trim_start_matches('/'))
        .join("profiles");
    if main.path.is_some() || std::fs::symlink_metadata(&in_stage3).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    Err(crate::printer::UserError::new(format!(
        "the stage3 has no ebuild repository at {} and `portage: sync_type: none` \
             provides none",
        main.location
    ))
    .hint(
        "official stage3s ship without ::gentoo: set `portage: sync_type: git` (or `webrsync`) \
         and gib fetches it",
    ))
}

/// The synced repositories, bound read-only where repos.conf says they are.
pub fn repository_mounts(repositories: &[crate::repository::SyncedRepo]) -> Vec<ExtraMount> {
    repositories
        .iter()
        .filter_map(|repo| {
            repo.path.as_ref().map(|path| ExtraMount::Bind {
                source: path.clone(),
                target: repo.location.clone().into(),
                readonly: true,
            })
        })
        .collect()
}

/// The base key of a packages image (see `key`): its plan (atoms, settings, Portage files
/// but the per-package lines), the stage3 and repositories, the rootfs-tools, its script,
/// and its parent's key.
fn input_key(
    ctx: &BuildContext<'_>,
    image: &ImagePlan,
    parent: Option<&BuiltImage>,
    work: &PortageBuild,
) -> Result<String> {
    let sources = ctx.source_identity()?;
    let plan = super::key::plan_without_package_lines(image);
    let script_parts = match &work.script {
        Some(script) => super::script::key_parts(image, script, work.context.as_deref())?,
        None => Vec::new(),
    };
    let files = super::finish::sources_identity(image)?;
    // An explicit SOURCE_DATE_EPOCH changes every mtime; the default one is the snapshot's,
    // which `sources` already covers.
    let epoch = format!("{:?}", ctx.source_date_epoch);
    let mut parts: Vec<&str> = vec!["packages", &plan, &sources, &files, &epoch];
    parts.extend(rootfs_tools::key_parts(Job::Emerge));
    parts.extend(script_parts.iter().map(String::as_str));
    parts.push(parent.map_or("", |p| p.key.as_str()));
    Ok(hash_parts(&parts))
}

/// What a build does, for the "Building" line: its atoms, builder atoms and script.
fn describe(work: &PortageBuild) -> String {
    let mut parts = Vec::new();
    if !work.packages.is_empty() {
        parts.push(work.packages.join(" "));
    }
    if !work.builder_packages.is_empty() {
        parts.push(format!("builder: {}", work.builder_packages.join(" ")));
    }
    if let Some(script) = &work.script {
        parts.push(script.display().to_string());
    }
    parts.join("; ")
}

/// `category/name` of what the build merged: into the image (emerge's `cpv`s, as the image's
/// package database may be dropped) and into the builder (its package database).
fn merged_names(into_image: &[String], builder_upper: &Path) -> Result<Vec<String>> {
    let mut names = super::key::merged_packages(&[builder_upper])?;
    for cpv in into_image {
        let cp = crate::gentoo::atom::Atom::parse(&format!("={cpv}"))
            .map(|atom| atom.cp())
            .unwrap_or_else(|_| cpv.clone());
        names.push(cp);
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// Turn an emerge failure into what the user needs: the failing package, the last lines of
/// its build log (printed now), and where the logs are.
fn explain_failure(ctx: &BuildContext<'_>, err: anyhow::Error) -> anyhow::Error {
    let Some(failed) = err.downcast_ref::<EmergeFailed>() else {
        return err;
    };
    // A build log gib cannot open is named with the reason, not silently replaced.
    let unreadable = failed
        .build_log
        .as_ref()
        .and_then(|p| std::fs::File::open(p).err().map(|e| (p, e)));
    let log: PathBuf = match (&failed.build_log, &unreadable) {
        (Some(build_log), None) => build_log.clone(),
        _ => failed.session_log.clone(),
    };
    ctx.printer.excerpt(&log_tail(&log, 30));
    let mut logs = match &unreadable {
        Some((path, e)) => format!("build log: {} (cannot read it: {e})", path.display()),
        None => format!("build log: {}", log.display()),
    };
    if log != failed.session_log || unreadable.is_some() {
        logs.push_str(&format!(
            "; emerge's output: {}",
            failed.session_log.display()
        ));
    }
    err.context(logs)
}
