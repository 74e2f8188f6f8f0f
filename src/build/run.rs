//! One `gib build` (or `gib push`) from start to end: open the cache, build (or reuse, or
//! pull) the plan's images parents first, write them to the outputs, and make the report.
//! The command line only parses its arguments into a [`RunRequest`] and prints the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::Result;

use super::report::ImageReport;
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
    // Images are built one after the other, parents first: each one's time is the time
    // since the previous one was done.
    let mut since = Instant::now();
    let mut seconds: BTreeMap<String, f64> = BTreeMap::new();
    let built = build_plan(&ctx, scope, |result| {
        let elapsed = since.elapsed();
        since = Instant::now();
        seconds.insert(result.name.clone(), elapsed.as_secs_f64());
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
    })
    .inspect_err(|err| {
        // A failed `test:` shows what the test printed before the error.
        if let Some(failed) = err.downcast_ref::<super::TestFailed>() {
            printer.excerpt(&failed.output);
        }
    })?;

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
                seconds: seconds.get(&image.name).copied().unwrap_or_default(),
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
            })
            .collect()
    });
    Ok(RunOutcome {
        images,
        pushed,
        report,
    })
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
