//! `gib audit [IMAGE…]`: the security advisories (GLSAs) that affect the last build of each
//! image, from the audit report its build attached, judged by gib.yaml's `audit:` as it is
//! now. Reads only the cache: no network, no sandbox.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::ConfigArgs;
use crate::build::audit::{AuditReport, Origin, describe, failing, judge, stored_report};
use crate::build::latest_record;
use crate::cache::Cache;
use crate::oci::blob::BlobStore;
use crate::plan::Plan;
use crate::printer::UserError;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Images to audit; all of gib.yaml's when none is named.
    pub images: Vec<String>,
    /// The cache directory [default: $XDG_CACHE_HOME/gib, else ~/.cache/gib; /var/cache/gib for root].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Print the reports as JSON (a list, one per image, and per platform of an image of
    /// several platforms).
    #[arg(long)]
    pub json: bool,
    /// Audit this platform's builds (`os/arch`) alone; every platform of gib.yaml's without it.
    #[arg(long, value_name = "OS/ARCH", value_parser = super::platform_arg)]
    pub platform: Option<crate::oci::spec::Platform>,
}

pub fn run(args: AuditArgs) -> Result<ExitCode> {
    let config = crate::config::load(&args.config.file)?;
    let plan = Plan::resolve(&config, &args.images)?;
    let cache = Cache::open(args.cache_dir.as_deref())?;
    let store = BlobStore::open(&cache.dir("blobs")?)?;
    let mut reports: Vec<AuditReport> = Vec::new();
    let mut failed = Vec::new();
    let wanted = args.platform.clone();
    for image in &plan.images {
        if !args.images.is_empty() && !args.images.contains(&image.name) {
            continue;
        }
        // An image of several platforms has a build (and an audit report) per platform.
        let platforms: Vec<Option<&crate::oci::spec::Platform>> = match &wanted {
            Some(wanted) => {
                if !image.platforms.iter().any(|p| wanted.matches(p)) {
                    continue;
                }
                vec![Some(wanted)]
            }
            None if image.platforms.len() > 1 => image.platforms.iter().map(Some).collect(),
            None => vec![None],
        };
        for platform in platforms {
            let of = platform.map(|p| format!(" for {p}")).unwrap_or_default();
            let no_report = || {
                UserError::with_hint(
                    format!(
                        "no audited build of image {}{of} in {}",
                        image.name,
                        cache.root().display()
                    ),
                    format!("run `gib build {}` first", image.name),
                )
            };
            let record = latest_record(&cache, &image.name, platform)?.ok_or_else(no_report)?;
            let mut report = stored_report(&store, &record)?.ok_or_else(no_report)?;
            judge(&mut report, &image.audit);
            if !failing(&report, &image.audit).is_empty() {
                failed.push(format!("{}{of}", image.name));
            }
            reports.push(report);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for report in &reports {
            print!("{}", text(report));
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        // Exit code 1, as the build would fail.
        Err(anyhow::anyhow!(
            "the audit fails for {}: advisories above that gib.yaml's `audit:` does not accept",
            failed.join(", ")
        ))
    }
}

fn text(report: &AuditReport) -> String {
    let from = if report.advisories.repositories.is_empty() {
        "no repository has advisories".to_string()
    } else {
        format!(
            "{} advisories of {}",
            report.advisories.count,
            report.advisories.repositories.join(", ")
        )
    };
    let mut out = format!(
        "{}: {} hit(s) ({from}; fail_on: {})\n",
        report.image,
        report.hits.len(),
        report.fail_on
    );
    for hit in &report.hits {
        let mark = match (&hit.ignored, hit.origin) {
            (Some(_), _) => "ignored",
            (None, Origin::Own) => "own",
            (None, Origin::Parent) => "parent",
        };
        out.push_str(&format!("  {mark:<8}{}\n", describe(hit)));
        if let Some(reason) = &hit.ignored {
            out.push_str(&format!("          reason: {reason}\n"));
        }
    }
    out
}
