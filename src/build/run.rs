//! One `gib build` (or `gib push`) from start to end: open the cache, build (or reuse, or
//! pull) the plan's images parents first, write them to the outputs, and make the report.
//! The command line only parses its arguments into a [`RunRequest`] and prints the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use super::report::ImageReport;
use super::schedule::{BuildTimes, PlanBuild};
use super::{BuildContext, BuildOptions, BuiltImage, PlanScope, build_plan};
use crate::cache::Cache;
use crate::config::{Config, Parent};
use crate::oci::blob::BlobStore;
use crate::output::{OutputImage, Outputs};
use crate::plan::Plan;
use crate::printer::{Printer, SummaryRow};
use crate::registry::PushReport;

/// What one run is asked to do.
pub struct RunRequest<'a> {
    pub config: &'a Config,
    /// The images named on the command line (all when empty), with their ancestors.
    pub images: &'a [String],
    /// The cache directory; the default one when `None`.
    pub cache_dir: Option<&'a Path>,
    pub options: BuildOptions,
    pub outputs: Outputs,
    /// `--parents-from-registry`: the ancestors of the named images are pulled, not built.
    pub parents_from_registry: bool,
    /// Make the per-image report (`--json`).
    pub report: bool,
}

/// What a run did.
pub struct RunOutcome {
    /// Every image of the plan, parents first.
    pub images: Vec<BuiltImage>,
    /// What `--push` did, by image name.
    pub pushed: BTreeMap<String, PushReport>,
    /// One entry per image when the request asked for a report.
    pub report: Option<Vec<ImageReport>>,
}

/// The cache and blob store of one run, opened for building.
pub struct Session {
    pub cache: Cache,
    pub store: BlobStore,
}

impl Session {
    /// Open the cache (`dir`, else the default), sweep what killed runs left, open the blob
    /// store and hand it to the sandbox's ids: the layer writer adds blobs from inside.
    pub fn open(dir: Option<&Path>) -> Result<Session> {
        let cache = Cache::open(dir)?;
        cache.remove_leftovers()?;
        let store = BlobStore::open(&cache.dir("blobs")?)?;
        crate::sandbox::hand_over(&store.root().join("sha256"))?;
        Ok(Session { cache, store })
    }

    /// The context every image build of `plan` shares, pulling with gib.yaml's registries.
    pub fn context<'a>(
        &'a self,
        plan: &'a Plan,
        config: &Config,
        options: BuildOptions,
        printer: &'a Printer,
    ) -> Result<BuildContext<'a>> {
        Ok(
            BuildContext::new(plan, &self.cache, &self.store, printer, options)?
                .with_registries(crate::output::registry::client(&config.registries)),
        )
    }
}

