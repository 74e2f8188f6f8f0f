//! One `gib build` (or `gib push`) from start to end: open the cache, build (or reuse, or
//! pull) the plan's images parents first — one leg per platform (`legs`) — write them and
//! the indexes of images of several platforms to the outputs, and make the report.
//! The command line only parses its arguments into a [`RunRequest`] and prints the outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use super::legs::{
    BuiltIndex, Leg, LegBuilt, LegOutput, describe_platform, leg_outputs, plan_legs, push_key,
    write_indexes,
};
use super::report::ImageReport;
use super::schedule::{BuildTimes, PlanBuild};
use super::{BuildContext, BuildOptions, BuiltImage, PlanScope, build_plan};
use crate::cache::Cache;
use crate::config::Config;
use crate::oci::blob::BlobStore;
use crate::output::{OutputImage, OutputIndex, Outputs};
use crate::plan::Plan;
use crate::printer::{Printer, SummaryRow};
use crate::registry::PushReport;

/// What one run is asked to do.
pub struct RunRequest<'a> {
    pub config: &'a Config,
    /// The images named on the command line (all when empty), with their ancestors.
    pub images: &'a [String],
    /// `--platform`: build this platform's leg alone (its images, for it alone).
    pub platform: Option<&'a str>,
    /// `gib push --index`: build nothing; join the legs the registry holds into indexes.
    pub join_index: bool,
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
    /// Every image of the plan, parents first (a leg after another: each platform's).
    pub images: Vec<BuiltImage>,
    /// What `--push` did, by image name (`name@os/arch` for one platform of an index).
    pub pushed: BTreeMap<String, PushReport>,
    /// One entry per image (and platform) when the request asked for a report.
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

/// Run `request`: build each platform's leg, write the outputs, report.
pub fn run(request: &RunRequest<'_>, printer: &Printer) -> Result<RunOutcome> {
    let legs = plan_legs(request)?;
    let plans: Vec<&Plan> = legs.iter().map(|leg| &leg.plan).collect();
    super::preflight::check(request, &plans)?;
    let session = Session::open(request.cache_dir)?;
    // One client for the whole run: the tokens and connections of the pulls of one leg
    // serve the next leg and the pushes.
    let mut client = crate::output::registry::client(&request.config.registries);
    let mut built = Vec::new();
    for leg in &legs {
        if legs.len() > 1 {
            printer.status("Platform", &describe_platform(&leg.platform));
        }
        let (done, back) = build_leg(request, &session, leg, client, printer)?;
        client = back;
        built.push(done);
    }
    let outputs = leg_outputs(request, &legs, &built);
    let indexes = if request.platform.is_none() {
        write_indexes(&session.store, &legs, &built)?
    } else {
        Vec::new()
    };
    let output_images: Vec<OutputImage> = outputs.iter().map(LegOutput::output).collect();
    let output_indexes: Vec<OutputIndex> = indexes.iter().map(BuiltIndex::output).collect();
    let pushed = crate::output::write(
        &request.outputs,
        &session.store,
        &client,
        &output_images,
        &output_indexes,
        printer,
    )?;
    // Each row of a run of several platforms (or of a leg of one) says its platform.
    let with_platform = legs.len() > 1 || request.platform.is_some();
    let row_name = |leg: &Leg, image: &BuiltImage| match with_platform {
        true => format!("{} ({})", image.name, leg.platform),
        false => image.name.clone(),
    };
    let mut rows = Vec::new();
    for (leg, done) in legs.iter().zip(&built) {
        rows.extend(done.images.iter().map(|image| {
            SummaryRow {
                image: row_name(leg, image),
                tags: image
                    .references
                    .iter()
                    .map(|r| tag_of(r).to_string())
                    .collect(),
                size: image.size,
                digest: image.image.manifest.digest.to_string(),
                how: image.how(&done.pulled),
                seconds: done
                    .times
                    .get(&image.name)
                    .map(BuildTimes::seconds)
                    .unwrap_or_default(),
            }
        }));
    }
    printer.summary(&rows);
    for index in &indexes {
        printer.status(
            "Index",
            &format!(
                "{} {} ({})",
                index.references.join(" "),
                index.descriptor.digest,
                index
                    .entries
                    .iter()
                    .map(|e| e.platform.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let report = request.report.then(|| {
        let mut report = Vec::new();
        for (leg, done) in legs.iter().zip(&built) {
            for image in &done.images {
                let in_index = leg.plan.index_platforms(&image.name).is_some();
                let key = push_key(&image.name, in_index.then_some(&leg.platform));
                let entry = ImageReport::of(
                    &session.cache,
                    &session.store,
                    image,
                    image.how(&done.pulled),
                    pushed.get(&key),
                    printer,
                )
                .with_times(done.times.get(&image.name))
                .with_platform(in_index.then(|| leg.platform.to_string()))
                .with_index(
                    indexes
                        .iter()
                        .find(|index| index.name == image.name)
                        .map(|index| index.descriptor.digest.to_string()),
                );
                report.push(entry);
            }
        }
        report
    });
    Ok(RunOutcome {
        images: built.into_iter().flat_map(|leg| leg.images).collect(),
        pushed,
        report,
    })
}

/// Build (or reuse, or pull) the images of one leg, parents first, pulling with `client`;
/// their layers pulled when a file output needs them. The client is handed back.
fn build_leg(
    request: &RunRequest<'_>,
    session: &Session,
    leg: &Leg,
    client: crate::registry::Client,
    printer: &Printer,
) -> Result<(LegBuilt, crate::registry::Client)> {
    let plan = &leg.plan;
    let mut ctx = BuildContext::new(
        plan,
        &session.cache,
        &session.store,
        printer,
        request.options.clone(),
    )?
    .with_registries(client)
    .with_registry_cache(
        request.outputs.push || request.parents_from_registry || request.join_index,
    )
    .with_registry_only(request.join_index);
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
        return Err(failed_run(plan, built, printer));
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
    let client = std::mem::take(&mut ctx.registries);
    Ok((
        LegBuilt {
            images,
            pulled: built.pulled,
            times: built.times,
        },
        client,
    ))
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
pub(super) fn tag_of(reference: &str) -> &str {
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
