//! `gib build`: config -> plan -> for each image (stage3 -> sandbox -> emerge -> rootfs ->
//! oci) -> outputs (OCI layout, archive, registry with `--push`) -> a report.
//!
//! With `--parents-from-registry` the ancestors of the named images are pulled by their
//! reference (explicit tag, else `latest`) instead of built, and are not pushed again.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{BuildArgs, parse_network, source_date_epoch};
use crate::build::{BuildContext, BuildOptions, BuiltImage, PlanScope, build_plan};
use crate::cache::Cache;
use crate::config::{self, Parent};
use crate::oci::blob::BlobStore;
use crate::output::registry::{self, PushJob};
use crate::output::{
    TaggedImage,
    archive::write_archive,
    layout::{write_artifacts, write_layout},
};
use crate::plan::Plan;
use crate::printer::Printer;
use crate::registry::PushReport;

pub fn run(args: BuildArgs) -> Result<ExitCode> {
    let printer = Printer::new(args.verbose);
    let config = config::load(&args.config.file)?;
    let plan = Plan::resolve(&config, &args.images)?;
    let selected: BTreeSet<&str> = args.images.iter().map(String::as_str).collect();
    let options = BuildOptions {
        network: parse_network(&args.network)?,
        source_date_epoch: source_date_epoch()?,
        force: args.force,
        offline: args.offline,
    };
    let cache = Cache::open(args.cache_dir.as_deref())?;
    super::clean::remove_leftovers(&cache)?;
    let store = BlobStore::open(&cache.dir("blobs")?)?;
    // The layer writer adds blobs from inside the sandbox.
    crate::sandbox::hand_over(&store.root().join("sha256"))?;
    let ctx = BuildContext::new(&plan, &cache, &store, &printer, options)
        .with_registries(registry::client(&config.registries));

    let scope = PlanScope {
        pull_all_but: args.parents_from_registry.then_some(&selected),
        ..PlanScope::default()
    };
    let run = build_plan(&ctx, scope, |result| {
        if !result.reused {
            printer.status(
                "Built",
                &format!(
                    "{} {}",
                    result.references.join(" "),
                    result.image.manifest.digest
                ),
            );
        }
    })
    .map_err(|err| report_test_failure(&printer, err))?;
    let (built, pulled) = (run.images, run.pulled);

    let tagged: Vec<TaggedImage> = plan
        .images
        .iter()
        .flat_map(|image| {
            let result = &built[&image.name];
            result.references.iter().map(|reference| TaggedImage {
                image: &result.image,
                reference: reference.clone(),
            })
        })
        .collect();
    if let Some(dir) = &args.oci_layout {
        write_layout(dir, &store, &tagged)
            .with_context(|| format!("cannot write the OCI layout {}", dir.display()))?;
        let sboms: Vec<&crate::oci::artifact::Artifact> = plan
            .images
            .iter()
            .filter_map(|image| built[&image.name].sbom.as_ref())
            .collect();
        write_artifacts(dir, &store, &sboms)
            .with_context(|| format!("cannot add the SBOMs to {}", dir.display()))?;
        printer.status("Wrote", &format!("OCI layout {}", dir.display()));
    }
    if let Some(file) = &args.archive {
        write_archive(file, &store, &tagged)
            .with_context(|| format!("cannot write the archive {}", file.display()))?;
        printer.status("Wrote", &format!("archive {}", file.display()));
        let images: Vec<&BuiltImage> = plan.images.iter().map(|i| &built[&i.name]).collect();
        for written in crate::build::write_sbom_files(file, &store, &images)? {
            printer.status("Wrote", &format!("SBOM {}", written.display()));
        }
    }
    let mut pushed: BTreeMap<String, PushReport> = BTreeMap::new();
    if args.push {
        // The client that pulled parents: its tokens and connections are reused.
        let client = &ctx.registries;
        for image in plan.images.iter().filter(|i| !pulled.contains(&i.name)) {
            let result = &built[&image.name];
            let parent_reference = match &image.parent {
                Parent::Scratch => None,
                Parent::Image(name) => built.get(name).and_then(|p| p.references.first()),
                Parent::Registry(reference) => Some(reference),
            };
            let job = PushJob {
                name: &image.name,
                image: &result.image,
                references: &result.references,
                parent_reference: parent_reference.map(String::as_str),
                sbom: result.sbom.as_ref(),
            };
            let report = registry::push(client, store.root(), &job)?;
            printer.status(
                "Pushed",
                &format!(
                    "{} {} ({} blobs uploaded, {} mounted, {} already there)",
                    result.references.join(" "),
                    report.manifest_digest,
                    report.uploaded.len(),
                    report.mounted.len(),
                    report.skipped.len()
                ),
            );
            pushed.insert(image.name.clone(), report);
        }
    }
    if args.json {
        let mut report = Vec::new();
        for image in &plan.images {
            let built = &built[&image.name];
            // A size report that cannot be made leaves the build a success, with a note.
            let usage = match crate::build::report::image_usage_in_namespace(&cache, built, 10) {
                Ok(usage) => Some(usage.summary()),
                Err(err) => {
                    printer.warn(&format!("no size report for {}: {err:#}", image.name));
                    None
                }
            };
            report.push(ImageReport::of(built, usage, pushed.get(&image.name)));
        }
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// One image in `--json`: what the predecessor exported as `images_details_var`.
#[derive(Serialize)]
struct ImageReport<'a> {
    name: &'a str,
    references: &'a [String],
    digest: &'a str,
    size: u64,
    reused: bool,
    packages: &'a [String],
    /// What `--push` did for this image (absent without `--push` and for pulled parents).
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<&'a PushReport>,
    /// Sizes by package, files of no package, what trimming removed.
    usage: Option<crate::build::report::UsageSummary>,
    /// The SBOM artifact manifest (its subject is the image).
    sbom: Option<&'a str>,
}

impl<'a> ImageReport<'a> {
    fn of(
        built: &'a BuiltImage,
        usage: Option<crate::build::report::UsageSummary>,
        push: Option<&'a PushReport>,
    ) -> Self {
        ImageReport {
            name: &built.name,
            references: &built.references,
            digest: built.image.manifest.digest.as_str(),
            size: built.size,
            reused: built.reused,
            packages: &built.packages,
            push,
            usage,
            sbom: built.sbom.as_ref().map(|s| s.manifest.digest.as_str()),
        }
    }
}

/// A failed `test:` shows what the test printed before the error.
fn report_test_failure(printer: &Printer, err: anyhow::Error) -> anyhow::Error {
    if let Some(failed) = err.downcast_ref::<crate::build::TestFailed>() {
        printer.excerpt(&failed.output);
    }
    err
}