/// Run `request`: build, write the outputs, report.
pub fn run(request: &RunRequest<'_>, printer: &Printer) -> Result<RunOutcome> {
    let plan = Plan::resolve(request.config, request.images)?;
    super::preflight::check(request, &plan)?;
    let session = Session::open(request.cache_dir)?;
    let ctx = session
        .context(&plan, request.config, request.options.clone(), printer)?
        .with_registry_cache(request.outputs.push || request.parents_from_registry);
    let selected: BTreeSet<&str> = request.images.iter().map(String::as_str).collect();
    let scope = PlanScope {
        pull_all_but: request.parents_from_registry.then_some(&selected),
        ..PlanScope::default()
    };
    // Each image's finished line comes as it finishes, with its own time.
    let built = build_plan(&ctx, scope, |result, elapsed| {
        if !result.reused {
            printer.finished(
                "Built",
                &format!(
                    "{} {}",
                    result.references.join(" "),
                    result.image.manifest.digest
                ),
                elapsed,
            );
        }
    })?;
    if !built.failed.is_empty() {
        return Err(failed_run(&plan, built, printer));
    }

    let images: Vec<BuiltImage> = plan
        .images
        .iter()
        .filter_map(|image| built.images.get(&image.name).cloned())
        .collect();
    // Images known from the registry alone have no layers here: the files need them.
    if request.outputs.oci_layout.is_some() || request.outputs.archive.is_some() {
        for image in &images {
            super::registry_cache::pull_layers(&ctx, image)?;
        }
    }
    let outputs: Vec<OutputImage> = plan
        .images
        .iter()
        .zip(&images)
        .map(|(image, result)| OutputImage {
            name: &result.name,
            image: &result.image,
            references: &result.references,
            referrers: &result.referrers,
            parent_reference: match &image.parent {
                Parent::Scratch => None,
                Parent::Image(name) => built
                    .images
                    .get(name)
                    .and_then(|p| p.references.first())
                    .map(String::as_str),
                Parent::Registry(reference) => Some(reference.as_str()),
            },
            pulled: built.pulled.contains(&image.name),
            in_registry: result.remote.is_some(),
        })
        .collect();
    // The client that pulled parents: its tokens and connections are reused.
    let pushed = crate::output::write(
        &request.outputs,
        &session.store,
        &ctx.registries,
        &outputs,
        printer,
    )?;
    printer.summary(
        &images
            .iter()
            .map(|image| SummaryRow {
                image: image.name.clone(),
                tags: image
                    .references
                    .iter()
                    .map(|r| tag_of(r).to_string())
                    .collect(),
                size: image.size,
                digest: image.image.manifest.digest.to_string(),
                how: image.how(&built.pulled),
                seconds: built
                    .times
                    .get(&image.name)
                    .map(BuildTimes::seconds)
                    .unwrap_or_default(),
            })
            .collect::<Vec<_>>(),
    );
    let report = request.report.then(|| {
        images
            .iter()
            .map(|image| {
                let push = pushed.get(&image.name);
                ImageReport::of(
                    &session.cache,
                    &session.store,
                    image,
                    image.how(&built.pulled),
                    push,
                    printer,
                )
                .with_times(built.times.get(&image.name))
            })
            .collect()
    });
    Ok(RunOutcome {
        images,
        pushed,
        report,
    })
}

/// A run some image of which failed: the failures shown (a failed `test:` with what it
/// printed), the summary says what was built, failed, skipped and stopped, in plan order;
/// the error is the first failure's (its exit code and hint are the run's).
fn failed_run(plan: &Plan, mut built: PlanBuild, printer: &Printer) -> anyhow::Error {
    for (name, err) in &built.failed {
        if let Some(failed) = err.downcast_ref::<super::TestFailed>() {
            printer.excerpt(&failed.output);
        }
        if built.failed.len() > 1 {
            printer.status("Failed", &format!("{name}: {err:#}"));
        }
    }
    let failed: BTreeSet<&str> = built.failed.iter().map(|(n, _)| n.as_str()).collect();
    let rows: Vec<SummaryRow> = plan
        .images
        .iter()
        .filter_map(|image| {
            let name = image.name.as_str();
            let done = built.images.get(name);
            let how = match done {
                Some(_) if built.pulled.contains(name) => "pulled",
                Some(done) if done.reused => "reused",
                Some(_) => "built",
                None if failed.contains(name) => "failed",
                None if built.skipped.contains(name) => "skipped",
                None if built.stopped.contains(name) => "stopped",
                None => return None,
            };
            Some(SummaryRow {
                image: image.name.clone(),
                tags: done
                    .map(|d| d.references.iter().map(|r| tag_of(r).to_string()).collect())
                    .unwrap_or_default(),
                size: done.map_or(0, |d| d.size),
                digest: done
                    .map(|d| d.image.manifest.digest.to_string())
                    .unwrap_or_default(),
                how,
                seconds: built
                    .times
                    .get(name)
                    .map(BuildTimes::seconds)
                    .unwrap_or_default(),
            })
        })
        .collect();
    printer.summary(&rows);
    let (skipped, stopped) = (built.skipped.len(), built.stopped.len());
    if skipped + stopped > 0 {
        printer.warn(&format!(
            "{} failed ({}); {skipped} skipped, {stopped} stopped",
            failed.len(),
            failed.iter().copied().collect::<Vec<_>>().join(", ")
        ));
    }
    built.failed.remove(0).1
}

/// The tag of a reference (`registry:5000/app:1.0` -> `1.0`), `latest` without one.
fn tag_of(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    match name.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag,
        _ => "latest",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_of_references() {
        assert_eq!(super::tag_of("registry:5000/app:1.0"), "1.0");
        assert_eq!(super::tag_of("registry:5000/app"), "latest");
        assert_eq!(super::tag_of("app:2025.1"), "2025.1");
    }
}
